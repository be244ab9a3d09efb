//! Postmortems in the seed's five sections, generated from the incident's events: Issue
//! Summary, Timeline, Root Cause, Resolution and recovery, Corrective and preventive measures.
//!
//! The generated parts (duration, impact, timeline, release, diff, gate numbers, recovery times)
//! come only from recorded events and counts; narrative fields are what people wrote through
//! the API and are shown beside them, never instead of them.

use rampart_api::{Event, Incident};
use rampart_model::version::short;

use crate::alerting::Incidents;
use crate::error::ControlError;
use crate::service::stored_version;
use rampart_api::time::parse_ms;

/// Everything a postmortem is written from.
#[derive(Debug, Clone)]
pub struct Facts {
    pub incident: Incident,
    pub events: Vec<Event>,
    pub release: Option<crate::store::ReleaseRow>,
    /// The release's changes, as `rampart config diff` prints them.
    pub diff: Vec<String>,
    /// The failing gate verdict (text) and its event.
    pub gate: Option<(String, Event)>,
    /// The rollout policy the release followed: which revision, who set it, what it changed.
    pub policy: Option<String>,
}

impl Facts {
    fn first_ms(&self) -> Option<u64> {
        self.events.first().and_then(|e| parse_ms(&e.at))
    }

    fn end_ms(&self) -> Option<u64> {
        self.incident
            .resolved_at
            .as_deref()
            .and_then(parse_ms)
            .or_else(|| self.events.last().and_then(|e| parse_ms(&e.at)))
    }

    fn find(&self, kind: &str) -> Option<&Event> {
        self.events.iter().find(|e| e.kind == kind)
    }

    /// The first instance that applied the release's version.
    pub fn bad_apply(&self) -> Option<&Event> {
        let v = &self.release.as_ref()?.version;
        self.events.iter().find(|e| {
            e.kind == "instance.applied"
                && e.data.get("version").and_then(|x| x.as_str()) == Some(v.as_str())
        })
    }

    /// The environment whole again on the previous version, after the rollback.
    pub fn recovered(&self) -> Option<&Event> {
        let release = self.release.as_ref()?;
        let rolled = self.find("release.rolled_back")?.seq;
        self.events.iter().find(|e| {
            e.seq > rolled
                && e.kind == "environment.converged"
                && e.data.get("version").and_then(|x| x.as_str()) == Some(release.previous.as_str())
        })
    }

    /// Seconds from the first bad apply to the environment whole on the previous version.
    pub fn rollback_secs(&self) -> Option<f64> {
        let from = parse_ms(&self.bad_apply()?.at)?;
        let to = parse_ms(&self.recovered()?.at)?;
        Some(to.saturating_sub(from) as f64 / 1000.0)
    }
}

fn clock(at: &str) -> &str {
    // 2026-11-24T10:00:00.123Z -> 10:00:00.123
    at.get(11..23).unwrap_or(at)
}

fn duration(ms: u64) -> String {
    let secs = ms as f64 / 1000.0;
    if secs < 120.0 {
        format!("{secs:.1} s")
    } else if secs < 7200.0 {
        format!("{:.1} min", secs / 60.0)
    } else {
        format!("{:.1} h", secs / 3600.0)
    }
}

fn share(failed: u64, total: u64) -> String {
    if total == 0 {
        "no requests".into()
    } else {
        format!("{:.3} %", failed as f64 * 100.0 / total as f64)
    }
}

/// The five sections as Markdown.
pub fn markdown(f: &Facts) -> String {
    let i = &f.incident;
    let mut out = format!(
        "# Postmortem: {}\n\nIncident {} · {} · impact {}\n\n",
        i.title,
        i.id,
        i.status.as_str(),
        i.impact.as_str()
    );
    issue_summary(&mut out, f);
    timeline(&mut out, f);
    root_cause(&mut out, f);
    resolution(&mut out, f);
    measures(&mut out, f);
    out
}

/// Duration, impact, components, time to roll back, and the narrative summary.
fn issue_summary(out: &mut String, f: &Facts) {
    let i = &f.incident;
    out.push_str("## Issue Summary\n\n");
    let (start, end) = (f.first_ms(), f.end_ms());
    if let (Some(a), Some(b)) = (start, end) {
        out.push_str(&format!(
            "- Duration: {} (from {} to {}{})\n",
            duration(b.saturating_sub(a)),
            f.events.first().map(|e| e.at.as_str()).unwrap_or_default(),
            i.resolved_at.as_deref().unwrap_or("now"),
            if i.resolved_at.is_none() {
                ", still open"
            } else {
                ""
            }
        ));
    }
    out.push_str(&format!(
        "- Impact: {} of {} requests in {} failed ({} of traffic)\n",
        i.traffic.failed,
        i.traffic.total,
        i.environment.as_deref().unwrap_or("the fleet"),
        share(i.traffic.failed, i.traffic.total)
    ));
    out.push_str(&format!(
        "- Components: {}\n",
        if i.components.is_empty() {
            "none named".to_owned()
        } else {
            i.components.join(", ")
        }
    ));
    if let Some(secs) = f.rollback_secs() {
        out.push_str(&format!(
            "- From the first bad apply to every instance back on the previous version: {secs:.1} s\n"
        ));
    }
    if !i.summary.is_empty() {
        out.push_str(&format!("\n{}\n", i.summary));
    }
}

/// Every event of the incident's window, in order.
fn timeline(out: &mut String, f: &Facts) {
    out.push_str("\n## Timeline\n\nAll times UTC.\n\n");
    for e in &f.events {
        out.push_str(&format!("- {} — {}\n", clock(&e.at), describe(e)));
    }
}

