//! The rollout policy as written: serde types that reject unknown fields. The JSON Schema
//! (`rampart policy schema`) is generated from them, so the doc comments are what editors show.

use std::collections::BTreeMap;

use rampart_model::duration::DurationStr;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::plan::InconclusiveAction;
use crate::queries::Query;

/// How releases move through one environment: waves, gates, pauses, what a wave inconclusive
/// for too long does, synthetic probes and Prometheus gates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyDocument {
    /// The waves, in order. Each covers at least the instances of the one before; the last
    /// covers every instance (`percent: 100`).
    pub waves: Vec<WaveDoc>,
    /// Health-gate thresholds; an omitted one keeps its default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gates: Option<GatesDoc>,
    /// A cohort instance silent this long fails the release (default 5s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub liveness: Option<DurationStr>,
    /// What a wave still inconclusive this long after it started does. Without it the wave
    /// holds until someone promotes, skips or aborts the release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_inconclusive: Option<OnInconclusiveDoc>,
    /// Requests each cohort gateway sends through its own listener while it bakes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub probes: Vec<ProbeDoc>,
    /// Queries against a Prometheus server that gate each wave beside the agents' counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PrometheusDoc>,
}

/// One wave: how many instances run the new version, and for how long, before the next.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaveDoc {
    /// This many instances (at most all). Give `instances` or `percent`, not both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instances: Option<u32>,
    /// This share of the instances, rounded up, at least one (1–100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<u32>,
    /// How long the wave runs with passing gates before the next starts (default 0s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bake: Option<DurationStr>,
    /// Once baked and passing, wait for `rampart rollout promote`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pause: bool,
}

/// Health-gate thresholds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GatesDoc {
    /// Canary requests (user and probe) needed before any verdict but the error ceiling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_requests: Option<u64>,
    /// A canary error rate above this share fails at once (0–1, default 0.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_ceiling: Option<f64>,
    /// False-alarm bound of the sequential error-rate test (0–0.5, default 0.01).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpha: Option<f64>,
    /// Canary p99 may be at most this multiple of the baseline's (≥ 1, default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_ratio: Option<f64>,
    /// Share of requests shed that fails the saturation gate (0–1, default 0.05).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_shed_rate: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OnInconclusiveDoc {
    /// Counted from the wave's start (and never before its bake ends).
    pub after: DurationStr,
    /// `hold` (and raise a ticket alert), `promote` or `rollback`. A Prometheus query that
    /// cannot be answered is never promoted past: `promote` holds then.
    pub action: InconclusiveAction,
}

/// A synthetic request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProbeDoc {
    /// Names the probe in metrics and verdicts.
    pub name: String,
    /// Default GET.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Path and query, starting with `/`.
    pub path: String,
    /// The Host header, to reach a route matched by host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// The status a healthy answer has (default 200); any other counts as an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_status: Option<u16>,
    /// Requests per second from each cohort gateway (1–50, default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PrometheusDoc {
    /// The server's base URL, e.g. `http://127.0.0.1:9090`.
    pub url: String,
    /// How often each query is asked while a wave runs (default 10s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<DurationStr>,
    /// Each query's deadline (default 5s, at most 30s); past it the answer counts as no data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<DurationStr>,
    pub queries: Vec<Query>,
}
