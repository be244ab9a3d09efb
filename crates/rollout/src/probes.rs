//! Synthetic probes: requests each cohort gateway sends through its own listener while a wave
//! bakes, so an environment without users still gets judged. Their answers are counted apart
//! from user traffic (the gateway's metrics and the SLIs leave them out) and join the gates: an
//! answer other than `expect_status` counts as an error.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Probe {
    pub name: String,
    pub method: String,
    /// Path and query, e.g. `/v1/users/health`.
    pub path: String,
    /// The Host header; the gateway's own address when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    pub expect_status: u16,
    /// Requests per second, per gateway.
    pub per_second: u32,
}

/// What one gateway's probes got since its last report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ProbeCounts {
    pub sent: u64,
    /// Answers other than the expected status, and requests that got no answer.
    pub unexpected: u64,
}
