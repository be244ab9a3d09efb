//! Durable operations state: components, SLI minutes, alerts, channels, the outbox, incidents.
//!
//! As in `store`, a decision and everything it implies (its event, its notifications, the
//! incident it opens) are one transaction: a crash leaves all of it or none of it.

use std::collections::HashMap;

use rampart_api::{
    ActionItem, ActionItemSpec, Alert, ChannelSpec, ComponentSpec, Impact, Incident,
    IncidentChange, IncidentStatus, IncidentUpdate, OutboxEntry, Severity, Traffic,
};
use sqlx::Row;

use crate::notify::{Notification, NotifyAction};
use crate::slo::Counts;
use crate::store::{NewEvent, Store, StoreError, now};

/// An alert about to fire.
#[derive(Debug, Clone)]
pub struct NewAlert {
    pub key: String,
    pub name: String,
    pub severity: Severity,
    pub source: &'static str,
    pub summary: String,
    pub data: serde_json::Value,
}

/// The incident a paging alert opens when none is open for its environment.
#[derive(Debug, Clone)]
pub struct IncidentSeed {
    pub title: String,
    pub status: IncidentStatus,
    pub impact: Impact,
    pub environment: Option<String>,
    pub components: Vec<String>,
    pub cause: serde_json::Value,
    pub started_ms: u64,
    /// The first event of its window; the alert's own event when `None`.
    pub first_event: Option<i64>,
    pub body: String,
}

/// A notification waiting at the head of its channel's queue.
#[derive(Debug, Clone)]
pub struct Pending {
    pub id: i64,
    pub channel: String,
    pub notification: Notification,
    pub attempts: u32,
    pub next_at_ms: u64,
}

fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

fn severity(s: &str) -> Severity {
    if s == "page" {
        Severity::Page
    } else {
        Severity::Ticket
    }
}

fn impact(s: &str) -> Impact {
    serde_json::from_value(serde_json::Value::String(s.to_owned())).unwrap_or(Impact::Minor)
}

fn alert_row(r: &sqlx::sqlite::SqliteRow) -> Alert {
    let data: String = r.get("data");
    Alert {
        id: r.get("id"),
        key: r.get("key"),
        name: r.get("name"),
        severity: severity(r.get("severity")),
        source: r.get("source"),
        summary: r.get("summary"),
        fired_at: r.get("fired_at"),
        resolved_at: r.get("resolved_at"),
        incident: r.get("incident"),
        data: serde_json::from_str(&data).unwrap_or_default(),
    }
}

impl Store {
    pub async fn put_component(&self, name: &str, spec: &ComponentSpec) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        sqlx::query("INSERT INTO components (name, spec, position, created_at, updated_at) VALUES (?, ?, (SELECT COALESCE(MAX(position), -1) + 1 FROM components), ?, ?) ON CONFLICT(name) DO UPDATE SET spec = excluded.spec, updated_at = excluded.updated_at")
            .bind(name)
            .bind(to_json(spec))
            .bind(now())
            .bind(now())
            .execute(&mut *tx)
            .await?;
        let event = NewEvent {
            kind: "component.set",
            subject: name,
            actor: "control",
            data: serde_json::to_value(spec).unwrap_or_default(),
        };
        Self::append(&mut tx, &event).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn delete_component(&self, name: &str, actor: &str) -> Result<bool, StoreError> {
        let mut tx = self.write().await?;
        let gone = sqlx::query("DELETE FROM components WHERE name = ?")
            .bind(name)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            > 0;
        if gone {
            let event = NewEvent {
                kind: "component.deleted",
                subject: name,
                actor,
                data: serde_json::json!({}),
            };
            Self::append(&mut tx, &event).await?;
        }
        tx.commit().await?;
        Ok(gone)
    }

