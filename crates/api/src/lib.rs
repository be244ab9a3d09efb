//! The control-plane API and the agent protocol: wire types shared by the control plane, the
//! gateway's agent and the CLI, and a typed client.
//!
//! Must not: depend on the control plane or the gateway; it is the boundary between them.
#![forbid(unsafe_code)]

pub mod access;
pub mod client;
pub mod operations;
pub mod time;
pub mod types;

pub use access::*;
pub use client::{ApiClient, ClientError};
pub use operations::*;
/// Synthetic probes travel the agent protocol as the rollout planner defines them.
pub use rampart_rollout::{Probe, ProbeCounts};
pub use types::*;
