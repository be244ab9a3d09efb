//! Durable state in SQLite (WAL): versions, environments, successes, events.
//!
//! Every change that must survive a crash is one transaction that also appends its event, so
//! the event log and the state never disagree. Queries are checked at run time (`query`, not
//! `query!`), keeping the door open to a PostgreSQL backend with its own migrations.

use std::path::Path;
use std::str::FromStr;

use rampart_api::{Event, VersionId, VersionInfo};
use sqlx::sqlite::SqliteRow;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A value that rampart checked before storing it no longer parses: something else wrote it.
    #[error("database holds a malformed value: {0}")]
    Malformed(String),
}

/// A version-id column.
fn version_col(r: &SqliteRow, i: usize) -> Result<VersionId, StoreError> {
    let text: String = r.try_get(i)?;
    VersionId::parse(&text).map_err(StoreError::Malformed)
}

/// A version-id column that may be NULL.
fn opt_version_col(r: &SqliteRow, i: usize) -> Result<Option<VersionId>, StoreError> {
    let text: Option<String> = r.try_get(i)?;
    text.map(|t| VersionId::parse(&t).map_err(StoreError::Malformed))
        .transpose()
}

fn version_info(r: &SqliteRow) -> Result<VersionInfo, StoreError> {
    Ok(VersionInfo {
        id: version_col(r, 0)?,
        parent: opt_version_col(r, 1)?,
        author: r.try_get(2)?,
        message: r.try_get(3)?,
        created_at: r.try_get(4)?,
    })
}

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

/// An event from a `SELECT seq, at, kind, subject, actor, data` row.
pub(crate) fn event_row(r: &sqlx::sqlite::SqliteRow) -> Event {
    let data: String = r.get(5);
    Event {
        seq: r.get(0),
        at: r.get(1),
        kind: r.get(2),
        subject: r.get(3),
        actor: r.get(4),
        data: serde_json::from_str(&data).unwrap_or(serde_json::Value::Null),
    }
}

/// A query for releases, with the columns `release_row` reads, followed by `$tail`.
macro_rules! select_releases {
    ($tail:literal) => {
        concat!(
            "SELECT id, environment, version, previous, intent, cohort, gate, reason, created_at FROM releases ",
            $tail
        )
    };
}

/// A release from a `select_releases!` row; `None` if its stored intent no longer parses.
fn release_row(r: &sqlx::sqlite::SqliteRow) -> Option<ReleaseRow> {
    let intent: String = r.get(4);
    let cohort: String = r.get(5);
    Some(ReleaseRow {
        id: r.get(0),
        environment: r.get(1),
        version: version_col(r, 2).ok()?,
        previous: version_col(r, 3).ok()?,
        intent: serde_json::from_str(&intent).ok()?,
        cohort: serde_json::from_str(&cohort).unwrap_or_default(),
        gate: r.get(6),
        reason: r.get(7),
        created_at: r.get(8),
    })
}

#[derive(Clone)]
pub struct Store {
    pub(crate) pool: SqlitePool,
}

impl Store {
    /// Opens (creating if needed) `DIR/rampart.db` and migrates it.
    pub async fn open(dir: &Path) -> Result<Store, StoreError> {
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
        Ok(Store { pool })
    }

    /// A write transaction. `BEGIN IMMEDIATE` takes the write lock up front: a deferred
    /// transaction that reads first cannot wait for the lock later (SQLITE_BUSY).
    pub(crate) async fn write(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
        self.pool.begin_with("BEGIN IMMEDIATE").await
    }

