//! The rollout planner: a pure function from (intent, observed, now) to actions, the statistics
//! of its health gates, and the rollout policy people write (YAML, validated into a [`Plan`]).
//! Time is a parameter (milliseconds), so the engine is tested deterministically without
//! sleeping.
//!
//! Owns: wave arithmetic, cohort choice, gate verdicts (agents' counts and Prometheus answers),
//! the policy document. Must not: do I/O, read clocks, or hold state between calls — the caller
//! stores the intent, asks Prometheus, and feeds back what it observes.
#![forbid(unsafe_code)]

pub mod gates;
pub mod plan;
pub mod policy;
pub mod probes;
pub mod queries;

pub use gates::{Counts, GateSettings, Verdict, judge};
pub use plan::{
    Action, InconclusiveAction, Intent, Observed, OnInconclusive, Plan, ReleaseState, Wave,
    WaveTarget, step,
};
pub use policy::{PolicyDocument, PolicyError};
pub use probes::{Probe, ProbeCounts};
pub use queries::{Comparison, OnNoData, Prometheus, Query, QueryOutcome, Sample};
