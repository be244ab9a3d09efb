//! Reading rampart's values out of a row, the same for every backend (the readers are generic
//! over sqlx's `Row`): a version id is parsed, never trusted; JSON columns are text; enums are
//! stored by name.

use rampart_api::{Alert, Event, Impact, Severity, SubscriberKind, VersionId, VersionInfo};
use sqlx::{ColumnIndex, Decode, Row, Type};

use super::{ReleaseRow, StoreError, SubscriberRow};

/// Row readers for any backend whose rows give text and integers by position or by name: each
/// `fn name<R>(…)` gets `R: Row` and those bounds.
macro_rules! row_readers {
    ($( $(#[$meta:meta])* $vis:vis fn $name:ident<$R:ident>($($arg:tt)*) -> $ret:ty $body:block )*) => {
        $(
            $(#[$meta])*
            $vis fn $name<$R: Row>($($arg)*) -> $ret
            where
                usize: ColumnIndex<$R>,
                for<'n> &'n str: ColumnIndex<$R>,
                String: for<'r> Decode<'r, $R::Database> + Type<$R::Database>,
                Option<String>: for<'r> Decode<'r, $R::Database> + Type<$R::Database>,
                i64: for<'r> Decode<'r, $R::Database> + Type<$R::Database>,
                Option<i64>: for<'r> Decode<'r, $R::Database> + Type<$R::Database>,
            $body
        )*
    };
}

row_readers! {
    /// A version-id column.
    pub(crate) fn version_col<R>(r: &R, i: usize) -> Result<VersionId, StoreError> {
        let text: String = r.try_get(i)?;
        VersionId::parse(&text).map_err(StoreError::Malformed)
    }

    /// A version-id column that may be NULL.
    pub(crate) fn opt_version_col<R>(r: &R, i: usize) -> Result<Option<VersionId>, StoreError> {
        let text: Option<String> = r.try_get(i)?;
        text.map(|t| VersionId::parse(&t).map_err(StoreError::Malformed))
            .transpose()
    }

    /// A version from a `SELECT id, parent, author, message, created_at` row.
    pub(crate) fn version_info<R>(r: &R) -> Result<VersionInfo, StoreError> {
        Ok(VersionInfo {
            id: version_col(r, 0)?,
            parent: opt_version_col(r, 1)?,
            author: r.try_get(2)?,
            message: r.try_get(3)?,
            created_at: r.try_get(4)?,
        })
    }

    /// An event from a `SELECT seq, at, kind, subject, actor, data` row.
    pub(crate) fn event_row<R>(r: &R) -> Event {
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

    /// A release from a `select_releases!` row; `None` if its stored intent no longer parses.
    pub(crate) fn release_row<R>(r: &R) -> Option<ReleaseRow> {
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

    /// An approval from a `SELECT id, environment, version, sections, requested_by,
    /// requested_at, approved_by` row.
    pub(crate) fn approval_row<R>(r: &R) -> Result<rampart_api::Approval, StoreError> {
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
    }

    /// An alert from a `SELECT *` row of `alerts`.
    pub(crate) fn alert_row<R>(r: &R) -> Alert {
        let data: String = r.get("data");
        Alert {
            id: r.get("id"),
            key: r.get("key"),
            name: r.get("name"),
            severity: severity(&r.get::<String, _>("severity")),
            source: r.get("source"),
            summary: r.get("summary"),
            fired_at: r.get("fired_at"),
            resolved_at: r.get("resolved_at"),
            incident: r.get("incident"),
            data: serde_json::from_str(&data).unwrap_or_default(),
        }
    }

    /// A subscriber from a `SELECT *` row of `subscribers`.
    pub(crate) fn subscriber_row<R>(r: &R) -> SubscriberRow {
        let confirmed: Option<String> = r.get("confirmed_at");
        let unsubscribed: Option<String> = r.get("unsubscribed_at");
        SubscriberRow {
            subscriber: rampart_api::Subscriber {
                id: r.get("id"),
                kind: kind_of(&r.get::<String, _>("kind")),
                target: r.get("target"),
                created_at: r.get("created_at"),
                confirmed: confirmed.is_some(),
                unsubscribed: unsubscribed.is_some(),
                secret: None,
            },
            token: r.get("token"),
            secret: r.get("secret"),
        }
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
pub(crate) use select_releases;

pub(crate) fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

fn severity(s: &str) -> Severity {
    if s == "page" {
        Severity::Page
    } else {
        Severity::Ticket
    }
}

pub(crate) fn impact(s: &str) -> Impact {
    serde_json::from_value(serde_json::Value::String(s.to_owned())).unwrap_or(Impact::Minor)
}

fn kind_of(s: &str) -> SubscriberKind {
    if s == "email" {
        SubscriberKind::Email
    } else {
        SubscriberKind::Webhook
    }
}

pub(crate) fn kind_str(k: SubscriberKind) -> &'static str {
    match k {
        SubscriberKind::Webhook => "webhook",
        SubscriberKind::Email => "email",
    }
}

pub(crate) fn role_str(role: rampart_api::Role) -> &'static str {
    match role {
        rampart_api::Role::Agent => "agent",
        rampart_api::Role::Viewer => "viewer",
        rampart_api::Role::Operator => "operator",
        rampart_api::Role::Approver => "approver",
    }
}
