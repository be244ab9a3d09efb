//! The public status page's data: a snapshot of components (with 90-day uptime from the SLI
//! series), incidents and maintenance windows, rendered as Statuspage's public API v2 JSON
//! (same field names, types and enums, so existing widgets, bots and monitors read it), and
//! the maintenance and subscriber rules behind it.

use rampart_api::{
    Impact, Incident, IncidentStatus, Maintenance, MaintenanceSpec, Subscriber, SubscriberKind,
};
use serde_json::{Value, json};

use crate::alerting::component_series;
use crate::service::{ControlError, ControlPlane};
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

impl ControlPlane {
    /// The page's base URL (links in feeds, webhooks and emails).
    pub fn public_url(&self) -> String {
        self.ops().public_url()
    }

    pub async fn maintenances(&self) -> Result<Vec<Maintenance>, ControlError> {
        let now = now_ms();
        Ok(self
            .store()
            .maintenances()
            .await?
            .into_iter()
            .map(|r| Maintenance {
                id: r.id,
                status: maintenance_status(&r.spec, r.cancelled_at.is_some(), now).into(),
                spec: r.spec,
                created_by: r.created_by,
            })
            .collect())
    }

    /// Components under a maintenance window in progress now.
    pub async fn under_maintenance(&self) -> Result<Vec<String>, ControlError> {
        Ok(self
            .maintenances()
            .await?
            .into_iter()
            .filter(|m| m.status == "in_progress")
            .flat_map(|m| m.spec.components)
            .collect())
    }

    pub async fn schedule_maintenance(
        &self,
        spec: MaintenanceSpec,
        actor: &str,
    ) -> Result<Maintenance, ControlError> {
        let invalid = |m: String| ControlError::Invalid(m);
        if spec.title.trim().is_empty() {
            return Err(invalid("title: a maintenance needs a title".into()));
        }
        let Some(from) = parse_ms(&spec.scheduled_for) else {
            return Err(invalid(format!(
                "scheduled_for: {:?} is not an RFC 3339 time (e.g. 2026-11-24T22:00:00Z)",
                spec.scheduled_for
            )));
        };
        let Some(until) = parse_ms(&spec.scheduled_until) else {
            return Err(invalid(format!(
                "scheduled_until: {:?} is not an RFC 3339 time",
                spec.scheduled_until
            )));
        };
        if until <= from {
            return Err(invalid(
                "scheduled_until: must be after scheduled_for".into(),
            ));
        }
        if spec.components.is_empty() {
            return Err(invalid(
                "components: name at least one component under maintenance".into(),
            ));
        }
        let known: Vec<String> = self
            .components()
            .await?
            .into_iter()
            .map(|c| c.name)
            .collect();
        if let Some(c) = spec.components.iter().find(|c| !known.contains(c)) {
            return Err(invalid(format!(
                "components: no component {c:?} (known: {})",
                known.join(", ")
            )));
        }
        let id = self.store().insert_maintenance(&spec, actor).await?;
        self.maintenances()
            .await?
            .into_iter()
            .find(|m| m.id == id)
            .ok_or_else(|| ControlError::NotFound(format!("no maintenance {id}")))
    }

    pub async fn cancel_maintenance(&self, id: i64, actor: &str) -> Result<(), ControlError> {
        if !self.store().cancel_maintenance(id, actor).await? {
            return Err(ControlError::NotFound(format!(
                "no maintenance {id} to cancel (unknown or already cancelled)"
            )));
        }
        Ok(())
    }

    /// Adds a subscriber: confirmed at once when an operator adds it, otherwise a
    /// confirmation is sent first. The answer that creates a webhook subscriber carries its
    /// signing secret.
    pub async fn subscribe(
        &self,
        kind: SubscriberKind,
        target: &str,
        confirmed: bool,
        actor: &str,
    ) -> Result<Subscriber, ControlError> {
        let target = target.trim();
        match kind {
            SubscriberKind::Email => {
                target.parse::<lettre::message::Mailbox>().map_err(|e| {
                    ControlError::Invalid(format!("email: {target:?} is not an email address: {e}"))
                })?;
            }
            SubscriberKind::Webhook => {
                let ok = (target.starts_with("http://") || target.starts_with("https://"))
                    && target.parse::<http::Uri>().is_ok();
                if !ok {
                    return Err(ControlError::Invalid(format!(
                        "webhook: {target:?} is not an http:// or https:// URL"
                    )));
                }
            }
        }
        let (row, created) = self
            .store()
            .add_subscriber(kind, target, confirmed, actor)
            .await?;
        self.ops().outbox_wake.notify_one();
        let mut s = row.subscriber;
        if created && kind == SubscriberKind::Webhook {
            s.secret = Some(row.secret);
        }
        Ok(s)
    }