    /// Creates the environments that do not exist yet, in pipeline order.
    pub async fn ensure_environments(&self, names: &[String]) -> Result<(), StoreError> {
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

    pub async fn append_event(&self, e: &NewEvent<'_>) -> Result<i64, StoreError> {
        let mut conn = self.pool.acquire().await?;
        Self::append(&mut conn, e).await
    }

    /// Stores a version unless the same content exists; returns it and whether it is new.
    pub async fn insert_version(
        &self,
        id: &str,
        document: &str,
        author: &str,
        message: &str,
        extra: serde_json::Value,
    ) -> Result<(VersionInfo, bool), StoreError> {
        let mut tx = self.write().await?;
        if let Some(existing) = Self::version_row(&mut tx, id).await? {
            return Ok((existing.0, false));
        }
        let parent = match sqlx::query("SELECT id FROM versions ORDER BY rowid DESC LIMIT 1")
            .fetch_optional(&mut *tx)
            .await?
        {
            Some(r) => Some(version_col(&r, 0)?),
            None => None,
        };
        let created_at = now();
        sqlx::query("INSERT INTO versions (id, document, parent, author, message, created_at) VALUES (?, ?, ?, ?, ?, ?)")
            .bind(id)
            .bind(document)
            .bind(parent.as_ref().map(VersionId::as_str))
            .bind(author)
            .bind(message)
            .bind(&created_at)
            .execute(&mut *tx)
            .await?;
        let event = NewEvent {
            kind: "version.created",
            subject: id,
            actor: author,
            data: {
                let mut data = serde_json::json!({ "message": message, "parent": parent });
                if let (Some(d), serde_json::Value::Object(more)) = (data.as_object_mut(), extra) {
                    d.extend(more);
                }
                data
            },
        };
        Self::append(&mut tx, &event).await?;
        tx.commit().await?;
        let info = VersionInfo {
            id: VersionId::parse(id).map_err(StoreError::Malformed)?,
            parent,
            author: author.to_owned(),
            message: message.to_owned(),
            created_at,
        };
        Ok((info, true))
    }

    async fn version_row(
        conn: &mut sqlx::SqliteConnection,
        id: &str,
    ) -> Result<Option<(VersionInfo, String)>, StoreError> {
        let row = sqlx::query(
            "SELECT id, parent, author, message, created_at, document FROM versions WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(conn)
        .await?;
        row.map(|r| Ok((version_info(&r)?, r.try_get(5)?)))
            .transpose()
    }

    pub async fn version(&self, id: &str) -> Result<Option<(VersionInfo, String)>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        Self::version_row(&mut conn, id).await
    }

    pub async fn versions(&self) -> Result<Vec<VersionInfo>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, parent, author, message, created_at FROM versions ORDER BY rowid DESC",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(version_info).collect()
    }

    pub async fn environments(&self) -> Result<Vec<EnvRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT name, position, desired, last_known_good FROM environments ORDER BY position",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(EnvRow {
                    name: r.try_get(0)?,
                    position: r.try_get(1)?,
                    desired: opt_version_col(r, 2)?,
                    last_known_good: opt_version_col(r, 3)?,
                })
            })
            .collect()
    }

    /// Makes `version` desired in `env`, with its event, in one transaction.
    pub async fn set_desired(
        &self,
        env: &str,
        version: &str,
        event: &NewEvent<'_>,
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        sqlx::query("UPDATE environments SET desired = ? WHERE name = ?")
            .bind(version)
            .bind(env)
            .execute(&mut *tx)
            .await?;
        Self::append(&mut tx, event).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn has_succeeded(&self, env: &str, version: &str) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT 1 FROM successes WHERE environment = ? AND version = ?")
            .bind(env)
            .bind(version)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    /// Records that every instance of `env` applied `version`: it becomes the last-known-good.
    /// Returns false if it was already recorded.
    pub async fn record_success(
        &self,
        env: &str,
        version: &str,
        instances: usize,
    ) -> Result<bool, StoreError> {
        let mut tx = self.write().await?;
        let done = sqlx::query(
            "INSERT OR IGNORE INTO successes (environment, version, at) VALUES (?, ?, ?)",
        )
        .bind(env)
        .bind(version)
        .bind(now())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query("UPDATE environments SET last_known_good = ? WHERE name = ?")
            .bind(version)
            .bind(env)
            .execute(&mut *tx)
            .await?;
        if done > 0 {
            let event = NewEvent {
                kind: "release.succeeded",
                subject: env,
                actor: "control",
                data: serde_json::json!({ "version": version, "instances": instances }),
            };
            Self::append(&mut tx, &event).await?;
        }
        tx.commit().await?;
        Ok(done > 0)
    }

    pub async fn events(&self, after: i64) -> Result<Vec<Event>, StoreError> {
        let rows = sqlx::query("SELECT seq, at, kind, subject, actor, data FROM events WHERE seq > ? ORDER BY seq LIMIT 1000")
            .bind(after)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(event_row).collect())
    }
}

impl Store {
    /// A pending approval for `version` in `env`, creating it if needed; returns it.
    pub async fn request_approval(
        &self,
        env: &str,
        version: &str,
        sections: &[&str],
        requested_by: &str,
    ) -> Result<rampart_api::Approval, StoreError> {
        let mut tx = self.write().await?;
        let existing = sqlx::query("SELECT id FROM approvals WHERE environment = ? AND version = ? AND approved_by IS NULL")
            .bind(env)
            .bind(version)
            .fetch_optional(&mut *tx)
            .await?;
        let id: i64 = match existing {
            Some(row) => row.get(0),
            None => {
                let id = sqlx::query("INSERT INTO approvals (environment, version, sections, requested_by, requested_at) VALUES (?, ?, ?, ?, ?)")
                    .bind(env)
                    .bind(version)
                    .bind(serde_json::json!(sections).to_string())
                    .bind(requested_by)
                    .bind(now())
                    .execute(&mut *tx)
                    .await?
                    .last_insert_rowid();
                let event = NewEvent {
                    kind: "approval.requested",
                    subject: env,
                    actor: requested_by,
                    data: serde_json::json!({ "approval": id, "version": version, "sections": sections }),
                };
                Self::append(&mut tx, &event).await?;
                id
            }
        };
        tx.commit().await?;
        self.approval(id)
            .await?
            .ok_or(StoreError::Db(sqlx::Error::RowNotFound))
    }