/// The release, what its version changed, and the gate that failed.
fn root_cause(out: &mut String, f: &Facts) {
    let i = &f.incident;
    out.push_str("\n## Root Cause\n\n");
    match &f.release {
        Some(r) => {
            out.push_str(&format!(
                "Release {} took version {} to {} (replacing {}).\n",
                r.id,
                r.version,
                r.environment,
                short(&r.previous)
            ));
            if let Some(v) = f
                .events
                .iter()
                .find(|e| e.kind == "version.created" && e.subject == r.version)
            {
                out.push_str(&format!("\n{}\n", describe(v)));
            }
            out.push_str("\nWhat the version changed:\n\n```\n");
            for line in &f.diff {
                out.push_str(line);
                out.push('\n');
            }
            out.push_str("```\n");
            if let Some((text, e)) = &f.gate {
                out.push_str(&format!(
                    "\nThe gate that failed, at {}: {text}\n",
                    clock(&e.at)
                ));
            }
            if let Some(policy) = &f.policy {
                out.push_str(&format!("\n{policy}\n"));
            }
        }
        None => out.push_str("No release is tied to this incident.\n"),
    }
    if !i.root_cause.is_empty() {
        out.push_str(&format!("\n{}\n", i.root_cause));
    }
}

/// What brought the service back, and how long it took.
fn resolution(out: &mut String, f: &Facts) {
    let i = &f.incident;
    out.push_str("\n## Resolution and recovery\n\n");
    let mut any = false;
    for e in f.events.iter().filter(|e| {
        matches!(
            e.kind.as_str(),
            "release.rolled_back"
                | "rollback"
                | "environment.converged"
                | "alert.resolved"
                | "incident.resolved"
        )
    }) {
        any = true;
        out.push_str(&format!("- {} — {}\n", clock(&e.at), describe(e)));
    }
    if !any {
        out.push_str("- Nothing recorded yet.\n");
    }
    if let Some(secs) = f.rollback_secs() {
        out.push_str(&format!(
            "\nTime from the first bad apply to full rollback: {secs:.1} s.\n"
        ));
    }
    if !i.resolution.is_empty() {
        out.push_str(&format!("\n{}\n", i.resolution));
    }
}

/// The action items.
fn measures(out: &mut String, f: &Facts) {
    let i = &f.incident;
    out.push_str("\n## Corrective and preventive measures\n\n");
    if i.action_items.is_empty() {
        out.push_str("No action items yet (`rampart incident action ID --title … --owner …`).\n");
    } else {
        out.push_str("| # | Action | Owner | State |\n|---|---|---|---|\n");
        for a in &i.action_items {
            out.push_str(&format!(
                "| {} | {} | {} | {} |\n",
                a.id, a.title, a.owner, a.state
            ));
        }
    }
}

mod describe;
mod html;

pub use describe::describe;
pub use html::{html, timeline_svg};

/// Gathers an incident's facts from the store.
pub async fn facts(incidents: &Incidents, id: i64) -> Result<Facts, ControlError> {
    let store = &incidents.store;
    let incident = incidents.get(id).await?;
    let last = incident.last_event.unwrap_or(i64::MAX);
    let events = store.events_between(incident.first_event, last).await?;
    let release = match incident.cause.get("release").and_then(|r| r.as_i64()) {
        Some(r) => store.release(r).await?,
        None => None,
    };
    let mut diff = vec![];
    if let Some(r) = &release {
        let (_, old) = stored_version(store, &r.previous).await?;
        let (_, new) = stored_version(store, &r.version).await?;
        match (
            rampart_model::parse_document(&old),
            rampart_model::parse_document(&new),
        ) {
            (Ok(a), Ok(b)) => {
                diff = rampart_model::diff(&a, &b)
                    .iter()
                    .map(ToString::to_string)
                    .collect()
            }
            _ => diff.push("(a stored version no longer parses)".into()),
        }
    }
    let gate = events
        .iter()
        .rev()
        .find(|e| {
            e.kind == "gate.verdict"
                && e.data.pointer("/verdict/verdict").and_then(|v| v.as_str()) == Some("fail")
        })
        .map(|e| {
            let v = &e.data["verdict"];
            let text = format!(
                "{} gate failed in wave {}: {}",
                v.get("gate").and_then(|g| g.as_str()).unwrap_or("?"),
                e.data["wave"],
                v.get("detail").and_then(|d| d.as_str()).unwrap_or_default()
            );
            (text, e.clone())
        });
    let policy = match &release {
        Some(r) => Some(policy_followed(store, r).await?),
        None => None,
    };
    Ok(Facts {
        incident,
        events,
        release,
        diff,
        gate,
        policy,
    })
}

/// The policy a release followed, in words: its revision, who set it and when, what it changed.
async fn policy_followed(
    store: &crate::store::Store,
    r: &crate::store::ReleaseRow,
) -> Result<String, ControlError> {
    let source = &r.intent.plan.source;
    let revision = source
        .rsplit_once(" policy r")
        .and_then(|(_, n)| n.parse::<i64>().ok());
    let Some(revision) = revision else {
        let name = if source.is_empty() { "default" } else { source };
        return Ok(format!("The release followed the {name} rollout policy."));
    };
    let rows = store.policies(&r.environment).await?;
    let Some(at) = rows.iter().position(|p| p.revision == revision) else {
        return Ok(format!("The release followed {source} (no longer stored)."));
    };
    let row = &rows[at];
    let changes = crate::service::revision_changes(row, rows.get(at + 1));
    let mut line = format!(
        "The release followed {source}, set by {} at {}",
        row.actor,
        clock(&row.created_at)
    );
    if changes.is_empty() {
        line.push('.');
    } else {
        line.push_str(&format!("; that revision changed: {}.", changes.join("; ")));
    }
    Ok(line)
}
