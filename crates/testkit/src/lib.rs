//! Real servers on loopback for rampart's tests, benches and drills.
//!
//! Owns: servers that behave like the things a gateway talks to, with behaviour switchable at
//! run time. Must not: be used by the gateway or control plane themselves.
#![forbid(unsafe_code)]

pub mod echo;
pub mod serve;

pub use echo::{EchoControl, EchoServer};
pub mod agents;
pub mod auth;
pub mod browser;
pub mod client;
pub mod dns;
pub mod load;
pub mod peer;
pub mod ports;
pub mod receiver;
pub mod recorder;
pub mod smtp;
