//! The leader's lease on PostgreSQL, shared by every replica on the database. Its times are the
//! database's clock, so replicas' clocks need not agree; a takeover takes the write lock, so it
//! is ordered against every fenced write.

use super::*;

/// Milliseconds since the epoch, by PostgreSQL's clock.
const NOW_MS: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

#[async_trait::async_trait]
impl LeaseStore for Postgres {
    async fn acquire_lease(
        &self,
        holder: &str,
        address: &str,
        ttl_ms: u64,
    ) -> Result<Option<i64>, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(super::WRITE_LOCK)
            .execute(&mut *tx)
            .await?;
        let epoch: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "UPDATE leader_lease SET holder = $1, address = $2, epoch = epoch + 1, expires_ms = {NOW_MS} + $3 \
             WHERE id = 1 AND (holder = '' OR expires_ms < {NOW_MS}) RETURNING epoch"
        )))
        .bind(holder)
        .bind(address)
        .bind(ttl_ms as i64)
        .fetch_optional(&mut *tx)
        .await?;
        if epoch.is_some() {
            notify_lease(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(epoch)
    }

    async fn renew_lease(&self, holder: &str, epoch: i64, ttl_ms: u64) -> Result<bool, StoreError> {
        let renewed = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE leader_lease SET expires_ms = {NOW_MS} + $1 WHERE id = 1 AND holder = $2 AND epoch = $3 AND expires_ms >= {NOW_MS}"
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
        let mut tx = self.pool.begin().await?;
        let released = sqlx::query("UPDATE leader_lease SET holder = '', expires_ms = 0 WHERE id = 1 AND holder = $1 AND epoch = $2")
            .bind(holder)
            .bind(epoch)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if released == 1 {
            notify_lease(&mut tx).await?;
        }
        tx.commit().await?;
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
            "INSERT INTO replicas (name, address, seen_ms) VALUES ($1, $2, {NOW_MS}) \
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
        let mut listener = sqlx::postgres::PgListener::connect_with(&self.pool).await?;
        listener.listen(LEASE_CHANNEL).await?;
        Ok(Some(Box::new(Listening(listener))))
    }

    async fn change_watch(&self) -> Result<Option<Box<dyn LeaseWatch>>, StoreError> {
        let mut listener = sqlx::postgres::PgListener::connect_with(&self.pool).await?;
        listener.listen(super::CHANGE_CHANNEL).await?;
        Ok(Some(Box::new(Listening(listener))))
    }
}

/// The channel lease changes are announced on.
const LEASE_CHANNEL: &str = "rampart_lease";

/// Announces a lease change when `tx` commits (PostgreSQL delivers notifications at commit).
async fn notify_lease(tx: &mut sqlx::PgConnection) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(LEASE_CHANNEL)
        .execute(tx)
        .await?;
    Ok(())
}

/// A connection listening on the lease channel.
struct Listening(sqlx::postgres::PgListener);

#[async_trait::async_trait]
impl LeaseWatch for Listening {
    async fn changed(&mut self) -> Result<(), StoreError> {
        self.0.recv().await?;
        Ok(())
    }
}
