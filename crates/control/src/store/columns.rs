//! Reading rampart's values out of a row, the same for every backend: a version id is parsed
//! (never trusted), an event's data is JSON text.

use rampart_api::{Event, VersionId, VersionInfo};
use sqlx::{ColumnIndex, Decode, Row, Type};

use super::StoreError;

/// A version-id column.
pub(crate) fn version_col<R: Row>(r: &R, i: usize) -> Result<VersionId, StoreError>
where
    usize: ColumnIndex<R>,
    String: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    Option<String>: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    i64: for<'r> Decode<'r, R::Database> + Type<R::Database>,
{
    let text: String = r.try_get(i)?;
    VersionId::parse(&text).map_err(StoreError::Malformed)
}

/// A version-id column that may be NULL.
pub(crate) fn opt_version_col<R: Row>(r: &R, i: usize) -> Result<Option<VersionId>, StoreError>
where
    usize: ColumnIndex<R>,
    String: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    Option<String>: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    i64: for<'r> Decode<'r, R::Database> + Type<R::Database>,
{
    let text: Option<String> = r.try_get(i)?;
    text.map(|t| VersionId::parse(&t).map_err(StoreError::Malformed))
        .transpose()
}

/// A version from a `SELECT id, parent, author, message, created_at` row.
pub(crate) fn version_info<R: Row>(r: &R) -> Result<VersionInfo, StoreError>
where
    usize: ColumnIndex<R>,
    String: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    Option<String>: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    i64: for<'r> Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(VersionInfo {
        id: version_col(r, 0)?,
        parent: opt_version_col(r, 1)?,
        author: r.try_get(2)?,
        message: r.try_get(3)?,
        created_at: r.try_get(4)?,
    })
}

/// An event from a `SELECT seq, at, kind, subject, actor, data` row.
pub(crate) fn event_row<R: Row>(r: &R) -> Event
where
    usize: ColumnIndex<R>,
    String: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    Option<String>: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    i64: for<'r> Decode<'r, R::Database> + Type<R::Database>,
{
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
