//! Structural diff of two documents, on their canonical form.
//!
//! Lists of named items (listeners, upstreams, routes, auth providers) are matched by name, so
//! reordering is not a change and paths read `routes[users-api].timeout`.

use std::fmt;

use serde::Serialize;
use serde_json::Value;

use crate::raw::Document;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    Added,
    Removed,
    Changed,
}

/// One difference between two documents.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    pub path: String,
    pub kind: ChangeKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new: Option<Value>,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |v: &Option<Value>| v.as_ref().map(Value::to_string).unwrap_or_default();
        match self.kind {
            ChangeKind::Added => write!(f, "+ {}: {}", self.path, show(&self.new)),
            ChangeKind::Removed => write!(f, "- {}: {}", self.path, show(&self.old)),
            ChangeKind::Changed => write!(
                f,
                "~ {}: {} -> {}",
                self.path,
                show(&self.old),
                show(&self.new)
            ),
        }
    }
}

/// The changes that turn `old` into `new`.
pub fn diff(old: &Document, new: &Document) -> Vec<Change> {
    let a = serde_json::to_value(old).unwrap_or(Value::Null);
    let b = serde_json::to_value(new).unwrap_or(Value::Null);
    diff_values(&a, &b)
}

/// The changes that turn one JSON value into another, by path (lists of named objects matched
/// by name): the same reading for any document, e.g. a rollout policy.
pub fn diff_values(old: &Value, new: &Value) -> Vec<Change> {
    let mut out = Vec::new();
    walk("", Some(old), Some(new), &mut out);
    out
}

fn walk(path: &str, a: Option<&Value>, b: Option<&Value>, out: &mut Vec<Change>) {
    match (a, b) {
        (None, None) => {}
        (None, Some(b)) => out.push(Change {
            path: path.into(),
            kind: ChangeKind::Added,
            old: None,
            new: Some(b.clone()),
        }),
        (Some(a), None) => out.push(Change {
            path: path.into(),
            kind: ChangeKind::Removed,
            old: Some(a.clone()),
            new: None,
        }),
        (Some(Value::Object(x)), Some(Value::Object(y))) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                walk(&p, x.get(k), y.get(k), out);
            }
        }
        (Some(Value::Array(x)), Some(Value::Array(y))) if named(x) && named(y) => {
            let name = |v: &Value| {
                v.get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            let mut names: Vec<String> = x.iter().map(name).collect();
            for n in y.iter().map(name) {
                if !names.contains(&n) {
                    names.push(n);
                }
            }
            for n in names {
                let find = |list: &'_ [Value]| list.iter().find(|v| name(v) == n).cloned();
                walk(
                    &format!("{path}[{n}]"),
                    find(x).as_ref(),
                    find(y).as_ref(),
                    out,
                );
            }
        }
        (Some(a), Some(b)) if a != b => out.push(Change {
            path: path.into(),
            kind: ChangeKind::Changed,
            old: Some(a.clone()),
            new: Some(b.clone()),
        }),
        _ => {}
    }
}

fn named(items: &[Value]) -> bool {
    !items.is_empty()
        && items
            .iter()
            .all(|v| v.get("name").is_some_and(Value::is_string))
}

/// Top-level sections whose changes can take a whole fleet down (who may call, where it
/// listens, how names resolve, how much it admits): changes to them need a second person.
pub const HIGH_RISK_SECTIONS: [&str; 4] = ["auth_providers", "listeners", "resolver", "limits"];

/// The high-risk sections a set of changes touches, in a stable order.
pub fn high_risk(changes: &[Change]) -> Vec<&'static str> {
    HIGH_RISK_SECTIONS
        .iter()
        .copied()
        .filter(|section| {
            changes.iter().any(|c| {
                c.path == *section
                    || c.path.starts_with(&format!("{section}."))
                    || c.path.starts_with(&format!("{section}["))
            })
        })
        .collect()
}
