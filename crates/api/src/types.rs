//! Wire types. Times are RFC 3339 strings in UTC; version ids are 64-hex SHA-256.

pub use rampart_model::VersionId;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Every error the API answers with: a stable code and a message that says what, where, why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ErrorBody {
    pub error: String,
    pub message: String,
}

/// `POST /v1/versions`: a new config version (YAML or JSON text).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct PushRequest {
    pub document: String,
    #[serde(default)]
    pub message: String,
    /// Stores the version even though semantic checks failed; approver role; recorded.
    #[serde(default)]
    pub break_glass: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct VersionInfo {
    pub id: VersionId,
    pub parent: Option<VersionId>,
    pub author: String,
    pub message: String,
    pub created_at: String,
}

/// Answer to a push: the version (new, or the existing one with the same content).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct PushResponse {
    pub version: VersionInfo,
    pub created: bool,
    pub warnings: Vec<String>,
    /// Semantic check failures overridden by break-glass.
    #[serde(default)]
    pub overridden: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct VersionDocument {
    pub version: VersionInfo,
    /// The canonical JSON form of the document.
    pub document: String,
}

/// `POST /v1/environments/{env}/deploy`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct DeployRequest {
    pub version: VersionId,
    /// Skips the pipeline order; needs the approver role; recorded with the reason.
    #[serde(default)]
    pub break_glass: Option<String>,
}

/// `POST /v1/environments/{env}/rollback`. Without `to`, the environment's last-known-good.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct RollbackRequest {
    #[serde(default)]
    pub to: Option<VersionId>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct EnvironmentStatus {
    pub name: String,
    pub position: i64,
    pub desired: Option<VersionId>,
    pub last_known_good: Option<VersionId>,
    pub instances: Vec<InstanceStatus>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct InstanceStatus {
    pub id: String,
    pub environment: String,
    pub zone: String,
    pub build: String,
    pub applied: Option<VersionId>,
    pub last_result: Option<ApplyResult>,
    /// Milliseconds since the last report.
    pub last_seen_ms: u64,
    /// Requests by status class since registration.
    pub requests: [u64; 5],
    /// Latency histogram since registration (buckets of [`LATENCY_BOUNDS_MS`]).
    #[serde(default)]
    pub latency: Vec<u64>,
    /// Problems the instance reports (e.g. a corrupt last-known-good).
    #[serde(default)]
    pub problems: Vec<String>,
    /// The control-plane replica its reports come through (when there are several).
    #[serde(default)]
    pub replica: Option<String>,
    /// The version it should run, as of its last report.
    #[serde(default)]
    pub expected: Option<VersionId>,
    /// How long it has run something other than `expected` (milliseconds); none when it runs
    /// what it should.
    #[serde(default)]
    pub behind_ms: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Event {
    pub seq: i64,
    pub at: String,
    pub kind: String,
    pub subject: String,
    pub actor: String,
    pub data: serde_json::Value,
}

/// Agent protocol: `POST /v1/agents/register`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct RegisterRequest {
    pub instance: String,
    pub environment: String,
    pub zone: String,
    pub build: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct RegisterResponse {
    /// How long a desired-version poll may be held open.
    pub poll_wait_ms: u64,
    pub report_interval_ms: u64,
    /// This instance's credential: its polls and reports carry it in
    /// `X-Rampart-Instance-Credential`. A new registration replaces it.
    pub credential: String,
}

/// Agent protocol: `GET /v1/agents/{instance}/desired?current=ID&wait_ms=N` answers at once when
/// the desired version differs from `current`, else when it changes or the wait ends.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Desired {
    /// The environment this answer is for; an agent refuses a version meant for another.
    pub environment: String,
    pub version: Option<VersionId>,
    /// Canonical JSON of the desired document, when it differs from `current`.
    pub document: Option<String>,
    /// Restart generation: when it grows, the agent drains and restarts its gateway.
    #[serde(default)]
    pub restart: u64,
    /// Synthetic requests this instance sends through its own listener while its release
    /// wave bakes; empty otherwise.
    #[serde(default)]
    pub probes: Vec<rampart_rollout::Probe>,
}

/// The outcome of an agent's last apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum ApplyResult {
    Applied {
        version: VersionId,
    },
    Rejected {
        version: VersionId,
        error: String,
    },
    Reverted {
        from: VersionId,
        to: VersionId,
        reason: String,
    },
}

