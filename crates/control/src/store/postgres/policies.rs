//! Rollout policies: each environment's revisions, as written.

use sqlx::Row;

use super::*;

#[async_trait::async_trait]
impl PolicyStore for Postgres {
    async fn insert_policy(
        &self,
        env: &str,
        text: &str,
        actor: &str,
        mut data: serde_json::Value,
    ) -> Result<i64, StoreError> {
        let mut tx = self.write().await?;
        let revision: i64 = sqlx::query_scalar(
            "SELECT COALESCE(MAX(revision), 0) + 1 FROM policies WHERE environment = $1",
        )
        .bind(env)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO policies (environment, revision, text, actor, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(env)
        .bind(revision)
        .bind(text)
        .bind(actor)
        .bind(now())
        .execute(&mut *tx)
        .await?;
        data["revision"] = serde_json::json!(revision);
        let event = NewEvent {
            kind: "policy.set",
            subject: env,
            actor,
            data,
        };
        Self::append(&mut tx, &event).await?;
        tx.commit().await?;
        Ok(revision)
    }

    async fn policies(&self, env: &str) -> Result<Vec<PolicyRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT environment, revision, text, actor, created_at FROM policies WHERE environment = $1 ORDER BY revision DESC",
        )
        .bind(env)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(PolicyRow {
                    environment: r.try_get(0)?,
                    revision: r.try_get(1)?,
                    text: r.try_get(2)?,
                    actor: r.try_get(3)?,
                    created_at: r.try_get(4)?,
                })
            })
            .collect()
    }
}
