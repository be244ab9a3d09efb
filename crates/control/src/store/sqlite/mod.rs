//! The SQLite backend: sqlx over one file in WAL mode with `synchronous=FULL`, migrations in
//! `migrations/`, one module per group of tables. Queries are checked at run time (`query`, not
//! `query!`), so the crate builds without a database.

use std::path::Path;
use std::str::FromStr;

use rampart_api::Event;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

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

pub(super) use super::columns::{
    alert_row, approval_row, event_row, impact, kind_str, opt_version_col, release_row, role_str,
    select_releases, subscriber_row, to_json, version_col, version_info,
};

pub struct Sqlite {
    pub(crate) pool: SqlitePool,
    /// The epoch every write is fenced on (0: no fence).
    fence: std::sync::atomic::AtomicI64,
}

impl Sqlite {
    /// Opens (creating if needed) `DIR/rampart.db` and migrates it.
    pub async fn open(dir: &Path) -> Result<Sqlite, StoreError> {
        let path = dir.join("rampart.db");
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(std::time::Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Sqlite {
            pool,
            fence: Default::default(),
        })
    }

    /// A write transaction. `BEGIN IMMEDIATE` takes the write lock up front: a deferred
    /// transaction that reads first cannot wait for the lock later (SQLITE_BUSY).
    pub(crate) async fn write(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
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

    /// Appends an event; returns its sequence number.
    pub(crate) async fn append(
        tx: &mut sqlx::SqliteConnection,
        e: &NewEvent<'_>,
    ) -> Result<i64, StoreError> {
        // The time is taken by SQLite while the insert holds the write lock, so sequence order
        // and time order agree (a time taken before waiting for the lock could be older than an
        // event committed meanwhile). Same format as `now()`.
        let seq = sqlx::query(
            "INSERT INTO events (at, kind, subject, actor, data) VALUES (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), ?, ?, ?, ?)",
        )
        .bind(e.kind)
        .bind(e.subject)
        .bind(e.actor)
        .bind(e.data.to_string())
        .execute(tx)
        .await?
        .last_insert_rowid();
        Ok(seq)
    }
}

impl Backend for Sqlite {}

#[async_trait::async_trait]
impl EventStore for Sqlite {
    async fn ensure_environments(&self, names: &[String]) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        for (i, name) in names.iter().enumerate() {
            sqlx::query("INSERT OR IGNORE INTO environments (name, position) VALUES (?, ?)")
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
        let rows = sqlx::query("SELECT seq, at, kind, subject, actor, data FROM events WHERE seq > ? ORDER BY seq LIMIT 1000")
            .bind(after)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(event_row).collect())
    }
}
