//! The control plane's integration tests: real gateways, agents and receivers on loopback.
//!
//! One binary for all of them: it links once, and the build stays small on disk.

mod common;

mod api;
mod burn_rate;
mod failover;
mod incidents;
mod limits;
mod notifications;
mod pipeline;
mod policies;
mod prometheus_gates;
mod public_form;
mod restart;
mod rollout;
mod semantic;
mod status_page;
mod trust;
