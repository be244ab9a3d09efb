//! Tools only tests need, on top of the demo world's servers (re-exported here, so a test names
//! every helper through one crate): fake agents, a headless-browser driver, a bounded load
//! generator, peers written in other languages and servers (Python, nginx, Prometheus, PostgreSQL), a raw request-head
//! recorder, and an SMTP relay.
//!
//! Must not: be used by the gateway, the control plane or the shipped binary.
#![forbid(unsafe_code)]

pub use rampart_demo::{EchoControl, EchoServer};
pub use rampart_demo::{auth, client, dns, echo, ports, receiver, serve};

pub mod agents;
pub mod browser;
pub mod load;
pub mod peer;
pub mod postgres;
pub mod prometheus;
pub mod recorder;
pub mod redis;
pub mod smtp;