    /// When each component was created and last changed, by name.
    pub async fn component_times(&self) -> Result<HashMap<String, (String, String)>, StoreError> {
        let rows = sqlx::query("SELECT name, created_at, updated_at FROM components")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| (r.get(0), (r.get(1), r.get(2))))
            .collect())
    }

    /// Components in the order they were added.
    pub async fn components(&self) -> Result<Vec<(String, ComponentSpec)>, StoreError> {
        let rows = sqlx::query("SELECT name, spec FROM components ORDER BY position")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                let spec: String = r.get(1);
                Some((r.get(0), serde_json::from_str(&spec).ok()?))
            })
            .collect())
    }

    /// Saves completed minutes of SLI series.
    pub async fn save_minutes(&self, points: &[(String, u64, Counts)]) -> Result<(), StoreError> {
        if points.is_empty() {
            return Ok(());
        }
        let mut tx = self.write().await?;
        for (series, minute, c) in points {
            sqlx::query("INSERT INTO sli_minutes (series, minute, total, failed) VALUES (?, ?, ?, ?) ON CONFLICT(series, minute) DO UPDATE SET total = total + excluded.total, failed = failed + excluded.failed")
                .bind(series)
                .bind(*minute as i64)
                .bind(c.total as i64)
                .bind(c.failed as i64)
                .execute(&mut *tx)
                .await?;
        }
        let horizon = points.iter().map(|p| p.1).max().unwrap_or(0);
        let cutoff = horizon.saturating_sub(crate::slo::MINUTE_RETENTION) as i64;
        sqlx::query("DELETE FROM sli_minutes WHERE minute < ?")
            .bind(cutoff)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Stored minutes of every series, ascending.
    pub async fn load_minutes(&self) -> Result<HashMap<String, Vec<(u64, Counts)>>, StoreError> {
        let rows = sqlx::query(
            "SELECT series, minute, total, failed FROM sli_minutes ORDER BY series, minute",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut out: HashMap<String, Vec<(u64, Counts)>> = HashMap::new();
        for r in rows {
            let (minute, total, failed): (i64, i64, i64) = (r.get(1), r.get(2), r.get(3));
            out.entry(r.get(0)).or_default().push((
                minute as u64,
                Counts {
                    total: total as u64,
                    failed: failed as u64,
                },
            ));
        }
        Ok(out)
    }

    pub async fn put_channel(
        &self,
        name: &str,
        spec: &ChannelSpec,
        actor: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO channels (name, spec) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET spec = excluded.spec",
        )
        .bind(name)
        .bind(to_json(spec))
        .execute(&mut *tx)
        .await?;
        let event = NewEvent {
            kind: "channel.set",
            subject: name,
            actor,
            data: serde_json::json!({ "kind": spec.kind, "url": spec.url }),
        };
        Self::append(&mut tx, &event).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Channels with their pending and failed notification counts.
    pub async fn channels(&self) -> Result<Vec<(String, ChannelSpec, u64, u64)>, StoreError> {
        let rows = sqlx::query("SELECT c.name, c.spec, (SELECT COUNT(*) FROM outbox o WHERE o.channel = c.name AND o.delivered_at IS NULL AND o.failed_at IS NULL), (SELECT COUNT(*) FROM outbox o WHERE o.channel = c.name AND o.failed_at IS NOT NULL) FROM channels c ORDER BY c.name")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                let spec: String = r.get(1);
                let (pending, failed): (i64, i64) = (r.get(2), r.get(3));
                Some((
                    r.get(0),
                    serde_json::from_str(&spec).ok()?,
                    pending as u64,
                    failed as u64,
                ))
            })
            .collect())
    }

    /// Queues `n` for `channel`; a notification with the same key is queued once.
    pub(crate) async fn enqueue(
        tx: &mut sqlx::SqliteConnection,
        channel: &str,
        n: &Notification,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT OR IGNORE INTO outbox (channel, key, notification, created_at) VALUES (?, ?, ?, ?)")
            .bind(channel)
            .bind(&n.key)
            .bind(to_json(n))
            .bind(now())
            .execute(tx)
            .await?;
        Ok(())
    }

    /// The oldest undelivered notification of each channel (delivery is in order per channel).
    pub async fn outbox_heads(&self) -> Result<Vec<Pending>, StoreError> {
        let rows = sqlx::query("SELECT id, channel, notification, attempts, next_at_ms FROM outbox WHERE id IN (SELECT MIN(id) FROM outbox WHERE delivered_at IS NULL AND failed_at IS NULL GROUP BY channel)")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                let n: String = r.get(2);
                let (attempts, next): (i64, i64) = (r.get(3), r.get(4));
                Some(Pending {
                    id: r.get(0),
                    channel: r.get(1),
                    notification: serde_json::from_str(&n).ok()?,
                    attempts: attempts as u32,
                    next_at_ms: next as u64,
                })
            })
            .collect())
    }

    /// Marks a notification delivered (or given up on, with `failed`), with its event.
    pub async fn outbox_done(
        &self,
        p: &Pending,
        failed: Option<&str>,
        attempts: u32,
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        let sql = if failed.is_some() {
            "UPDATE outbox SET failed_at = ?, attempts = ?, last_error = ? WHERE id = ?"
        } else {
            "UPDATE outbox SET delivered_at = ?, attempts = ?, last_error = ? WHERE id = ?"
        };
        sqlx::query(sql)
            .bind(now())
            .bind(i64::from(attempts))
            .bind(failed)
            .bind(p.id)
            .execute(&mut *tx)
            .await?;
        let event = NewEvent {
            kind: if failed.is_some() {
                "notification.failed"
            } else {
                "notification.delivered"
            },
            subject: &p.channel,
            actor: "control",
            data: serde_json::json!({
                "key": p.notification.key,
                "action": p.notification.action,
                "summary": p.notification.summary,
                "attempts": attempts,
                "error": failed,
            }),
        };
        Self::append(&mut tx, &event).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Schedules another attempt.
    pub async fn outbox_retry(
        &self,
        p: &Pending,
        attempts: u32,
        next_at_ms: u64,
        error: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE outbox SET attempts = ?, next_at_ms = ?, last_error = ? WHERE id = ?")
            .bind(i64::from(attempts))
            .bind(next_at_ms as i64)
            .bind(error)
            .bind(p.id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The latest 500 notifications, newest first.
    pub async fn outbox(&self) -> Result<Vec<OutboxEntry>, StoreError> {
        let rows = sqlx::query("SELECT id, channel, key, attempts, created_at, delivered_at, failed_at, last_error FROM outbox ORDER BY id DESC LIMIT 500")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let attempts: i64 = r.get(3);
                OutboxEntry {
                    id: r.get(0),
                    channel: r.get(1),
                    key: r.get(2),
                    attempts: attempts as u32,
                    created_at: r.get(4),
                    delivered_at: r.get(5),
                    failed_at: r.get(6),
                    last_error: r.get(7),
                }
            })
            .collect())
    }

    /// Fires an alert unless one with its key is active. In the same transaction: its event,
    /// its notifications, and for a page the incident it opens or joins. Returns the new alert.
    pub async fn fire_alert(
        &self,
        a: &NewAlert,
        channels: &[(String, ChannelSpec)],
        seed: Option<&IncidentSeed>,
    ) -> Result<Option<Alert>, StoreError> {
        let mut tx = self.write().await?;
        let inserted = sqlx::query("INSERT OR IGNORE INTO alerts (key, name, severity, source, summary, data, fired_at) VALUES (?, ?, ?, ?, ?, ?, ?)")
            .bind(&a.key)
            .bind(&a.name)
            .bind(a.severity.as_str())
            .bind(a.source)
            .bind(&a.summary)
            .bind(a.data.to_string())
            .bind(now())
            .execute(&mut *tx)
            .await?;
        if inserted.rows_affected() == 0 {
            return Ok(None);
        }
        let id = inserted.last_insert_rowid();
        let event = NewEvent {
            kind: "alert.fired",
            subject: &a.key,
            actor: "control",
            data: serde_json::json!({ "alert": id, "name": a.name, "severity": a.severity, "summary": a.summary, "data": a.data }),
        };
        let seq = Self::append(&mut tx, &event).await?;
        if let Some(seed) = seed.filter(|_| a.severity == Severity::Page) {
            let open: Option<i64> = sqlx::query("SELECT id FROM incidents WHERE resolved_at IS NULL AND environment IS ? ORDER BY id LIMIT 1")
                .bind(&seed.environment)
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| r.get(0));
            let incident = match open {
                Some(i) => {
                    Self::identify_cause(&mut tx, i, seed).await?;
                    i
                }
                None => {
                    Self::open_incident_in(
                        &mut tx,
                        seed,
                        seed.first_event.unwrap_or(seq),
                        "control",
                    )
                    .await?
                }
            };
            sqlx::query("UPDATE alerts SET incident = ? WHERE id = ?")
                .bind(incident)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        let alert = alert_row(
            &sqlx::query("SELECT * FROM alerts WHERE id = ?")
                .bind(id)
                .fetch_one(&mut *tx)
                .await?,
        );
        Self::queue_alert_notification(&mut tx, &alert, NotifyAction::Trigger, channels).await?;
        tx.commit().await?;
        Ok(Some(alert))
    }

    /// Queues an alert's notification for the channels that take its severity. The paging
    /// alerts of an incident page as the incident: the first active one triggers it, the last
    /// to resolve resolves it, and the others notify nobody.
    async fn queue_alert_notification(
        tx: &mut sqlx::SqliteConnection,
        alert: &Alert,
        action: NotifyAction,
        channels: &[(String, ChannelSpec)],
    ) -> Result<(), StoreError> {
        let n = match alert.incident {
            Some(i) => {
                // When firing, the alert itself is among the active ones.
                let others = Self::active_alerts_of(&mut *tx, i).await?
                    - i64::from(action == NotifyAction::Trigger);
                if others > 0 {
                    return Ok(());
                }
                Notification::for_incident(alert, i, action)
            }
            None => Notification::for_alert(alert, action),
        };
        for (name, spec) in channels {
            if crate::notify::wants(spec, alert.severity) {
                Self::enqueue(&mut *tx, name, &n).await?;
            }
        }
        Ok(())
    }

    /// An alert that knows its cause (a release rolled back) joining an incident opened without
    /// one (say, an SLO burning first): the incident takes the cause, its window widens to the
    /// cause's first event, and it moves to identified, with an update saying so.
    async fn identify_cause(
        tx: &mut sqlx::SqliteConnection,
        incident: i64,
        seed: &IncidentSeed,
    ) -> Result<(), StoreError> {
        if seed.cause.get("release").is_none() {
            return Ok(());
        }
        let cause: String = sqlx::query("SELECT cause FROM incidents WHERE id = ?")
            .bind(incident)
            .fetch_one(&mut *tx)
            .await?
            .get(0);
        let known: serde_json::Value = serde_json::from_str(&cause).unwrap_or_default();
        if known.get("release").is_some() || known.get("by").is_some() {
            return Ok(());
        }
        sqlx::query("UPDATE incidents SET title = ?, cause = ?, status = ?, first_event = MIN(first_event, COALESCE(?, first_event)), started_ms = MIN(started_ms, ?) WHERE id = ?")
            .bind(&seed.title)
            .bind(seed.cause.to_string())
            .bind(seed.status.as_str())
            .bind(seed.first_event)
            .bind(seed.started_ms as i64)
            .bind(incident)
            .execute(&mut *tx)
            .await?;
        let update = sqlx::query("INSERT INTO incident_updates (incident, at, status, body, actor) VALUES (?, ?, ?, ?, 'control')")
            .bind(incident)
            .bind(now())
            .bind(seed.status.as_str())
            .bind(&seed.body)
            .execute(&mut *tx)
            .await?
            .last_insert_rowid();
        let event = NewEvent {
            kind: "incident.updated",
            subject: &format!("incident-{incident}"),
            actor: "control",
            data: serde_json::json!({ "incident": incident, "status": seed.status, "body": seed.body, "cause": seed.cause }),
        };
        Self::append(&mut *tx, &event).await?;
        Self::enqueue_subscribers(&mut *tx, incident, update, seed.status.as_str()).await?;
        Ok(())
    }

    async fn active_alerts_of(
        tx: &mut sqlx::SqliteConnection,
        incident: i64,
    ) -> Result<i64, StoreError> {
        Ok(
            sqlx::query("SELECT COUNT(*) FROM alerts WHERE incident = ? AND resolved_at IS NULL")
                .bind(incident)
                .fetch_one(tx)
                .await?
                .get(0),
        )
    }

    /// Resolves the active alert with `key`, with its event and notifications.
    pub async fn resolve_alert(
        &self,
        key: &str,
        channels: &[(String, ChannelSpec)],
    ) -> Result<Option<Alert>, StoreError> {
        let mut tx = self.write().await?;
        let row = sqlx::query(
            "UPDATE alerts SET resolved_at = ? WHERE key = ? AND resolved_at IS NULL RETURNING *",
        )
        .bind(now())
        .bind(key)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let alert = alert_row(&row);
        let event = NewEvent {
            kind: "alert.resolved",
            subject: key,
            actor: "control",
            data: serde_json::json!({ "alert": alert.id, "name": alert.name, "summary": alert.summary }),
        };
        Self::append(&mut tx, &event).await?;
        Self::queue_alert_notification(&mut tx, &alert, NotifyAction::Resolve, channels).await?;
        tx.commit().await?;
        Ok(Some(alert))
    }

    /// Alerts, newest first (the latest 500).
    pub async fn alerts(&self, active_only: bool) -> Result<Vec<Alert>, StoreError> {
        let sql = if active_only {
            "SELECT * FROM alerts WHERE resolved_at IS NULL ORDER BY id DESC LIMIT 500"
        } else {
            "SELECT * FROM alerts ORDER BY id DESC LIMIT 500"
        };
        let rows = sqlx::query(sql).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(alert_row).collect())
    }

    async fn open_incident_in(
        tx: &mut sqlx::SqliteConnection,
        seed: &IncidentSeed,
        first_event: i64,
        actor: &str,
    ) -> Result<i64, StoreError> {
        let at = now();
        let id = sqlx::query("INSERT INTO incidents (title, status, impact, environment, components, cause, opened_at, started_ms, first_event) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
            .bind(&seed.title)
            .bind(seed.status.as_str())
            .bind(seed.impact.as_str())
            .bind(&seed.environment)
            .bind(to_json(&seed.components))
            .bind(seed.cause.to_string())
            .bind(&at)
            .bind(seed.started_ms as i64)
            .bind(first_event)
            .execute(&mut *tx)
            .await?
            .last_insert_rowid();
        let update = sqlx::query("INSERT INTO incident_updates (incident, at, status, body, actor) VALUES (?, ?, ?, ?, ?)")
            .bind(id)
            .bind(&at)
            .bind(seed.status.as_str())
            .bind(&seed.body)
            .bind(actor)
            .execute(&mut *tx)
            .await?
            .last_insert_rowid();
        Self::enqueue_subscribers(&mut *tx, id, update, seed.status.as_str()).await?;
        let event = NewEvent {
            kind: "incident.opened",
            subject: &format!("incident-{id}"),
            actor,
            data: serde_json::json!({ "incident": id, "title": seed.title, "status": seed.status, "impact": seed.impact, "cause": seed.cause }),
        };
        Self::append(&mut *tx, &event).await?;
        Ok(id)
    }

    /// Opens an incident by hand.
    pub async fn open_incident(&self, seed: &IncidentSeed, actor: &str) -> Result<i64, StoreError> {
        let mut tx = self.write().await?;
        let first: i64 = sqlx::query("SELECT COALESCE(MAX(seq), 0) + 1 FROM events")
            .fetch_one(&mut *tx)
            .await?
            .get(0);
        let id =
            Self::open_incident_in(&mut tx, seed, seed.first_event.unwrap_or(first), actor).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// The first event of a release's story: the earliest event about its version since the
    /// environment's previous release ended, or the release's start.
    pub async fn release_first_event(&self, release: i64) -> Result<Option<i64>, StoreError> {
        let row = sqlx::query("SELECT r.environment, r.version, (SELECT MIN(seq) FROM events WHERE kind = 'release.started' AND json_extract(data, '$.release') = r.id) FROM releases r WHERE r.id = ?")
            .bind(release)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let (env, version, started): (String, String, Option<i64>) =
            (row.get(0), row.get(1), row.get(2));
        let Some(started) = started else {
            return Ok(None);
        };
        let first: Option<i64> = sqlx::query("SELECT MIN(seq) FROM events WHERE seq <= ? AND seq > (SELECT COALESCE(MAX(seq), 0) FROM events WHERE seq < ? AND subject = ? AND kind IN ('release.rolled_back', 'release.succeeded_all_waves', 'rollback')) AND (subject = ? OR json_extract(data, '$.version') = ?)")
            .bind(started)
            .bind(started)
            .bind(&env)
            .bind(&version)
            .bind(&version)
            .fetch_one(&self.pool)
            .await?
            .get(0);
        Ok(Some(first.unwrap_or(started)))
    }

    pub async fn incident(&self, id: i64) -> Result<Option<Incident>, StoreError> {
        let Some(r) = sqlx::query("SELECT * FROM incidents WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let updates = sqlx::query("SELECT id, at, status, body, actor FROM incident_updates WHERE incident = ? ORDER BY id")
            .bind(id)
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(|u| IncidentUpdate {
                id: u.get(0),
                at: u.get(1),
                status: IncidentStatus::parse(u.get(2)).unwrap_or(IncidentStatus::Investigating),
                body: u.get(3),
                actor: u.get(4),
            })
            .collect();
        let action_items = sqlx::query(
            "SELECT id, title, owner, state FROM action_items WHERE incident = ? ORDER BY id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(|a| ActionItem {
            id: a.get(0),
            title: a.get(1),
            owner: a.get(2),
            state: a.get(3),
        })
        .collect();
        let alerts = sqlx::query("SELECT id FROM alerts WHERE incident = ? ORDER BY id")
            .bind(id)
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(|a| a.get(0))
            .collect();
        let components: String = r.get("components");
        let cause: String = r.get("cause");
        let (failed, total): (i64, i64) = (r.get("failed"), r.get("total"));
        Ok(Some(Incident {
            id,
            title: r.get("title"),
            status: IncidentStatus::parse(r.get("status")).unwrap_or(IncidentStatus::Investigating),
            impact: impact(r.get("impact")),
            environment: r.get("environment"),
            components: serde_json::from_str(&components).unwrap_or_default(),
            cause: serde_json::from_str(&cause).unwrap_or_default(),
            opened_at: r.get("opened_at"),
            resolved_at: r.get("resolved_at"),
            first_event: r.get("first_event"),
            last_event: r.get("last_event"),
            traffic: Traffic {
                failed: failed as u64,
                total: total as u64,
            },
            summary: r.get("summary"),
            root_cause: r.get("root_cause"),
            resolution: r.get("resolution"),
            updates,
            action_items,
            alerts,
        }))
    }

    /// When an incident's window starts, in milliseconds since the epoch.
    pub async fn incident_started_ms(&self, id: i64) -> Result<Option<u64>, StoreError> {
        Ok(sqlx::query("SELECT started_ms FROM incidents WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| r.get::<i64, _>(0) as u64))
    }

    /// Incidents, newest first, at most `limit`; `open_only` leaves out resolved ones.
    pub async fn incident_ids(&self, open_only: bool, limit: i64) -> Result<Vec<i64>, StoreError> {
        let sql = if open_only {
            "SELECT id FROM incidents WHERE resolved_at IS NULL ORDER BY id DESC LIMIT ?"
        } else {
            "SELECT id FROM incidents ORDER BY id DESC LIMIT ?"
        };
        Ok(sqlx::query(sql)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(|r| r.get(0))
            .collect())
    }

    /// Applies a change: narrative fields, impact, and a status update with its event. On
    /// resolution the window closes and `traffic` is frozen into the record.
    pub async fn change_incident(
        &self,
        id: i64,
        change: &IncidentChange,
        traffic: Option<Traffic>,
        actor: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        let at = now();
        for (sql, value) in [
            (
                "UPDATE incidents SET summary = ? WHERE id = ?",
                &change.summary,
            ),
            (
                "UPDATE incidents SET root_cause = ? WHERE id = ?",
                &change.root_cause,
            ),
            (
                "UPDATE incidents SET resolution = ? WHERE id = ?",
                &change.resolution,
            ),
        ] {
            if let Some(v) = value {
                sqlx::query(sql).bind(v).bind(id).execute(&mut *tx).await?;
            }
        }
        if let Some(i) = change.impact {
            sqlx::query("UPDATE incidents SET impact = ? WHERE id = ?")
                .bind(i.as_str())
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        let current: String = sqlx::query("SELECT status FROM incidents WHERE id = ?")
            .bind(id)
            .fetch_one(&mut *tx)
            .await?
            .get(0);
        let status = change
            .status
            .unwrap_or(IncidentStatus::parse(&current).unwrap_or(IncidentStatus::Investigating));
        if change.status.is_some() || change.body.is_some() {
            sqlx::query("UPDATE incidents SET status = ? WHERE id = ?")
                .bind(status.as_str())
                .bind(id)
                .execute(&mut *tx)
                .await?;
            let body = change.body.clone().unwrap_or_default();
            let update = sqlx::query("INSERT INTO incident_updates (incident, at, status, body, actor) VALUES (?, ?, ?, ?, ?)")
                .bind(id)
                .bind(&at)
                .bind(status.as_str())
                .bind(&body)
                .bind(actor)
                .execute(&mut *tx)
                .await?
                .last_insert_rowid();
            Self::enqueue_subscribers(&mut tx, id, update, status.as_str()).await?;
            let kind = if status == IncidentStatus::Resolved {
                "incident.resolved"
            } else {
                "incident.updated"
            };
            let event = NewEvent {
                kind,
                subject: &format!("incident-{id}"),
                actor,
                data: serde_json::json!({ "incident": id, "status": status, "body": body }),
            };
            let seq = Self::append(&mut tx, &event).await?;
            if status == IncidentStatus::Resolved {
                let t = traffic.unwrap_or_default();
                sqlx::query("UPDATE incidents SET resolved_at = ?, last_event = ?, failed = ?, total = ? WHERE id = ? AND resolved_at IS NULL")
                    .bind(&at)
                    .bind(seq)
                    .bind(t.failed as i64)
                    .bind(t.total as i64)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn add_action_item(
        &self,
        incident: i64,
        item: &ActionItemSpec,
        actor: &str,
    ) -> Result<i64, StoreError> {
        let mut tx = self.write().await?;
        let id = sqlx::query(
            "INSERT INTO action_items (incident, title, owner, state) VALUES (?, ?, ?, ?)",
        )
        .bind(incident)
        .bind(&item.title)
        .bind(&item.owner)
        .bind(&item.state)
        .execute(&mut *tx)
        .await?
        .last_insert_rowid();
        let event = NewEvent {
            kind: "incident.action_item",
            subject: &format!("incident-{incident}"),
            actor,
            data: serde_json::json!({ "incident": incident, "item": id, "title": item.title, "owner": item.owner, "state": item.state }),
        };
        Self::append(&mut tx, &event).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Changes an action item; false if the incident has no such item.
    pub async fn set_action_item(
        &self,
        incident: i64,
        item: i64,
        spec: &ActionItemSpec,
        actor: &str,
    ) -> Result<bool, StoreError> {
        let mut tx = self.write().await?;
        let changed = sqlx::query(
            "UPDATE action_items SET title = ?, owner = ?, state = ? WHERE id = ? AND incident = ?",
        )
        .bind(&spec.title)
        .bind(&spec.owner)
        .bind(&spec.state)
        .bind(item)
        .bind(incident)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            > 0;
        if changed {
            let event = NewEvent {
                kind: "incident.action_item",
                subject: &format!("incident-{incident}"),
                actor,
                data: serde_json::json!({ "incident": incident, "item": item, "title": spec.title, "owner": spec.owner, "state": spec.state }),
            };
            Self::append(&mut tx, &event).await?;
        }
        tx.commit().await?;
        Ok(changed)
    }

    /// Events with sequence numbers in `first..=last` (at most 5000).
    pub async fn events_between(
        &self,
        first: i64,
        last: i64,
    ) -> Result<Vec<rampart_api::Event>, StoreError> {
        let rows = sqlx::query("SELECT seq, at, kind, subject, actor, data FROM events WHERE seq >= ? AND seq <= ? ORDER BY seq LIMIT 5000")
            .bind(first)
            .bind(last)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(crate::store::event_row).collect())
    }

    /// A release's story: from its `release.started` event, its own events (waves, gate
    /// verdicts, the end), the applies and convergence of its environment, and the
    /// environment's next release start (where the story ends at the latest); at most 5000.
    pub async fn release_events(
        &self,
        release: i64,
        env: &str,
    ) -> Result<Vec<rampart_api::Event>, StoreError> {
        let rows = sqlx::query("SELECT seq, at, kind, subject, actor, data FROM events WHERE seq >= (SELECT MIN(seq) FROM events WHERE kind = 'release.started' AND json_extract(data, '$.release') = ?1) AND (json_extract(data, '$.release') = ?1 OR (kind = 'instance.applied' AND json_extract(data, '$.environment') = ?2) OR (subject = ?2 AND kind IN ('environment.converged', 'release.started', 'release.succeeded', 'rollback'))) ORDER BY seq LIMIT 5000")
            .bind(release)
            .bind(env)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(crate::store::event_row).collect())
    }
}
