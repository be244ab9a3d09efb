//! The `rampart` binary's integration tests: it runs as a child process against real servers.
//!
//! One binary for all of them: it links once, and the build stays small on disk.

mod common;

mod cli;
mod crash;
mod drill;
mod incident_cli;
mod policy_cli;
mod postgres_store;
mod replicas;
mod tls;
mod tokens;
mod version_prefix;
