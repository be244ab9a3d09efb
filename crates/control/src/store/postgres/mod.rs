//! The PostgreSQL backend: sqlx over a connection pool, migrations in `migrations-postgres/`
//! (the same steps as SQLite's, in PostgreSQL's dialect), one module per group of tables, the
//! same queries as the SQLite backend's with PostgreSQL's placeholders and functions.
//!
//! Every write transaction first takes one transaction-scoped advisory lock, so writes are
//! serialised as they are on SQLite: event sequence numbers are committed in order (a reader
//! that has seen event N has seen every event before it), and read-then-write steps (a policy's
//! next revision, an approval granted once) need no retry loop.

use rampart_api::Event;
use sqlx::Row;
use sqlx::postgres::{PgPool, PgPoolOptions};

pub(super) use super::backend::*;
pub(super) use super::{
    EnvRow, IncidentSeed, InstanceRow, LeaseRow, MaintenanceRow, NewAlert, NewEvent, Pending,
    PolicyRow, ReleaseRow, ReplicaRow, StoreError, StoredToken, SubscriberRow, now,
    subscriber_channel,
};

mod alerts;
mod environments;
mod incidents;
mod instances;
mod lease;
mod ops;
mod policies;
mod releases;
mod restarts;
mod status;
mod tokens;
mod versions;

/// The channel every write transaction notifies when it commits.
pub(super) const CHANGE_CHANNEL: &str = "rampart_change";

/// The advisory lock every write transaction takes (any constant; "rampart" in ASCII).
pub(super) const WRITE_LOCK: i64 = 0x72_616d_7061_7274;

pub(super) use super::columns::{
    alert_row, approval_row, event_row, impact, kind_str, opt_version_col, release_row, role_str,
    select_releases, subscriber_row, to_json, version_col, version_info,
};

pub struct Postgres {
    pub(crate) pool: PgPool,
    /// The epoch every write is fenced on (0: no fence).
    fence: std::sync::atomic::AtomicI64,
}

impl Postgres {
    /// Connects to `url` (`postgres://user@host/db`) and migrates the database.
    pub async fn connect(url: &str) -> Result<Postgres, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(std::time::Duration::from_secs(5))
            .connect(url)
            .await?;
        sqlx::migrate!("./migrations-postgres").run(&pool).await?;
        Ok(Postgres {
            pool,
            fence: Default::default(),
        })
    }

    /// A write transaction, holding the write lock until it commits or rolls back. Under a
    /// fence, the lease's epoch is checked while the lock is held: a takeover (which takes the
    /// lock too) is either before this write, which then fails, or after it commits.
    pub(crate) async fn write(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(WRITE_LOCK)
            .execute(&mut *tx)
            .await?;
        // Delivered when (and only if) the transaction commits: followers re-read then.
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(CHANGE_CHANNEL)
            .execute(&mut *tx)
            .await?;
        let mine = self.fence.load(std::sync::atomic::Ordering::Acquire);
        if mine != 0 {
            let now: i64 = sqlx::query_scalar("SELECT epoch FROM leader_lease WHERE id = 1")
                .fetch_one(&mut *tx)
                .await?;
            if now != mine {
                return Err(StoreError::Fenced { mine, now });
            }
        }
        Ok(tx)
    }

    /// Appends an event; returns its sequence number. The time is taken by the database while
    /// the write lock is held, so sequence order and time order agree (same format as `now()`).
    pub(crate) async fn append(
        tx: &mut sqlx::PgConnection,
        e: &NewEvent<'_>,
    ) -> Result<i64, StoreError> {
        let seq = sqlx::query(
            "INSERT INTO events (at, kind, subject, actor, data) VALUES (to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), $1, $2, $3, $4) RETURNING seq",
        )
        .bind(e.kind)
        .bind(e.subject)
        .bind(e.actor)
        .bind(e.data.to_string())
        .fetch_one(tx)
        .await?
        .try_get(0)?;
        Ok(seq)
    }
}

impl Backend for Postgres {}

#[async_trait::async_trait]
impl EventStore for Postgres {
    async fn ensure_environments(&self, names: &[String]) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        for (i, name) in names.iter().enumerate() {
            sqlx::query(
                "INSERT INTO environments (name, position) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            )
            .bind(name)
            .bind(i as i64)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn append_event(&self, e: &NewEvent<'_>) -> Result<i64, StoreError> {
        let mut tx = self.write().await?;
        let seq = Self::append(&mut tx, e).await?;
        tx.commit().await?;
        Ok(seq)
    }

    async fn append_events(&self, events: &[NewEvent<'_>]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let mut tx = self.write().await?;
        for e in events {
            Self::append(&mut tx, e).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn events(&self, after: i64) -> Result<Vec<Event>, StoreError> {
        let rows = sqlx::query("SELECT seq, at, kind, subject, actor, data FROM events WHERE seq > $1 ORDER BY seq LIMIT 1000")
            .bind(after)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(event_row).collect())
    }
}