    /// Everything the page shows, read at most once a second (page views in between share it).
    pub async fn snapshot(&self) -> Result<std::sync::Arc<Snapshot>, ControlError> {
        let current = || {
            self.ops()
                .snapshot
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
        };
        let cached = current();
        if let Some((at, snap)) = &cached
            && at.elapsed() < SNAPSHOT_TTL
        {
            return Ok(snap.clone());
        }
        // One request reads the store; the others meanwhile serve the snapshot there is.
        let _refreshing = match (self.ops().snapshot_refresh.try_lock(), cached) {
            (Ok(guard), _) => guard,
            (Err(_), Some((_, stale))) => return Ok(stale),
            (Err(_), None) => self.ops().snapshot_refresh.lock().await,
        };
        // Another request may have refreshed it while this one waited.
        if let Some((at, snap)) = current()
            && at.elapsed() < SNAPSHOT_TTL
        {
            return Ok(snap);
        }
        let snap = std::sync::Arc::new(self.read_snapshot().await?);
        *self
            .ops()
            .snapshot
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some((std::time::Instant::now(), snap.clone()));
        Ok(snap)
    }

    async fn read_snapshot(&self) -> Result<Snapshot, ControlError> {
        self.ops()
            .snapshot_reads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let times = self.store().component_times().await?;
        let components = self
            .components()
            .await?
            .into_iter()
            .map(|c| {
                let (created_at, updated_at) = times.get(&c.name).cloned().unwrap_or_default();
                ComponentView {
                    days: self.ops().daily(&component_series(&c.name), UPTIME_DAYS),
                    name: c.name,
                    description: c.spec.description,
                    status: c.status,
                    created_at,
                    updated_at,
                }
            })
            .collect();
        let incidents = self.recent_incidents(50).await?;
        let maintenances = self
            .maintenances()
            .await?
            .into_iter()
            .filter(|m| m.status != "cancelled")
            .collect();
        Ok(Snapshot {
            name: self.ops().page_name.clone(),
            url: self.public_url(),
            updated_at: now(),
            components,
            incidents,
            maintenances,
            rendered: Rendered::default(),
        })
    }

