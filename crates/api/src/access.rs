//! Who may do what: roles, and the API tokens that carry them.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What a token may do. `agent` registers gateways, long-polls and reports, and nothing else;
/// people are ordered viewer < operator < approver.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A gateway's agent: registers, long-polls, reports. Below viewer: it reads nothing else.
    Agent,
    Viewer,
    Operator,
    Approver,
}

/// `POST /v1/tokens`: a new token.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenSpec {
    /// Unique among tokens, bootstrap ones included: letters, digits, `-`, `_`, `.`.
    #[schemars(length(min = 1, max = 64), extend("pattern" = "^[A-Za-z0-9._-]+$"))]
    pub name: String,
    pub role: Role,
    /// For an agent token: the environments its gateways may join (none: any).
    #[serde(default)]
    pub environments: Vec<String>,
}

/// A token as listed: never its secret.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct TokenInfo {
    pub name: String,
    pub role: Role,
    pub environments: Vec<String>,
    /// Written to `tokens.json` at first start (its secret is there), not created through the API.
    pub bootstrap: bool,
    pub created_at: Option<String>,
    pub created_by: Option<String>,
    pub revoked_at: Option<String>,
}

/// `POST /v1/tokens`'s answer: the token's secret, shown this once (rampart keeps its SHA-256).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct NewToken {
    #[serde(flatten)]
    pub info: TokenInfo,
    pub token: String,
}