    pub async fn approval(&self, id: i64) -> Result<Option<rampart_api::Approval>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, environment, version, sections, requested_by, requested_at, approved_by FROM approvals WHERE id = ?",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        Ok(Self::approval_rows(rows)?.pop())
    }

    pub async fn approvals(&self) -> Result<Vec<rampart_api::Approval>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, environment, version, sections, requested_by, requested_at, approved_by FROM approvals ORDER BY id DESC",
        )
        .fetch_all(&self.pool)
        .await?;
        Self::approval_rows(rows)
    }

    fn approval_rows(rows: Vec<SqliteRow>) -> Result<Vec<rampart_api::Approval>, StoreError> {
        rows.iter()
            .map(|r| {
                let sections: String = r.try_get(3)?;
                Ok(rampart_api::Approval {
                    id: r.try_get(0)?,
                    environment: r.try_get(1)?,
                    version: version_col(r, 2)?,
                    sections: serde_json::from_str(&sections).unwrap_or_default(),
                    requested_by: r.try_get(4)?,
                    requested_at: r.try_get(5)?,
                    approved_by: r.try_get(6)?,
                })
            })
            .collect()
    }

    /// Whether `version` has an approval granted for `env`.
    pub async fn is_approved(&self, env: &str, version: &str) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT 1 FROM approvals WHERE environment = ? AND version = ? AND approved_by IS NOT NULL")
            .bind(env)
            .bind(version)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    /// Grants an approval (the caller then deploys its version).
    pub async fn grant(&self, id: i64, approver: &str) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        let row = sqlx::query("SELECT environment, version FROM approvals WHERE id = ?")
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        let (env, version): (String, String) = (row.get(0), row.get(1));
        sqlx::query("UPDATE approvals SET approved_by = ?, approved_at = ? WHERE id = ?")
            .bind(approver)
            .bind(now())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let event = NewEvent {
            kind: "approval.granted",
            subject: &env,
            actor: approver,
            data: serde_json::json!({ "approval": id, "version": version }),
        };
        Self::append(&mut tx, &event).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// A release as stored.
#[derive(Debug, Clone)]
pub struct ReleaseRow {
    pub id: i64,
    pub environment: String,
    pub version: VersionId,
    pub previous: VersionId,
    pub intent: rampart_rollout::Intent,
    pub cohort: Vec<String>,
    pub gate: Option<String>,
    pub reason: Option<String>,
    pub created_at: String,
}

impl Store {
    /// Starts a release, with its event.
    pub async fn insert_release(
        &self,
        env: &str,
        intent: &rampart_rollout::Intent,
        previous: &str,
        actor: &str,
    ) -> Result<i64, StoreError> {
        let mut tx = self.write().await?;
        let id = sqlx::query("INSERT INTO releases (environment, version, previous, intent, cohort, created_by, created_at) VALUES (?, ?, ?, ?, '[]', ?, ?)")
            .bind(env)
            .bind(&intent.version)
            .bind(previous)
            .bind(serde_json::to_string(intent).unwrap_or_default())
            .bind(actor)
            .bind(now())
            .execute(&mut *tx)
            .await?
            .last_insert_rowid();
        let event = NewEvent {
            kind: "release.started",
            subject: env,
            actor,
            data: serde_json::json!({ "release": id, "version": intent.version, "previous": previous, "waves": intent.plan.waves.len() }),
        };
        Self::append(&mut tx, &event).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Saves a release's intent and cohort, with an event when one is given; when `desired` is
    /// given the environment's desired version changes in the same transaction.
    pub async fn update_release(
        &self,
        r: &ReleaseRow,
        desired: Option<&str>,
        events: &[NewEvent<'_>],
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        sqlx::query(
            "UPDATE releases SET intent = ?, cohort = ?, gate = ?, reason = ? WHERE id = ?",
        )
        .bind(serde_json::to_string(&r.intent).unwrap_or_default())
        .bind(serde_json::json!(r.cohort).to_string())
        .bind(&r.gate)
        .bind(&r.reason)
        .bind(r.id)
        .execute(&mut *tx)
        .await?;
        if let Some(v) = desired {
            sqlx::query("UPDATE environments SET desired = ? WHERE name = ?")
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

    pub async fn releases(&self) -> Result<Vec<ReleaseRow>, StoreError> {
        let rows = sqlx::query(select_releases!("ORDER BY id DESC LIMIT 100"))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().filter_map(release_row).collect())
    }

    /// The release with `id`, however old.
    pub async fn release(&self, id: i64) -> Result<Option<ReleaseRow>, StoreError> {
        let row = sqlx::query(select_releases!("WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().and_then(release_row))
    }
}
