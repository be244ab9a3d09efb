//! The leader's lease on SQLite: one process owns the file, so it is trivially the leader, but
//! the lease keeps the same rules as on PostgreSQL (the store suite holds both to them).

use super::*;

/// Milliseconds since the epoch, by SQLite's clock.
const NOW_MS: &str = "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)";

#[async_trait::async_trait]
impl LeaseStore for Sqlite {
    async fn acquire_lease(
        &self,
        holder: &str,
        address: &str,
        ttl_ms: u64,
    ) -> Result<Option<i64>, StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let epoch: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "UPDATE leader_lease SET holder = ?, address = ?, epoch = epoch + 1, expires_ms = {NOW_MS} + ? \
             WHERE id = 1 AND (holder = '' OR expires_ms < {NOW_MS}) RETURNING epoch"
        )))
        .bind(holder)
        .bind(address)
        .bind(ttl_ms as i64)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(epoch)
    }

    async fn renew_lease(&self, holder: &str, epoch: i64, ttl_ms: u64) -> Result<bool, StoreError> {
        let renewed = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE leader_lease SET expires_ms = {NOW_MS} + ? WHERE id = 1 AND holder = ? AND epoch = ? AND expires_ms >= {NOW_MS}"
        )))
        .bind(ttl_ms as i64)
        .bind(holder)
        .bind(epoch)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(renewed == 1)
    }

    async fn release_lease(&self, holder: &str, epoch: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE leader_lease SET holder = '', expires_ms = 0 WHERE id = 1 AND holder = ? AND epoch = ?")
            .bind(holder)
            .bind(epoch)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn lease(&self) -> Result<LeaseRow, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT holder, address, epoch, holder <> '' AND expires_ms >= {NOW_MS}, expires_ms - {NOW_MS} FROM leader_lease WHERE id = 1"
        )))
        .fetch_one(&self.pool)
        .await?;
        Ok(LeaseRow {
            holder: row.try_get(0)?,
            address: row.try_get(1)?,
            epoch: row.try_get(2)?,
            current: row.try_get(3)?,
            expires_in_ms: row.try_get(4)?,
        })
    }

    fn fence(&self, epoch: Option<i64>) {
        self.fence
            .store(epoch.unwrap_or(0), std::sync::atomic::Ordering::Release);
    }

    async fn heartbeat(&self, name: &str, address: &str) -> Result<(), StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO replicas (name, address, seen_ms) VALUES (?, ?, {NOW_MS}) \
             ON CONFLICT (name) DO UPDATE SET address = excluded.address, seen_ms = excluded.seen_ms"
        )))
        .bind(name)
        .bind(address)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn replicas(&self) -> Result<Vec<ReplicaRow>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT name, address, {NOW_MS} - seen_ms FROM replicas ORDER BY name"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ReplicaRow {
                    name: r.try_get(0)?,
                    address: r.try_get(1)?,
                    seen_ago_ms: r.try_get(2)?,
                })
            })
            .collect()
    }

    async fn lease_watch(&self) -> Result<Option<Box<dyn LeaseWatch>>, StoreError> {
        // One process owns the file: there is nobody else to hear from.
        Ok(None)
    }

    async fn change_watch(&self) -> Result<Option<Box<dyn LeaseWatch>>, StoreError> {
        Ok(None)
    }
}
