//! Incidents, their updates and action items. An incident opened by an alert commits with it.

use rampart_api::{
    ActionItem, ActionItemSpec, Incident, IncidentChange, IncidentStatus, IncidentUpdate, Traffic,
};
use sqlx::Row;

use super::*;

#[async_trait::async_trait]
impl IncidentStore for Sqlite {
    async fn open_incident(&self, seed: &IncidentSeed, actor: &str) -> Result<i64, StoreError> {
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

    async fn incident(&self, id: i64) -> Result<Option<Incident>, StoreError> {
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

    async fn incident_started_ms(&self, id: i64) -> Result<Option<u64>, StoreError> {
        Ok(sqlx::query("SELECT started_ms FROM incidents WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| r.get::<i64, _>(0) as u64))
    }

    async fn incident_ids(&self, open_only: bool, limit: i64) -> Result<Vec<i64>, StoreError> {
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

    async fn change_incident(
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

    async fn add_action_item(
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

    async fn set_action_item(
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
}

impl Sqlite {
    pub(super) async fn open_incident_in(
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
}
