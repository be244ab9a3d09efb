//! Durable state behind one seam (`backend.rs`: a trait per group of tables), so the control
//! plane does not know which database holds it. `sqlite/` implements it over SQLite (WAL),
//! `postgres/` over PostgreSQL; the suite in `suite.rs` states what every backend must do and
//! runs against each; `copy.rs` copies an embedded store into PostgreSQL.
//!
//! Every change that must survive a crash is one transaction that also appends its event, so
//! the event log and the state never disagree.

use std::path::Path;
use std::sync::Arc;

use rampart_api::VersionId;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A value that rampart checked before storing it no longer parses: something else wrote it.
    #[error("database holds a malformed value: {0}")]
    Malformed(String),
    /// Not done, and why (e.g. copying into a database that already holds a store).
    #[error("{0}")]
    Refused(String),
    /// A write made as leader under an epoch that has been superseded: nothing was written.
    #[error("fenced: this replica led under epoch {mine}, the lease is at epoch {now}")]
    Fenced { mine: i64, now: i64 },
}

mod backend;
mod columns;
pub mod copy;
#[cfg(test)]
mod copy_test;
#[cfg(test)]
mod lease_test;
pub mod postgres;
mod rows;
pub mod sqlite;
#[cfg(test)]
mod suite;

pub use backend::LeaseWatch;
pub use backend::{
    AlertStore, Backend, EnvironmentStore, EventStore, IncidentStore, InstanceStore, LeaseStore,
    OpsStore, PolicyStore, ReleaseStore, RestartStore, StatusStore, TokenStore, VersionStore,
};
pub use rows::{
    IncidentSeed, InstanceRow, LeaseRow, MaintenanceRow, NewAlert, Pending, PolicyRow, ReleaseRow,
    ReplicaRow, StoredToken, SubscriberRow, subscriber_channel,
};

/// The time now as RFC 3339 in UTC with milliseconds: fixed width, so text order is time order.
pub fn now() -> String {
    rampart_api::time::format_ms(now_ms())
}

pub fn now_ms() -> u64 {
    time::OffsetDateTime::now_utc().unix_timestamp_nanos() as u64 / 1_000_000
}

#[derive(Debug, Clone)]
pub struct EnvRow {
    pub name: String,
    pub position: i64,
    pub desired: Option<VersionId>,
    pub last_known_good: Option<VersionId>,
}

/// An event to append with a state change.
pub struct NewEvent<'a> {
    pub kind: &'a str,
    pub subject: &'a str,
    pub actor: &'a str,
    pub data: serde_json::Value,
}

/// The store: a backend behind the seam, shared by every part of the control plane.
#[derive(Clone)]
pub struct Store(Arc<dyn Backend>);

impl Store {
    /// Opens (creating if needed) the SQLite store `DIR/rampart.db` and migrates it.
    pub async fn open(dir: &Path) -> Result<Store, StoreError> {
        Ok(Store::new(sqlite::Sqlite::open(dir).await?))
    }

    /// Connects to a PostgreSQL database (`postgres://…`) and migrates it.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        Ok(Store::new(postgres::Postgres::connect(url).await?))
    }

    pub fn new(backend: impl Backend + 'static) -> Store {
        Store(Arc::new(backend))
    }
}

impl std::ops::Deref for Store {
    type Target = dyn Backend;

    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}
