//! What every connection, the admin server and reloads share: the current snapshot (swapped
//! whole on reload), metrics, the global and connection limits, readiness and draining.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use arc_swap::ArcSwapOption;

use crate::admission::Limit;
use crate::metrics::Metrics;
use crate::snapshot::Snapshot;

/// State shared by every connection and the admin server; lives across reloads.
pub struct Shared {
    pub snapshot: ArcSwapOption<Snapshot>,
    pub metrics: Metrics,
    /// `limits.max_inflight`.
    pub global: Arc<Limit>,
    /// `limits.max_connections`.
    pub connections: Arc<Limit>,
    pub ready: AtomicBool,
    pub draining: AtomicBool,
    /// When this gateway started: `/readyz` advertises a weight that ramps up from it.
    pub started: std::time::Instant,
    /// The secret this process's synthetic probes carry (`x-rampart-probe`); none, none counted.
    pub probe_secret: Option<http::HeaderValue>,
}

impl Shared {
    /// Whether a probe header's value is this process's secret.
    pub fn is_probe(&self, value: &http::HeaderValue) -> bool {
        self.probe_secret
            .as_ref()
            .is_some_and(|s| subtle::ConstantTimeEq::ct_eq(s.as_bytes(), value.as_bytes()).into())
    }
}
