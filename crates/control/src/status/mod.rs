//! The public status page's data: a snapshot of components (with 90-day uptime from the SLI
//! series), incidents and maintenance windows, rendered as Statuspage's public API v2 JSON
//! (same field names, types and enums, so existing widgets, bots and monitors read it), and
//! the maintenance and subscriber rules behind it.

use rampart_api::{
    Impact, Incident, IncidentStatus, Maintenance, MaintenanceSpec, Subscriber, SubscriberKind,
};
use serde_json::{Value, json};

use crate::sli::component_series;
use crate::slo::Counts;
use crate::store::{now, now_ms};
use rampart_api::time::parse_ms;

/// Days of history on the page.
pub const UPTIME_DAYS: u64 = 90;
/// How long a snapshot of the page serves before it is read again.
pub const SNAPSHOT_TTL: std::time::Duration = std::time::Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct ComponentView {
    pub name: String,
    pub description: String,
    /// Statuspage's component status.
    pub status: String,
    pub created_at: String,
    pub updated_at: String,
    /// Requests per day, oldest first, `UPTIME_DAYS` of them.
    pub days: Vec<Counts>,
}

impl ComponentView {
    /// Share of good requests over all days with traffic; None without any.
    pub fn uptime(&self) -> Option<f64> {
        let (total, failed) = self
            .days
            .iter()
            .fold((0, 0), |(t, f), d| (t + d.total, f + d.failed));
        (total > 0).then(|| 100.0 * (total - failed) as f64 / total as f64)
    }
}

/// Everything the page shows, read at one moment.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub name: String,
    pub url: String,
    pub updated_at: String,
    pub components: Vec<ComponentView>,
    /// Newest first, at most 50.
    pub incidents: Vec<Incident>,
    /// Not cancelled; latest start first.
    pub maintenances: Vec<Maintenance>,
    /// What the public routes rendered from this snapshot.
    pub rendered: Rendered,
}

/// Public resources rendered from one snapshot, kept with it: under a stampede each is rendered
/// once per snapshot (once a second), not once per request.
#[derive(Debug, Default)]
pub struct Rendered(std::sync::Mutex<std::collections::HashMap<String, bytes::Bytes>>);

/// A copy of a snapshot renders afresh.
impl Clone for Rendered {
    fn clone(&self) -> Rendered {
        Rendered::default()
    }
}

impl Snapshot {
    /// The resource `key` as rendered from this snapshot, rendering it the first time.
    pub fn rendered(&self, key: &str, render: impl FnOnce(&Snapshot) -> String) -> bytes::Bytes {
        let cache = || self.rendered.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(done) = cache().get(key) {
            return done.clone();
        }
        // Rendered outside the lock: two first requests may both render; neither waits.
        let body = bytes::Bytes::from(render(self));
        cache().insert(key.to_owned(), body.clone());
        body
    }
}

pub fn slug(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    while s.contains("--") {
        s = s.replace("--", "-");
    }
    s.trim_matches('-').to_owned()
}

/// Statuspage's page-level indicator and its words.
pub fn indicator(s: &Snapshot) -> (&'static str, &'static str) {
    let open = s
        .incidents
        .iter()
        .filter(|i| i.status != IncidentStatus::Resolved);
    let worst_incident = open.map(|i| i.impact).max().unwrap_or(Impact::None);
    let worst_component = s
        .components
        .iter()
        .map(|c| match c.status.as_str() {
            "major_outage" => Impact::Critical,
            "partial_outage" => Impact::Major,
            "degraded_performance" => Impact::Minor,
            _ => Impact::None,
        })
        .max()
        .unwrap_or(Impact::None);
    match worst_incident.max(worst_component) {
        Impact::Critical => ("critical", "Major System Outage"),
        Impact::Major => ("major", "Partial System Outage"),
        Impact::Minor => ("minor", "Minor Service Outage"),
        Impact::None if s.components.iter().any(|c| c.status == "under_maintenance") => {
            ("none", "Service Under Maintenance")
        }
        Impact::None => ("none", "All Systems Operational"),
    }
}

const PAGE_ID: &str = "rampart";

fn page(s: &Snapshot) -> Value {
    json!({ "id": PAGE_ID, "name": s.name, "url": s.url, "time_zone": "Etc/UTC", "updated_at": s.updated_at })
}

