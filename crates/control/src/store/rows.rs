//! What travels between the control plane and a backend: rows as stored, and what is about
//! to be stored. Backend-agnostic: no SQL type appears here.

use rampart_api::{Impact, IncidentStatus, MaintenanceSpec, Severity, Subscriber, VersionId};

use crate::notify::Notification;

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

/// The incident a paging alert opens when none is open for its environment.
#[derive(Debug, Clone)]
pub struct IncidentSeed {
    pub title: String,
    pub status: IncidentStatus,
    pub impact: Impact,
    pub environment: Option<String>,
    pub components: Vec<String>,
    pub cause: serde_json::Value,
    pub started_ms: u64,
    /// The first event of its window; the alert's own event when `None`.
    pub first_event: Option<i64>,
    pub body: String,
}

/// A notification waiting at the head of its channel's queue.
#[derive(Debug, Clone)]
pub struct Pending {
    pub id: i64,
    pub channel: String,
    pub notification: Notification,
    pub attempts: u32,
    pub next_at_ms: u64,
}

/// An alert about to fire.
#[derive(Debug, Clone)]
pub struct NewAlert {
    pub key: String,
    pub name: String,
    pub severity: Severity,
    pub source: &'static str,
    pub summary: String,
    pub data: serde_json::Value,
}

/// A maintenance row as stored.
#[derive(Debug, Clone)]
pub struct MaintenanceRow {
    pub id: i64,
    pub spec: MaintenanceSpec,
    pub created_at: String,
    pub created_by: String,
    pub cancelled_at: Option<String>,
}

/// A subscriber with its secrets (never shown on the public page).
#[derive(Debug, Clone)]
pub struct SubscriberRow {
    pub subscriber: Subscriber,
    pub token: String,
    pub secret: String,
}

/// The outbox channel of a subscriber.
pub fn subscriber_channel(id: i64) -> String {
    format!("subscriber:{id}")
}

/// A token as stored: what is listed about it, and the SHA-256 of its secret (zeros for a
/// bootstrap token, whose row only records its revocation).
#[derive(Debug, Clone)]
pub struct StoredToken {
    pub info: rampart_api::TokenInfo,
    pub digest: [u8; 32],
}

/// One revision of an environment's rollout policy.
#[derive(Debug, Clone)]
pub struct PolicyRow {
    pub environment: String,
    pub revision: i64,
    pub text: String,
    pub actor: String,
    pub created_at: String,
}

/// An instance's registration as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceRow {
    pub instance: String,
    pub environment: String,
    pub zone: String,
    pub build: String,
    /// SHA-256 of the credential its registration got, hex.
    pub credential: String,
    /// When it registered, in milliseconds since the epoch.
    pub registered_ms: i64,
}

/// A replica as it last announced itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaRow {
    pub name: String,
    /// Where the other replicas reach it (its API's URL).
    pub address: String,
    /// Milliseconds since its last heartbeat, by the database's clock.
    pub seen_ago_ms: i64,
}

/// The leader's lease as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRow {
    pub holder: String,
    pub address: String,
    pub epoch: i64,
    /// Unexpired by the database's clock.
    pub current: bool,
    /// How long until it lapses, by the database's clock (negative: lapsed that long ago).
    pub expires_in_ms: i64,
}
