//! Alerts: at most one active per key; an alert, its event, its notifications and the incident
//! it opens or joins commit together.

use rampart_api::{Alert, ChannelSpec, Severity};
use sqlx::Row;

use super::*;
use crate::notify::{Notification, NotifyAction};

#[async_trait::async_trait]
impl AlertStore for Sqlite {
    async fn fire_alert(
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

    async fn resolve_alert(
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

    async fn alerts(&self, active_only: bool) -> Result<Vec<Alert>, StoreError> {
        let sql = if active_only {
            "SELECT * FROM alerts WHERE resolved_at IS NULL ORDER BY id DESC LIMIT 500"
        } else {
            "SELECT * FROM alerts ORDER BY id DESC LIMIT 500"
        };
        let rows = sqlx::query(sql).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(alert_row).collect())
    }
}

impl Sqlite {
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
}