    /// Where and what to send a subscriber's notification; `Err` with the reason when it can no
    /// longer be sent (unknown or unsubscribed subscriber, incident gone).
    pub(crate) async fn subscriber_delivery(
        &self,
        id: &str,
        n: &crate::notify::Notification,
    ) -> Result<
        Result<(rampart_api::ChannelSpec, Option<crate::notify::Message>), String>,
        ControlError,
    > {
        let Some(row) = (match id.parse::<i64>() {
            Ok(id) => self.store().subscriber(id).await?,
            Err(_) => None,
        }) else {
            return Ok(Err(format!("no subscriber {id}")));
        };
        if row.subscriber.unsubscribed {
            return Ok(Err("unsubscribed".into()));
        }
        let url = self.public_url();
        let unsubscribe = format!("{url}/unsubscribe?token={}", row.token);
        let message = match n.action {
            crate::notify::NotifyAction::Confirm => {
                let confirm = format!("{url}/subscribe/confirm?token={}", row.token);
                crate::notify::Message {
                    json: json!({
                        "type": "subscription.confirm",
                        "confirm_url": confirm,
                        "unsubscribe_url": unsubscribe,
                        "signing_secret": row.secret,
                        "page": { "id": PAGE_ID, "name": self.ops().page_name, "url": url },
                    }),
                    subject: format!("Confirm your subscription to {}", self.ops().page_name),
                    text: format!(
                        "Someone (hopefully you) subscribed this address to {} at {url}.\n\nConfirm: {confirm}\n\nIf it was not you, ignore this message or unsubscribe: {unsubscribe}\n",
                        self.ops().page_name
                    ),
                }
            }
            _ => {
                let Some(incident_id) = n.details.get("incident").and_then(|i| i.as_i64()) else {
                    return Ok(Err("not an incident notification".into()));
                };
                let snapshot = self.snapshot().await?;
                let incident = match self.incident(incident_id).await {
                    Ok(i) => i,
                    Err(ControlError::NotFound(m)) => return Ok(Err(m)),
                    Err(e) => return Err(e),
                };
                let latest = incident.updates.last();
                crate::notify::Message {
                    json: subscriber_payload(&snapshot, &incident, &unsubscribe),
                    subject: format!(
                        "[{}] {} — {}",
                        snapshot.name,
                        incident.title,
                        incident.status.as_str()
                    ),
                    text: format!(
                        "{}\n\nStatus: {}\n{}\n\n{}/incidents/{}\n\nUnsubscribe: {unsubscribe}\n",
                        incident.title,
                        incident.status.as_str(),
                        latest.map(|u| u.body.as_str()).unwrap_or_default(),
                        url,
                        incident.id
                    ),
                }
            }
        };
        let spec = rampart_api::ChannelSpec {
            kind: match row.subscriber.kind {
                SubscriberKind::Webhook => rampart_api::ChannelKind::Webhook,
                SubscriberKind::Email => rampart_api::ChannelKind::Email,
            },
            url: match row.subscriber.kind {
                SubscriberKind::Webhook => row.subscriber.target.clone(),
                SubscriberKind::Email => self.ops().smtp_url(),
            },
            routing_key: None,
            secret: Some(row.secret.clone()),
            to: match row.subscriber.kind {
                SubscriberKind::Email => vec![row.subscriber.target.clone()],
                SubscriberKind::Webhook => vec![],
            },
            from: None,
            severities: vec![],
        };
        Ok(Ok((spec, Some(message))))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn a_stampede_reads_the_store_once_per_snapshot_and_renders_each_resource_once() {
        let dir = std::env::temp_dir().join(format!(
            "rampart-snapshot-{}-{}",
            std::process::id(),
            fastrand::u32(..)
        ));
        tokio::fs::create_dir_all(&dir).await.expect("dir");
        let control = Arc::new(
            ControlPlane::open(&dir, &["production".into()])
                .await
                .expect("control plane"),
        );
        let reads = || control.ops().snapshot_reads.load(Ordering::Relaxed);

        // Fifty requests at once with nothing cached: one reads, the others wait for it.
        let first: Vec<_> =
            futures_util::future::join_all((0..50).map(|_| control.snapshot())).await;
        assert_eq!(reads(), 1);
        let first: Vec<Arc<Snapshot>> = first.into_iter().map(|s| s.expect("snapshot")).collect();
        assert!(first.iter().all(|s| Arc::ptr_eq(s, &first[0])));

        // Each resource renders once per snapshot, however many ask.
        let renders = AtomicUsize::new(0);
        for s in &first {
            let body = s.rendered("page", |_| {
                renders.fetch_add(1, Ordering::Relaxed);
                "page".into()
            });
            assert_eq!(&body[..], b"page");
        }
        assert_eq!(renders.load(Ordering::Relaxed), 1);

        // Once it is stale, one request re-reads while the others serve the stale snapshot.
        tokio::time::sleep(SNAPSHOT_TTL + std::time::Duration::from_millis(50)).await;
        let second: Vec<Arc<Snapshot>> =
            futures_util::future::join_all((0..50).map(|_| control.snapshot()))
                .await
                .into_iter()
                .map(|s| s.expect("snapshot"))
                .collect();
        assert_eq!(reads(), 2);
        let fresh = second.iter().filter(|s| !Arc::ptr_eq(s, &first[0])).count();
        assert_eq!(
            fresh, 1,
            "only the refreshing request waits for the new snapshot"
        );
        let _ = tokio::fs::remove_dir_all(&dir).await;
    }
}