fn component(s: &Snapshot, c: &ComponentView) -> Value {
    let position = s
        .components
        .iter()
        .position(|x| x.name == c.name)
        .unwrap_or(0)
        + 1;
    json!({
        "id": slug(&c.name),
        "name": c.name,
        "status": c.status,
        "created_at": c.created_at,
        "updated_at": c.updated_at,
        "position": position,
        "description": if c.description.is_empty() { Value::Null } else { Value::String(c.description.clone()) },
        "showcase": true,
        "start_date": c.created_at.get(..10),
        "group_id": Value::Null,
        "page_id": PAGE_ID,
        "group": false,
        "only_show_if_degraded": false,
    })
}

fn named_components(s: &Snapshot, names: &[String]) -> Vec<Value> {
    s.components
        .iter()
        .filter(|c| names.contains(&c.name))
        .map(|c| component(s, c))
        .collect()
}

fn update(
    id: String,
    incident_id: &str,
    status: &str,
    body: &str,
    at: &str,
    affected: &[Value],
) -> Value {
    json!({
        "id": id,
        "status": status,
        "body": body,
        "incident_id": incident_id,
        "created_at": at,
        "updated_at": at,
        "display_at": at,
        "affected_components": if affected.is_empty() { Value::Null } else { Value::Array(affected.to_vec()) },
        "deliver_notifications": true,
        "custom_tweet": Value::Null,
        "tweet_id": Value::Null,
    })
}

/// An incident as Statuspage shows it (updates newest first).
pub fn incident(s: &Snapshot, i: &Incident) -> Value {
    let id = i.id.to_string();
    let components = named_components(s, &i.components);
    let affected: Vec<Value> = components
        .iter()
        .map(|c| json!({ "code": c["id"], "name": c["name"], "old_status": "operational", "new_status": c["status"] }))
        .collect();
    let updates: Vec<Value> = i
        .updates
        .iter()
        .rev()
        .map(|u| {
            update(
                u.id.to_string(),
                &id,
                u.status.as_str(),
                &u.body,
                &u.at,
                &affected,
            )
        })
        .collect();
    let monitoring_at = i
        .updates
        .iter()
        .find(|u| u.status == IncidentStatus::Monitoring)
        .map(|u| u.at.clone());
    json!({
        "id": id,
        "name": i.title,
        "status": i.status.as_str(),
        "created_at": i.opened_at,
        "updated_at": i.updates.last().map(|u| u.at.clone()).unwrap_or_else(|| i.opened_at.clone()),
        "monitoring_at": monitoring_at,
        "resolved_at": i.resolved_at,
        "impact": i.impact.as_str(),
        "shortlink": format!("{}/incidents/{}", s.url, i.id),
        "started_at": i.opened_at,
        "page_id": PAGE_ID,
        "incident_updates": updates,
        "components": components,
    })
}

/// A maintenance window as Statuspage shows it.
pub fn maintenance(s: &Snapshot, m: &Maintenance) -> Value {
    let id = format!("m{}", m.id);
    let components = named_components(s, &m.spec.components);
    let status = match m.status.as_str() {
        "in_progress" => "in_progress",
        "completed" => "completed",
        _ => "scheduled",
    };
    let body = if m.spec.body.is_empty() {
        m.spec.title.clone()
    } else {
        m.spec.body.clone()
    };
    json!({
        "id": id,
        "name": m.spec.title,
        "status": status,
        "created_at": m.spec.scheduled_for,
        "updated_at": m.spec.scheduled_for,
        "monitoring_at": Value::Null,
        "resolved_at": if status == "completed" { Value::String(m.spec.scheduled_until.clone()) } else { Value::Null },
        "impact": "maintenance",
        "shortlink": format!("{}/#maintenance-{}", s.url, m.id),
        "started_at": m.spec.scheduled_for,
        "page_id": PAGE_ID,
        "incident_updates": [update(format!("{id}-1"), &id, "scheduled", &body, &m.spec.scheduled_for, &[])],
        "components": components,
        "scheduled_for": m.spec.scheduled_for,
        "scheduled_until": m.spec.scheduled_until,
    })
}

fn status_object(s: &Snapshot) -> Value {
    let (indicator, description) = indicator(s);
    json!({ "indicator": indicator, "description": description })
}

/// The resources under `/api/v2/`.
pub const V2_NAMES: [&str; 8] = [
    "summary.json",
    "status.json",
    "components.json",
    "incidents.json",
    "incidents/unresolved.json",
    "scheduled-maintenances.json",
    "scheduled-maintenances/upcoming.json",
    "scheduled-maintenances/active.json",
];

