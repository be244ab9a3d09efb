//! rampart's data plane: an HTTP/1.1 and HTTP/2 reverse proxy for APIs.
//!
//! Owns: listeners (TLS, h2c), routing, upstream pools and balancing, health checking,
//! admission control, DNS with deadlines, the admin listener and metrics, config reload.
//! Must not: depend on the control plane (only on its wire types, `rampart-api`), or wait on
//! anything external without a deadline.
#![forbid(unsafe_code)]

pub mod access_log;
pub mod admin;
pub mod admission;
pub mod agent;
pub mod auth;
pub mod body;
pub mod client_conn;
mod clock;
pub mod cors;
pub mod error;
pub mod forward;
pub mod gateway;
pub mod grpc;
pub mod hex_text;
pub mod json_text;
pub mod listener;
pub mod lkg;
pub mod metrics;
pub mod prober;
pub mod proxy;
pub mod rate_limit;
pub mod response;
pub mod retry;
pub mod rewind;
pub mod route;
pub mod router;
pub mod sharded_lru;
pub mod shared;
pub mod snapshot;
pub mod standalone;
pub mod target;
pub mod tls;
pub mod trace;
pub mod trace_context;
pub mod upstream;
pub mod watchdog;
pub mod websocket;

pub use gateway::{ApplyError, Gateway, Options};
