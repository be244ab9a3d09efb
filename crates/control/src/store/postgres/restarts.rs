//! Rolling restarts as stored: each one's status, and the restart generation handed to each
//! instance (generations only grow, so no batch is told twice across a control-plane restart).

use std::collections::HashMap;

use rampart_api::RestartStatus;
use sqlx::Row;

use super::*;

#[async_trait::async_trait]
impl RestartStore for Postgres {
    async fn save_restart(
        &self,
        status: &RestartStatus,
        batch_issued: bool,
        bump: &[String],
        event: &NewEvent<'_>,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        let mut tx = self.write().await?;
        sqlx::query("INSERT INTO restarts (environment, status, batch_issued, updated_at) VALUES ($1, $2, $3, $4) ON CONFLICT(environment) DO UPDATE SET status = excluded.status, batch_issued = excluded.batch_issued, updated_at = excluded.updated_at")
            .bind(&status.environment)
            .bind(serde_json::to_string(status).unwrap_or_default())
            .bind(batch_issued)
            .bind(now())
            .execute(&mut *tx)
            .await?;
        let mut generations = Vec::with_capacity(bump.len());
        for instance in bump {
            let generation: i64 = sqlx::query("INSERT INTO restart_generations (instance, generation) VALUES ($1, 1) ON CONFLICT(instance) DO UPDATE SET generation = restart_generations.generation + 1 RETURNING generation")
                .bind(instance)
                .fetch_one(&mut *tx)
                .await?
                .get(0);
            generations.push((instance.clone(), generation.max(0) as u64));
        }
        Self::append(&mut tx, event).await?;
        tx.commit().await?;
        Ok(generations)
    }

    async fn restarts(&self) -> Result<Vec<(RestartStatus, bool)>, StoreError> {
        let rows = sqlx::query("SELECT status, batch_issued FROM restarts")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                let status: String = r.get(0);
                Some((serde_json::from_str(&status).ok()?, r.get(1)))
            })
            .collect())
    }

    async fn restart_generations(&self) -> Result<HashMap<String, u64>, StoreError> {
        let rows = sqlx::query("SELECT instance, generation FROM restart_generations")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|r| (r.get::<String, _>(0), r.get::<i64, _>(1).max(0) as u64))
            .collect())
    }
}
