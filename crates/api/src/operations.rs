//! Wire types of operations: components and their SLOs, alerts, notification channels,
//! incidents and postmortems.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `PUT /v1/components/{name}`: a part of the API users see (e.g. "Users API"), served by a
/// group of routes in one environment, with an availability objective.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ComponentSpec {
    #[serde(default)]
    pub description: String,
    /// Route names whose requests make up the component's SLI; empty means every route.
    #[serde(default)]
    pub routes: Vec<String>,
    /// The environment whose traffic counts; the last one of the pipeline when absent.
    #[serde(default)]
    pub environment: Option<String>,
    /// Availability objective in percent of requests not answered 5xx, e.g. 99.9.
    #[serde(default = "default_slo")]
    pub slo: f64,
}

fn default_slo() -> f64 {
    99.9
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Component {
    pub name: String,
    #[serde(flatten)]
    pub spec: ComponentSpec,
    /// operational, degraded_performance, partial_outage, major_outage, under_maintenance
    pub status: String,
}

/// page: wakes someone now; ticket: needs attention within a working day.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Ticket,
    Page,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Ticket => "ticket",
            Severity::Page => "page",
        }
    }
}

/// An alert: fires once per key while active, then resolves.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Alert {
    pub id: i64,
    /// Deduplication key: at most one active alert per key.
    pub key: String,
    pub name: String,
    pub severity: Severity,
    /// slo, event or alertmanager
    pub source: String,
    pub summary: String,
    pub fired_at: String,
    pub resolved_at: Option<String>,
    pub incident: Option<i64>,
    pub data: serde_json::Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    /// PagerDuty Events API v2: trigger and resolve with a dedup_key.
    Pagerduty,
    /// JSON POST signed with HMAC-SHA256 (`X-Rampart-Signature`).
    Webhook,
    /// Slack-compatible incoming webhook (`{"text": …}`).
    Slack,
    /// Email over SMTP; `url` is `smtp://host:port`.
    Email,
}

/// `PUT /v1/channels/{name}`: where alerts go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChannelSpec {
    pub kind: ChannelKind,
    /// Receiver URL (for email: `smtp://host:port`).
    pub url: String,
    /// PagerDuty integration key.
    #[serde(default)]
    pub routing_key: Option<String>,
    /// HMAC key of signed webhooks. Never shown back.
    #[serde(default)]
    pub secret: Option<String>,
    /// Email recipients.
    #[serde(default)]
    pub to: Vec<String>,
    /// Email sender.
    #[serde(default)]
    pub from: Option<String>,
    /// Severities sent to this channel; pages only when empty.
    #[serde(default)]
    pub severities: Vec<Severity>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Channel {
    pub name: String,
    #[serde(flatten)]
    pub spec: ChannelSpec,
    /// Notifications waiting for this channel (receiver down, or retrying).
    pub pending: u64,
    /// Notifications given up on (the receiver refused them for good).
    pub failed: u64,
}

/// A notification in the outbox.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct OutboxEntry {
    pub id: i64,
    pub channel: String,
    /// Idempotency key, sent as `Idempotency-Key`; unique per channel.
    pub key: String,
    pub attempts: u32,
    pub created_at: String,
    pub delivered_at: Option<String>,
    pub failed_at: Option<String>,
    pub last_error: Option<String>,
}

/// Statuspage's incident statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum IncidentStatus {
    Investigating,
    Identified,
    Monitoring,
    Resolved,
}

impl IncidentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentStatus::Investigating => "investigating",
            IncidentStatus::Identified => "identified",
            IncidentStatus::Monitoring => "monitoring",
            IncidentStatus::Resolved => "resolved",
        }
    }

    pub fn parse(s: &str) -> Option<IncidentStatus> {
        Some(match s {
            "investigating" => IncidentStatus::Investigating,
            "identified" => IncidentStatus::Identified,
            "monitoring" => IncidentStatus::Monitoring,
            "resolved" => IncidentStatus::Resolved,
            _ => return None,
        })
    }
}

/// Statuspage's impact levels.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Impact {
    None,
    Minor,
    Major,
    Critical,
}

