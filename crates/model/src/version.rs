//! Version ids: the SHA-256 of a document's canonical form, so equal content is the same version everywhere.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::raw::Document;

/// Lowercase hex SHA-256 of the canonical JSON form of a document. On the wire it is that
/// string; anything else is refused when it is read, so an id from the network is always 64
/// lowercase hex characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct VersionId(String);

impl TryFrom<String> for VersionId {
    type Error = String;
    fn try_from(text: String) -> Result<VersionId, String> {
        VersionId::parse(&text)
    }
}

impl From<VersionId> for String {
    fn from(id: VersionId) -> String {
        id.0
    }
}

/// An id reads as the text it is (always 64 lowercase hex characters).
impl std::ops::Deref for VersionId {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for VersionId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for VersionId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for VersionId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl PartialEq<String> for VersionId {
    fn eq(&self, other: &String) -> bool {
        &self.0 == other
    }
}

impl PartialEq<VersionId> for String {
    fn eq(&self, other: &VersionId) -> bool {
        *self == other.0
    }
}

impl PartialEq<VersionId> for str {
    fn eq(&self, other: &VersionId) -> bool {
        self == other.0
    }
}

impl PartialEq<VersionId> for &str {
    fn eq(&self, other: &VersionId) -> bool {
        *self == other.0
    }
}

impl schemars::JsonSchema for VersionId {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "VersionId".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^[0-9a-f]{64}$",
            "description": "A version id: the lowercase hex SHA-256 of the document's canonical form."
        })
    }
}

impl VersionId {
    pub fn of(document: &Document) -> VersionId {
        VersionId(hex::encode(Sha256::digest(
            canonical_json(document).as_bytes(),
        )))
    }

    /// Parses a full 64-character hex id.
    pub fn parse(text: &str) -> Result<VersionId, String> {
        if text.len() == 64
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            Ok(VersionId(text.to_owned()))
        } else {
            Err(format!(
                "{text:?} is not a version id (64 lowercase hex characters)"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first 12 characters, for people.
    pub fn short(&self) -> &str {
        short(&self.0)
    }
}

/// A version id as people read it: its first 12 characters (all of it if shorter; never panics
/// on an id that came over the network).
pub fn short(id: &(impl AsRef<str> + ?Sized)) -> &str {
    let id = id.as_ref();
    id.get(..12).unwrap_or(id)
}

impl fmt::Display for VersionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The canonical form: compact JSON, object keys sorted, absent options omitted, durations in
/// one spelling. Independent of how the document was written (YAML or JSON, key order, spacing).
pub fn canonical_json(document: &Document) -> String {
    // Serialising plain data to a Value cannot fail: all map keys are strings.
    let value = serde_json::to_value(document).unwrap_or(serde_json::Value::Null);
    let mut out = String::new();
    write_sorted(&value, &mut out);
    out
}

fn write_sorted(value: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_sorted(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_sorted(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}
