//! The gateway's integration tests: real gateways, backends, auth and DNS servers on loopback.
//!
//! One binary for all of them: it links once, and the build stays small on disk.

mod common;

mod access_log;
mod admin;
mod admission;
mod agent_identity;
mod auth;
mod balancing;
mod containment;
mod cors;
mod dns;
mod forwarding;
mod grpc;
mod hostile;
mod parking;
mod proxy_semantics;
mod rate_limits;
mod reload;
mod tracing;
mod websocket;
