//! Copying an embedded store (SQLite, `DATA/rampart.db`) into PostgreSQL whole, for
//! `rampart control migrate --from DATA --to postgres://…`: every table, ids kept, in one
//! PostgreSQL transaction whose row counts are checked against the source before it commits.
//! Into a database that already holds a control plane's state nothing is copied.

use std::path::Path;

// Dynamic SQL here is built only from `TABLES` and the column names PostgreSQL lists for
// rampart's own schema: no value a user gives reaches a statement's text.
use sqlx::{AssertSqlSafe, Row};

use super::StoreError;
use super::postgres::Postgres;
use super::sqlite::Sqlite;

/// Every table, parents before the tables that refer to them. The leader's lease is not copied:
/// a database starts with no leader.
pub const TABLES: [&str; 20] = [
    "versions",
    "environments",
    "successes",
    "events",
    "approvals",
    "releases",
    "components",
    "sli_minutes",
    "incidents",
    "alerts",
    "channels",
    "outbox",
    "incident_updates",
    "action_items",
    "maintenances",
    "subscribers",
    "restarts",
    "restart_generations",
    "tokens",
    "policies",
];

/// Copies the SQLite store in `dir` into the PostgreSQL database at `url` (migrated first);
/// `progress` hears each table's name and rows copied so far. Returns each table's row count.
pub async fn sqlite_to_postgres(
    dir: &Path,
    url: &str,
    progress: impl Fn(&str, u64),
) -> Result<Vec<(String, u64)>, StoreError> {
    if !dir.join("rampart.db").exists() {
        return Err(StoreError::Refused(format!(
            "{} holds no rampart.db",
            dir.display()
        )));
    }
    let from = Sqlite::open(dir).await?;
    let to = Postgres::connect(url).await?;
    let mut tx = to.write().await?;
    let held: i64 =
        sqlx::query("SELECT (SELECT COUNT(*) FROM events) + (SELECT COUNT(*) FROM versions)")
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
    if held > 0 {
        return Err(StoreError::Refused(
            "the PostgreSQL database already holds a control plane's state; copy into an empty one"
                .into(),
        ));
    }
    let mut counts = Vec::with_capacity(TABLES.len());
    for table in TABLES {
        let columns = columns(&mut tx, table).await?;
        let names: Vec<&str> = columns.iter().map(|(n, _)| n.as_str()).collect();
        // Versions keep their order (PostgreSQL numbers them as they arrive); the others keep
        // their ids.
        let order = if table == "versions" { "rowid" } else { "1" };
        let select = format!("SELECT {} FROM {table} ORDER BY {order}", names.join(", "));
        let placeholders: Vec<String> = (1..=names.len()).map(|i| format!("${i}")).collect();
        let insert = format!(
            "INSERT INTO {table} ({}) VALUES ({})",
            names.join(", "),
            placeholders.join(", ")
        );
        let rows = sqlx::query(AssertSqlSafe(select))
            .fetch_all(&from.pool)
            .await?;
        for (n, row) in rows.iter().enumerate() {
            let mut q = sqlx::query(AssertSqlSafe(insert.as_str()));
            for (i, (_, kind)) in columns.iter().enumerate() {
                q = match kind.as_str() {
                    "bigint" | "integer" => q.bind(row.try_get::<Option<i64>, _>(i)?),
                    "boolean" => q.bind(row.try_get::<Option<i64>, _>(i)?.map(|v| v != 0)),
                    _ => q.bind(row.try_get::<Option<String>, _>(i)?),
                };
            }
            q.execute(&mut *tx).await?;
            if (n + 1) % 1000 == 0 {
                progress(table, n as u64 + 1);
            }
        }
        progress(table, rows.len() as u64);
        counts.push((table.to_owned(), rows.len() as u64));
    }
    restart_identities(&mut tx).await?;
    for (table, copied) in &counts {
        let here: i64 = sqlx::query(AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        if here as u64 != *copied {
            return Err(StoreError::Refused(format!(
                "{table}: {copied} rows read but {here} in PostgreSQL; nothing was copied"
            )));
        }
    }
    tx.commit().await?;
    Ok(counts)
}

/// A table's columns in PostgreSQL, with their types, leaving out those it generates itself.
async fn columns(
    tx: &mut sqlx::PgConnection,
    table: &str,
) -> Result<Vec<(String, String)>, StoreError> {
    let rows = sqlx::query(
        "SELECT column_name::text, data_type::text FROM information_schema.columns \
         WHERE table_schema = current_schema() AND table_name = $1 AND is_generated = 'NEVER' \
         AND NOT (is_identity = 'YES' AND identity_generation = 'ALWAYS') ORDER BY ordinal_position",
    )
    .bind(table)
    .fetch_all(tx)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

/// Every identity column continues after the largest id copied.
async fn restart_identities(tx: &mut sqlx::PgConnection) -> Result<(), StoreError> {
    let identities = sqlx::query(
        "SELECT table_name::text, column_name::text FROM information_schema.columns \
         WHERE table_schema = current_schema() AND is_identity = 'YES' AND identity_generation = 'BY DEFAULT'",
    )
    .fetch_all(&mut *tx)
    .await?;
    for r in identities {
        let (table, column): (String, String) = (r.try_get(0)?, r.try_get(1)?);
        sqlx::query(AssertSqlSafe(format!(
            "SELECT setval(pg_get_serial_sequence('{table}', '{column}'), COALESCE(MAX({column}), 0) + 1, false) FROM {table}"
        )))
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}
