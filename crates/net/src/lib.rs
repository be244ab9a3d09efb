//! Network plumbing that both of rampart's planes use: a DNS resolver that never waits past its
//! deadline, and an HTTP(S) client whose every lookup goes through it.
//!
//! Owns: name resolution (deadlines, caching, serve-stale) and client connections over it.
//! Must not: know about metrics, routes or the control plane. What callers want to count about
//! lookups they learn through a [`resolve::DnsObserver`].
#![forbid(unsafe_code)]

pub mod client;
pub mod public;
pub mod resolve;
pub mod tls;

pub use public::is_public;
pub use resolve::{DnsObserver, DnsOutcome, ResolveError, Resolver};

/// Makes aws-lc-rs rustls' process-wide crypto provider; harmless when one is already set.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
