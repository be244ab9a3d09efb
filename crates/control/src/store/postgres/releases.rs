//! Releases in waves (their intent, cohort and gate), and the events of one release's story.

use sqlx::Row;

use super::*;

#[async_trait::async_trait]
impl ReleaseStore for Postgres {
    async fn insert_release(
        &self,
        env: &str,
        intent: &rampart_rollout::Intent,
        previous: &str,
        actor: &str,
    ) -> Result<i64, StoreError> {
        let mut tx = self.write().await?;
        let id = sqlx::query("INSERT INTO releases (environment, version, previous, intent, cohort, created_by, created_at) VALUES ($1, $2, $3, $4, '[]', $5, $6) RETURNING id")
            .bind(env)
            .bind(&intent.version)
            .bind(previous)
            .bind(serde_json::to_string(intent).unwrap_or_default())
            .bind(actor)
            .bind(now())
            .fetch_one(&mut *tx)
            .await?
            .try_get::<i64, _>(0)?;
        let event = NewEvent {
            kind: "release.started",
            subject: env,
            actor,
            data: serde_json::json!({ "release": id, "version": intent.version, "previous": previous, "waves": intent.plan.waves.len(), "policy": intent.plan.source }),
        };
        Self::append(&mut tx, &event).await?;
        tx.commit().await?;
        Ok(id)
    }

    async fn update_release(
        &self,
        r: &ReleaseRow,
        desired: Option<&str>,
        events: &[NewEvent<'_>],
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        sqlx::query(
            "UPDATE releases SET intent = $1, cohort = $2, gate = $3, reason = $4 WHERE id = $5",
        )
        .bind(serde_json::to_string(&r.intent).unwrap_or_default())
        .bind(serde_json::json!(r.cohort).to_string())
        .bind(&r.gate)
        .bind(&r.reason)
        .bind(r.id)
        .execute(&mut *tx)
        .await?;
        if let Some(v) = desired {
            sqlx::query("UPDATE environments SET desired = $1 WHERE name = $2")
                .bind(v)
                .bind(&r.environment)
                .execute(&mut *tx)
                .await?;
        }
        for e in events {
            Self::append(&mut tx, e).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn releases(&self) -> Result<Vec<ReleaseRow>, StoreError> {
        let rows = sqlx::query(select_releases!("ORDER BY id DESC LIMIT 100"))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().filter_map(release_row).collect())
    }

    async fn release(&self, id: i64) -> Result<Option<ReleaseRow>, StoreError> {
        let row = sqlx::query(select_releases!("WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().and_then(release_row))
    }

    async fn release_first_event(&self, release: i64) -> Result<Option<i64>, StoreError> {
        let row = sqlx::query("SELECT r.environment, r.version, (SELECT MIN(seq) FROM events WHERE kind = 'release.started' AND (data::jsonb->>'release')::bigint = r.id) FROM releases r WHERE r.id = $1")
            .bind(release)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let (env, version, started): (String, String, Option<i64>) =
            (row.get(0), row.get(1), row.get(2));
        let Some(started) = started else {
            return Ok(None);
        };
        let first: Option<i64> = sqlx::query("SELECT MIN(seq) FROM events WHERE seq <= $1 AND seq > (SELECT COALESCE(MAX(seq), 0) FROM events WHERE seq < $2 AND subject = $3 AND kind IN ('release.rolled_back', 'release.succeeded_all_waves', 'rollback')) AND (subject = $4 OR (data::jsonb->>'version') = $5)")
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

    async fn events_between(
        &self,
        first: i64,
        last: i64,
    ) -> Result<Vec<rampart_api::Event>, StoreError> {
        let rows = sqlx::query("SELECT seq, at, kind, subject, actor, data FROM events WHERE seq >= $1 AND seq <= $2 ORDER BY seq LIMIT 5000")
            .bind(first)
            .bind(last)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(super::event_row).collect())
    }

    async fn release_events(
        &self,
        release: i64,
        env: &str,
    ) -> Result<Vec<rampart_api::Event>, StoreError> {
        let rows = sqlx::query("SELECT seq, at, kind, subject, actor, data FROM events WHERE seq >= (SELECT MIN(seq) FROM events WHERE kind = 'release.started' AND (data::jsonb->>'release')::bigint = $1) AND ((data::jsonb->>'release')::bigint = $1 OR (kind = 'instance.applied' AND (data::jsonb->>'environment') = $2) OR (subject = $2 AND kind IN ('environment.converged', 'release.started', 'release.succeeded', 'rollback'))) ORDER BY seq LIMIT 5000")
            .bind(release)
            .bind(env)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(super::event_row).collect())
    }
}