/// Agent protocol: `POST /v1/agents/{instance}/report`, once a second.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct Report {
    pub applied: Option<VersionId>,
    pub result: Option<ApplyResult>,
    /// Requests by status class (1xx..5xx) since the last report.
    pub requests: [u64; 5],
    pub inflight: u64,
    pub shed: u64,
    pub auth_failures: u64,
    /// Problems the agent found on its own (e.g. a corrupt last-known-good file).
    #[serde(default)]
    pub problems: Vec<String>,
    /// Latency histogram since the last report: counts per bucket of [`LATENCY_BOUNDS_MS`],
    /// the last bucket for anything slower.
    #[serde(default)]
    pub latency: Vec<u64>,
    /// Requests by status class since the last report, per route that served any.
    #[serde(default)]
    pub routes: std::collections::BTreeMap<String, [u64; 5]>,
    /// The last restart generation this agent completed.
    #[serde(default)]
    pub restarts: u64,
    /// What this instance's synthetic probes got since the last report (not in `requests`).
    #[serde(default)]
    pub probes: rampart_rollout::ProbeCounts,
}

/// Upper bounds (ms) of the latency buckets in a [`Report`]; one more bucket holds the rest.
pub const LATENCY_BOUNDS_MS: [u64; 12] = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000];

/// A release in waves (`GET /v1/releases`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ReleaseStatus {
    pub id: i64,
    pub environment: String,
    pub version: VersionId,
    pub previous: VersionId,
    /// pending, rolling, paused, succeeded, failed, rolled_back
    pub state: String,
    pub wave: usize,
    pub waves: usize,
    /// Instances told to run the new version.
    pub cohort: Vec<String>,
    /// The latest gate verdict, as text.
    pub gate: Option<String>,
    /// Why the wave holds, or why the release ended.
    pub reason: Option<String>,
    /// The policy the release follows ("default", "production policy r3").
    #[serde(default)]
    pub policy: String,
    /// The current step in words: the wave, its size, its bake, a pause after it.
    #[serde(default)]
    pub step: String,
}

/// An environment's rollout policy (`GET /v1/environments/{env}/policy`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Policy {
    pub environment: String,
    /// The stored revision; absent while the environment follows the default.
    pub revision: Option<i64>,
    /// The policy as written (the default written out when none is stored).
    pub text: String,
    pub actor: Option<String>,
    pub created_at: Option<String>,
    /// What this revision changed from the one before it, by path.
    #[serde(default)]
    pub changes: Vec<String>,
}

/// `PUT /v1/environments/{env}/policy`: a new revision of the environment's policy.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicySet {
    /// The policy, YAML or JSON (`rampart policy schema` prints its JSON Schema).
    pub text: String,
}

/// A deploy waiting for a second person (`GET /v1/approvals`, `POST /v1/approvals/{id}/approve`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Approval {
    pub id: i64,
    pub environment: String,
    pub version: VersionId,
    /// High-risk sections the change touches.
    pub sections: Vec<String>,
    pub requested_by: String,
    pub requested_at: String,
    pub approved_by: Option<String>,
}

/// `POST /v1/environments/{env}/restart`: restart an environment's gateways batch by batch.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RestartRequest {
    /// Gateways per batch: a count ("1") or a share of the live instances ("20%").
    pub batch: String,
}

/// A rolling restart (`GET /v1/environments/{env}/restart`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct RestartStatus {
    pub environment: String,
    /// running, succeeded or failed
    pub state: String,
    pub batch_size: usize,
    pub batches: Vec<Vec<String>>,
    /// The batch being restarted (== batches.len() when done).
    pub current: usize,
    /// Instances restarted and healthy again.
    pub restarted: Vec<String>,
    pub reason: Option<String>,
}

/// The control plane's replicas (`GET /v1/replicas`): who leads, under which epoch, and every
/// replica that announced itself on the database.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Replicas {
    /// The lease's holder, while its lease is current.
    pub leader: Option<String>,
    /// The lease's epoch: it grows on every takeover.
    pub epoch: i64,
    pub replicas: Vec<ReplicaStatus>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ReplicaStatus {
    pub name: String,
    /// Where the other replicas reach it.
    pub address: String,
    /// Milliseconds since it last announced itself.
    pub seen_ago_ms: i64,
}