/// `/api/v2/{name}` as Statuspage answers it; None for a name not in [`V2_NAMES`].
pub fn v2(s: &Snapshot, name: &str) -> Option<Value> {
    let components = || -> Vec<Value> { s.components.iter().map(|c| component(s, c)).collect() };
    let incidents = |open_only: bool| -> Vec<Value> {
        s.incidents
            .iter()
            .filter(|i| !open_only || i.status != IncidentStatus::Resolved)
            .map(|i| incident(s, i))
            .collect()
    };
    let maintenances = |which: &[&str]| -> Vec<Value> {
        s.maintenances
            .iter()
            .filter(|m| which.contains(&m.status.as_str()))
            .map(|m| maintenance(s, m))
            .collect()
    };
    Some(match name {
        "summary.json" => json!({
            "page": page(s),
            "components": components(),
            "incidents": incidents(true),
            "scheduled_maintenances": maintenances(&["scheduled", "in_progress"]),
            "status": status_object(s),
        }),
        "status.json" => json!({ "page": page(s), "status": status_object(s) }),
        "components.json" => json!({ "page": page(s), "components": components() }),
        "incidents.json" => json!({ "page": page(s), "incidents": incidents(false) }),
        "incidents/unresolved.json" => json!({ "page": page(s), "incidents": incidents(true) }),
        "scheduled-maintenances.json" => {
            json!({ "page": page(s), "scheduled_maintenances": maintenances(&["scheduled", "in_progress", "completed"]) })
        }
        "scheduled-maintenances/upcoming.json" => {
            json!({ "page": page(s), "scheduled_maintenances": maintenances(&["scheduled"]) })
        }
        "scheduled-maintenances/active.json" => {
            json!({ "page": page(s), "scheduled_maintenances": maintenances(&["in_progress"]) })
        }
        _ => return None,
    })
}

/// A subscriber webhook's payload, in Statuspage's subscriber-webhook shape.
pub fn subscriber_payload(s: &Snapshot, i: &Incident, unsubscribe: &str) -> Value {
    let (indicator, description) = indicator(s);
    json!({
        "meta": { "unsubscribe": unsubscribe, "documentation": format!("{}/api/v2/", s.url), "generated_at": now() },
        "page": { "id": PAGE_ID, "status_indicator": indicator, "status_description": description },
        "incident": incident(s, i),
    })
}

/// A maintenance window's status at `now_ms`.
pub fn maintenance_status(spec: &MaintenanceSpec, cancelled: bool, now_ms: u64) -> &'static str {
    let from = parse_ms(&spec.scheduled_for).unwrap_or(0);
    let until = parse_ms(&spec.scheduled_until).unwrap_or(0);
    match () {
        _ if cancelled => "cancelled",
        _ if now_ms < from => "scheduled",
        _ if now_ms < until => "in_progress",
        _ => "completed",
    }
}

mod maintenance;
mod page_state;
mod subscribers;

pub use maintenance::Maintenances;
pub use page_state::StatusPage;
pub use subscribers::Subscribers;

/// The public page's name, address and the snapshot it is drawn from (read from the store at
/// most once a second: a stampede of page views shares one read).
pub struct PageState {
    pub name: String,
    pub(crate) snapshot: std::sync::Mutex<Option<(std::time::Instant, std::sync::Arc<Snapshot>)>>,
    /// Held by the one request re-reading the snapshot.
    pub(crate) refresh: tokio::sync::Mutex<()>,
    /// Snapshots read from the store so far.
    pub(crate) reads: std::sync::atomic::AtomicU64,
    /// Base URL of the page and API as users reach them (set once; defaults to the listener).
    public_url: std::sync::OnceLock<String>,
}

impl PageState {
    pub fn new(name: &str) -> PageState {
        PageState {
            name: name.to_owned(),
            snapshot: std::sync::Mutex::new(None),
            refresh: tokio::sync::Mutex::new(()),
            reads: std::sync::atomic::AtomicU64::new(0),
            public_url: std::sync::OnceLock::new(),
        }
    }

    /// Sets the public URL unless one is set already.
    pub fn set_public_url(&self, url: &str) {
        let _ = self.public_url.set(url.trim_end_matches('/').to_owned());
    }

    pub fn public_url(&self) -> String {
        self.public_url.get().cloned().unwrap_or_default()
    }

    /// Snapshots read from the store so far.
    pub fn reads(&self) -> u64 {
        self.reads.load(std::sync::atomic::Ordering::Relaxed)
    }
}
