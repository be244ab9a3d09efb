//! Durable status-page state: maintenance windows and subscribers, and the notifications an
//! incident's changes queue for subscribers (in the transaction that changes the incident).

use rampart_api::{MaintenanceSpec, Severity, Subscriber, SubscriberKind};
use sqlx::Row;

use super::*;
use crate::notify::{Notification, NotifyAction};

#[async_trait::async_trait]
impl StatusStore for Sqlite {
    async fn insert_maintenance(
        &self,
        spec: &MaintenanceSpec,
        actor: &str,
    ) -> Result<i64, StoreError> {
        let mut tx = self.write().await?;
        let id = sqlx::query("INSERT INTO maintenances (title, body, components, scheduled_for, scheduled_until, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?, ?)")
            .bind(&spec.title)
            .bind(&spec.body)
            .bind(serde_json::to_string(&spec.components).unwrap_or_default())
            .bind(&spec.scheduled_for)
            .bind(&spec.scheduled_until)
            .bind(now())
            .bind(actor)
            .execute(&mut *tx)
            .await?
            .last_insert_rowid();
        let event = NewEvent {
            kind: "maintenance.scheduled",
            subject: &format!("maintenance-{id}"),
            actor,
            data: serde_json::json!({ "maintenance": id, "title": spec.title, "components": spec.components, "from": spec.scheduled_for, "until": spec.scheduled_until }),
        };
        Self::append(&mut tx, &event).await?;
        tx.commit().await?;
        Ok(id)
    }

    async fn cancel_maintenance(&self, id: i64, actor: &str) -> Result<bool, StoreError> {
        let mut tx = self.write().await?;
        let done = sqlx::query(
            "UPDATE maintenances SET cancelled_at = ? WHERE id = ? AND cancelled_at IS NULL",
        )
        .bind(now())
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            > 0;
        if done {
            let event = NewEvent {
                kind: "maintenance.cancelled",
                subject: &format!("maintenance-{id}"),
                actor,
                data: serde_json::json!({ "maintenance": id }),
            };
            Self::append(&mut tx, &event).await?;
        }
        tx.commit().await?;
        Ok(done)
    }

    async fn maintenances(&self) -> Result<Vec<MaintenanceRow>, StoreError> {
        let rows = sqlx::query("SELECT * FROM maintenances ORDER BY scheduled_for DESC LIMIT 200")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|r| {
                let components: String = r.get("components");
                MaintenanceRow {
                    id: r.get("id"),
                    spec: MaintenanceSpec {
                        title: r.get("title"),
                        body: r.get("body"),
                        components: serde_json::from_str(&components).unwrap_or_default(),
                        scheduled_for: r.get("scheduled_for"),
                        scheduled_until: r.get("scheduled_until"),
                    },
                    created_at: r.get("created_at"),
                    created_by: r.get("created_by"),
                    cancelled_at: r.get("cancelled_at"),
                }
            })
            .collect())
    }

    async fn add_subscriber(
        &self,
        kind: SubscriberKind,
        target: &str,
        confirmed: bool,
        actor: &str,
    ) -> Result<(SubscriberRow, bool), StoreError> {
        let mut tx = self.write().await?;
        let existing = sqlx::query(
            "SELECT * FROM subscribers WHERE kind = ? AND target = ? AND unsubscribed_at IS NULL",
        )
        .bind(kind_str(kind))
        .bind(target)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(r) = existing {
            return Ok((subscriber_row(&r), false));
        }
        let at = now();
        let id = sqlx::query("INSERT INTO subscribers (kind, target, secret, token, created_at, confirmed_at) VALUES (?, ?, ?, ?, ?, ?)")
            .bind(kind_str(kind))
            .bind(target)
            .bind(crate::tokens::secret("whsec_"))
            .bind(crate::tokens::secret(""))
            .bind(&at)
            .bind(confirmed.then_some(&at))
            .execute(&mut *tx)
            .await?
            .last_insert_rowid();
        let event = NewEvent {
            kind: "subscriber.added",
            subject: &format!("subscriber-{id}"),
            actor,
            data: serde_json::json!({ "subscriber": id, "kind": kind, "confirmed": confirmed }),
        };
        Self::append(&mut tx, &event).await?;
        if !confirmed {
            let n = Notification {
                key: format!("subscriber-{id}-confirm"),
                dedup_key: format!("rampart-subscriber-{id}"),
                action: NotifyAction::Confirm,
                severity: Severity::Ticket,
                name: "subscription".into(),
                summary: "Confirm your subscription".into(),
                at: at.clone(),
                details: serde_json::json!({ "subscriber": id }),
            };
            Self::enqueue(&mut tx, &subscriber_channel(id), &n).await?;
        }
        let row = sqlx::query("SELECT * FROM subscribers WHERE id = ?")
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok((subscriber_row(&row), true))
    }

    async fn confirm_subscriber(&self, token: &str) -> Result<Option<SubscriberRow>, StoreError> {
        let row = sqlx::query("UPDATE subscribers SET confirmed_at = COALESCE(confirmed_at, ?) WHERE token = ? AND unsubscribed_at IS NULL RETURNING *")
            .bind(now())
            .bind(token)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(subscriber_row))
    }

    async fn unsubscribe(&self, token: &str) -> Result<Option<SubscriberRow>, StoreError> {
        let row = sqlx::query("UPDATE subscribers SET unsubscribed_at = COALESCE(unsubscribed_at, ?) WHERE token = ? RETURNING *")
            .bind(now())
            .bind(token)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(subscriber_row))
    }

    async fn subscriber(&self, id: i64) -> Result<Option<SubscriberRow>, StoreError> {
        let row = sqlx::query("SELECT * FROM subscribers WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(subscriber_row))
    }

    async fn subscribers(&self) -> Result<Vec<Subscriber>, StoreError> {
        let rows = sqlx::query("SELECT * FROM subscribers ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(|r| subscriber_row(r).subscriber).collect())
    }
}

impl Sqlite {
    /// Queues a notification of an incident's update `update` for every confirmed subscriber.
    pub(crate) async fn enqueue_subscribers(
        tx: &mut sqlx::SqliteConnection,
        incident: i64,
        update: i64,
        status: &str,
    ) -> Result<(), StoreError> {
        let ids: Vec<i64> = sqlx::query(
            "SELECT id FROM subscribers WHERE confirmed_at IS NOT NULL AND unsubscribed_at IS NULL",
        )
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
        for id in ids {
            let n = Notification {
                key: format!("incident-{incident}-update-{update}"),
                dedup_key: format!("rampart-incident-{incident}"),
                action: NotifyAction::Incident,
                severity: Severity::Ticket,
                name: "incident".into(),
                summary: format!("incident {incident} {status}"),
                at: now(),
                details: serde_json::json!({ "incident": incident, "update": update }),
            };
            Self::enqueue(&mut *tx, &subscriber_channel(id), &n).await?;
        }
        Ok(())
    }
}
