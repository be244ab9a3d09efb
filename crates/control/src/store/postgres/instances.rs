//! Registered instances: written at each registration (by the leader, fenced), read by a
//! replica that takes over.

use super::*;

#[async_trait::async_trait]
impl InstanceStore for Postgres {
    async fn save_instance(&self, i: &InstanceRow) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        sqlx::query("INSERT INTO instances (instance, environment, zone, build, credential, registered_ms) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (instance) DO UPDATE SET environment = excluded.environment, zone = excluded.zone, build = excluded.build, credential = excluded.credential, registered_ms = excluded.registered_ms")
            .bind(&i.instance)
            .bind(&i.environment)
            .bind(&i.zone)
            .bind(&i.build)
            .bind(&i.credential)
            .bind(i.registered_ms)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn instances(&self) -> Result<Vec<InstanceRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT instance, environment, zone, build, credential, registered_ms FROM instances ORDER BY instance",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(InstanceRow {
                    instance: r.try_get(0)?,
                    environment: r.try_get(1)?,
                    zone: r.try_get(2)?,
                    build: r.try_get(3)?,
                    credential: r.try_get(4)?,
                    registered_ms: r.try_get(5)?,
                })
            })
            .collect()
    }
}
