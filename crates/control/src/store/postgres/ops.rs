//! Durable operations state: components, SLI minutes, channels and the outbox.
//!
//! As in `store`, a decision and everything it implies (its event, its notifications, the
//! incident it opens) are one transaction: a crash leaves all of it or none of it.

use std::collections::HashMap;

use rampart_api::{ChannelSpec, ComponentSpec, OutboxEntry};
use sqlx::Row;

use super::*;
use crate::notify::Notification;
use crate::slo::Counts;

#[async_trait::async_trait]
impl OpsStore for Postgres {
    async fn put_component(&self, name: &str, spec: &ComponentSpec) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        sqlx::query("INSERT INTO components (name, spec, position, created_at, updated_at) VALUES ($1, $2, (SELECT COALESCE(MAX(position), -1) + 1 FROM components), $3, $4) ON CONFLICT(name) DO UPDATE SET spec = excluded.spec, updated_at = excluded.updated_at")
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

    async fn delete_component(&self, name: &str, actor: &str) -> Result<bool, StoreError> {
        let mut tx = self.write().await?;
        let gone = sqlx::query("DELETE FROM components WHERE name = $1")
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

    async fn component_times(&self) -> Result<HashMap<String, (String, String)>, StoreError> {
        let rows = sqlx::query("SELECT name, created_at, updated_at FROM components")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| (r.get(0), (r.get(1), r.get(2))))
            .collect())
    }

    async fn components(&self) -> Result<Vec<(String, ComponentSpec)>, StoreError> {
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

    async fn save_minutes(&self, points: &[(String, u64, Counts)]) -> Result<(), StoreError> {
        if points.is_empty() {
            return Ok(());
        }
        let mut tx = self.write().await?;
        for (series, minute, c) in points {
            sqlx::query("INSERT INTO sli_minutes (series, minute, total, failed) VALUES ($1, $2, $3, $4) ON CONFLICT(series, minute) DO UPDATE SET total = sli_minutes.total + excluded.total, failed = sli_minutes.failed + excluded.failed")
                .bind(series)
                .bind(*minute as i64)
                .bind(c.total as i64)
                .bind(c.failed as i64)
                .execute(&mut *tx)
                .await?;
        }
        let horizon = points.iter().map(|p| p.1).max().unwrap_or(0);
        let cutoff = horizon.saturating_sub(crate::slo::MINUTE_RETENTION) as i64;
        sqlx::query("DELETE FROM sli_minutes WHERE minute < $1")
            .bind(cutoff)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn load_minutes(&self) -> Result<HashMap<String, Vec<(u64, Counts)>>, StoreError> {
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

    async fn put_channel(
        &self,
        name: &str,
        spec: &ChannelSpec,
        actor: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO channels (name, spec) VALUES ($1, $2) ON CONFLICT(name) DO UPDATE SET spec = excluded.spec",
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

    async fn channels(&self) -> Result<Vec<(String, ChannelSpec, u64, u64)>, StoreError> {
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

    async fn outbox_heads(&self) -> Result<Vec<Pending>, StoreError> {
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

    async fn outbox_done(
        &self,
        p: &Pending,
        failed: Option<&str>,
        attempts: u32,
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        let sql = if failed.is_some() {
            "UPDATE outbox SET failed_at = $1, attempts = $2, last_error = $3 WHERE id = $4"
        } else {
            "UPDATE outbox SET delivered_at = $1, attempts = $2, last_error = $3 WHERE id = $4"
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

    async fn outbox_retry(
        &self,
        p: &Pending,
        attempts: u32,
        next_at_ms: u64,
        error: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        sqlx::query(
            "UPDATE outbox SET attempts = $1, next_at_ms = $2, last_error = $3 WHERE id = $4",
        )
        .bind(i64::from(attempts))
        .bind(next_at_ms as i64)
        .bind(error)
        .bind(p.id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn outbox(&self) -> Result<Vec<OutboxEntry>, StoreError> {
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
}

impl Postgres {
    /// Queues `n` for `channel`; a notification with the same key is queued once.
    pub(crate) async fn enqueue(
        tx: &mut sqlx::PgConnection,
        channel: &str,
        n: &Notification,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO outbox (channel, key, notification, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING")
            .bind(channel)
            .bind(&n.key)
            .bind(to_json(n))
            .bind(now())
            .execute(tx)
            .await?;
        Ok(())
    }
}
