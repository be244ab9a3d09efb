//! Rolling restarts: an environment's gateways restarted batch by batch, each batch started only
//! when the previous one is back (restarted, reporting, and not failing requests). The agent
//! protocol carries a per-instance restart generation; an agent whose generation grows drains
//! (readiness says "draining" first, so balancers move away) and restarts its gateway.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rampart_api::RestartStatus;

/// How long a batch may take to come back before the restart stops, failed.
pub const BATCH_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a restarted batch is watched before the next one starts.
pub const SETTLE: Duration = Duration::from_secs(1);
/// A restarted batch failing more than this share of its requests stops the restart.
pub const MAX_ERROR_RATE: f64 = 0.05;

#[derive(Debug, Clone)]
pub struct RestartOp {
    pub status: RestartStatus,
    /// When the current batch was told to restart.
    pub(crate) issued: Option<Instant>,
    /// When every instance of the current batch was back, and their counts then.
    pub(crate) back: Option<(Instant, BatchCounts)>,
}

/// (requests, 5xx) per instance.
pub(crate) type BatchCounts = HashMap<String, (u64, u64)>;

impl RestartOp {
    /// A restart read back from the store. A batch already told to restart is watched again
    /// from now (its instances may be re-registering); one not yet told is told on the next step.
    pub fn resumed(status: RestartStatus, batch_issued: bool) -> RestartOp {
        RestartOp {
            status,
            issued: batch_issued.then(Instant::now),
            back: None,
        }
    }
}

/// One step's outcome: its event, and the instances to tell to restart.
pub(crate) struct Step {
    pub(crate) kind: &'static str,
    pub(crate) data: serde_json::Value,
    pub(crate) bump: Vec<String>,
}

impl Step {
    pub(crate) fn event(kind: &'static str, data: serde_json::Value) -> Step {
        Step {
            kind,
            data,
            bump: vec![],
        }
    }
}

/// Parses "20%" (of `live`, rounded up) or "2"; at least 1.
pub fn batch_size(spec: &str, live: usize) -> Result<usize, String> {
    let spec = spec.trim();
    let size = if let Some(p) = spec.strip_suffix('%') {
        let p: f64 = p
            .trim()
            .parse()
            .map_err(|_| format!("batch: {spec:?} is not a percentage"))?;
        if !(p > 0.0 && p <= 100.0) {
            return Err(format!("batch: {spec:?} must be above 0% and at most 100%"));
        }
        ((live as f64) * p / 100.0).ceil() as usize
    } else {
        spec.parse::<usize>().map_err(|_| {
            format!("batch: {spec:?} is neither a count (\"2\") nor a share (\"20%\")")
        })?
    };
    if size == 0 {
        return Err("batch: must be at least one gateway".into());
    }
    Ok(size.max(1))
}