impl Impact {
    pub fn as_str(self) -> &'static str {
        match self {
            Impact::None => "none",
            Impact::Minor => "minor",
            Impact::Major => "major",
            Impact::Critical => "critical",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct IncidentUpdate {
    pub id: i64,
    pub at: String,
    pub status: IncidentStatus,
    pub body: String,
    pub actor: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ActionItem {
    pub id: i64,
    pub title: String,
    pub owner: String,
    /// open or done
    pub state: String,
}

/// Requests that failed (5xx) out of all requests of the environment, over the incident.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Traffic {
    pub failed: u64,
    pub total: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Incident {
    pub id: i64,
    pub title: String,
    pub status: IncidentStatus,
    pub impact: Impact,
    pub environment: Option<String>,
    pub components: Vec<String>,
    /// What opened it: `{"release": N}`, `{"alert": N}` or `{"by": "name"}`.
    pub cause: serde_json::Value,
    pub opened_at: String,
    pub resolved_at: Option<String>,
    /// Events from this sequence number on belong to the incident (to `last_event` once resolved).
    pub first_event: i64,
    pub last_event: Option<i64>,
    /// Requests over the incident's window (frozen when it resolves).
    pub traffic: Traffic,
    pub summary: String,
    pub root_cause: String,
    pub resolution: String,
    pub updates: Vec<IncidentUpdate>,
    pub action_items: Vec<ActionItem>,
    pub alerts: Vec<i64>,
}

/// `POST /v1/incidents`: open one by hand.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewIncident {
    /// Not blank.
    #[schemars(extend("pattern" = "\\S"))]
    pub title: String,
    #[serde(default)]
    pub body: String,
    #[serde(default = "default_impact")]
    pub impact: Impact,
    #[serde(default)]
    pub components: Vec<String>,
    #[serde(default)]
    pub environment: Option<String>,
}

fn default_impact() -> Impact {
    Impact::Minor
}

/// `POST /v1/incidents/{id}/updates`: a status change or a note, and narrative edits.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IncidentChange {
    #[serde(default)]
    pub status: Option<IncidentStatus>,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub impact: Option<Impact>,
    #[serde(default)]
    pub summary: Option<String>,
    #[serde(default)]
    pub root_cause: Option<String>,
    #[serde(default)]
    pub resolution: Option<String>,
}

/// `POST /v1/incidents/{id}/action-items`, or a change of one (`PATCH …/action-items/{item}`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionItemSpec {
    /// Not blank.
    #[schemars(extend("pattern" = "\\S"))]
    pub title: String,
    /// Not blank.
    #[schemars(extend("pattern" = "\\S"))]
    pub owner: String,
    #[serde(default = "default_item_state")]
    #[schemars(extend("enum" = ["open", "done"]))]
    pub state: String,
}

fn default_item_state() -> String {
    "open".into()
}

/// `GET /v1/incidents/{id}/postmortem?format=md|html`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct PostmortemText {
    pub incident: i64,
    pub format: String,
    pub text: String,
}

/// `POST /v1/maintenances`: a scheduled maintenance window.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceSpec {
    /// Not blank.
    #[schemars(extend("pattern" = "\\S"))]
    pub title: String,
    #[serde(default)]
    pub body: String,
    /// Components under maintenance during the window.
    pub components: Vec<String>,
    /// RFC 3339 start and end.
    #[schemars(extend("format" = "date-time"))]
    pub scheduled_for: String,
    #[schemars(extend("format" = "date-time"))]
    pub scheduled_until: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Maintenance {
    pub id: i64,
    #[serde(flatten)]
    pub spec: MaintenanceSpec,
    /// scheduled, in_progress, completed or cancelled
    pub status: String,
    pub created_by: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SubscriberKind {
    /// Statuspage-shaped JSON POSTs, signed with HMAC-SHA256.
    Webhook,
    Email,
}

/// `POST /v1/subscribers`: a subscriber added by an operator (confirmed at once).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriberSpec {
    pub kind: SubscriberKind,
    /// The webhook URL or the email address.
    pub target: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Subscriber {
    pub id: i64,
    pub kind: SubscriberKind,
    pub target: String,
    pub created_at: String,
    pub confirmed: bool,
    pub unsubscribed: bool,
    /// The HMAC key of webhook payloads; only in the answer that creates the subscriber.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}
