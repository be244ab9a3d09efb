//! Health gates: canary cohort against baseline cohort.
//!
//! The error-rate gate is a one-sided mixture sequential probability ratio test (mSPRT, "always
//! valid" inference): its false-alarm rate stays at or below `alpha` however often it is
//! evaluated, so looking every second is safe. An absolute ceiling catches hard failures
//! without waiting for statistics. Too few samples is *inconclusive*: it holds, never passes.

use serde::{Deserialize, Serialize};

/// What a cohort did over the evaluation window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub requests: u64,
    /// 5xx answers, auth-unavailable included.
    pub errors: u64,
    /// Requests refused by admission control.
    pub shed: u64,
    /// p99 latency in milliseconds, if known.
    pub p99_ms: Option<u64>,
}

impl Counts {
    pub fn error_rate(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.errors as f64 / self.requests as f64
        }
    }

    pub fn merge(self, o: Counts) -> Counts {
        Counts {
            requests: self.requests + o.requests,
            errors: self.errors + o.errors,
            shed: self.shed + o.shed,
            p99_ms: match (self.p99_ms, o.p99_ms) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateSettings {
    /// Requests the canary needs before any verdict but the ceiling.
    pub min_requests: u64,
    /// False-alarm bound of the sequential test.
    pub alpha: f64,
    /// Mixture scale of the mSPRT: the size of degradation the test is tuned to (absolute rate).
    pub tau: f64,
    /// A canary error rate above this fails at once (after `ceiling_min_requests`).
    pub ceiling: f64,
    pub ceiling_min_requests: u64,
    /// Canary p99 may be at most this multiple of the baseline's.
    pub p99_ratio: f64,
    /// Share of requests shed that fails the saturation gate.
    pub max_shed_rate: f64,
}

impl Default for GateSettings {
    fn default() -> Self {
        GateSettings {
            min_requests: 200,
            alpha: 0.01,
            tau: 0.02,
            ceiling: 0.2,
            ceiling_min_requests: 20,
            p99_ratio: 2.0,
            max_shed_rate: 0.05,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    Pass { detail: String },
    Fail { gate: String, detail: String },
    Inconclusive { detail: String },
}

/// The mSPRT likelihood ratio for "canary error rate > baseline's", normal approximation with a
/// N(0, tau²) mixture over the difference. Returns 0 when the canary is not worse.
pub fn msprt(canary: Counts, baseline: Counts, tau: f64) -> f64 {
    if canary.requests == 0 || baseline.requests == 0 {
        return 0.0;
    }
    let diff = canary.error_rate() - baseline.error_rate();
    if diff <= 0.0 {
        return 0.0;
    }
    let pooled =
        (canary.errors + baseline.errors) as f64 / (canary.requests + baseline.requests) as f64;
    // Floor the variance so that zero observed errors does not make any difference "certain".
    let p = pooled.clamp(1e-4, 1.0 - 1e-4);
    let v = p * (1.0 - p) * (1.0 / canary.requests as f64 + 1.0 / baseline.requests as f64);
    let t2 = tau * tau;
    (v / (v + t2)).sqrt() * (t2 * diff * diff / (2.0 * v * (v + t2))).exp()
}

/// Every gate, in order of severity. The first failure wins.
pub fn judge(canary: Counts, baseline: Counts, s: &GateSettings) -> Verdict {
    let rate = canary.error_rate();
    if canary.requests >= s.ceiling_min_requests && rate > s.ceiling {
        return Verdict::Fail {
            gate: "error_ceiling".into(),
            detail: format!(
                "canary 5xx {:.2}% over {} requests > ceiling {:.2}%",
                rate * 100.0,
                canary.requests,
                s.ceiling * 100.0
            ),
        };
    }
    if canary.requests > 0
        && canary.shed as f64 / (canary.requests + canary.shed) as f64 > s.max_shed_rate
    {
        return Verdict::Fail {
            gate: "saturation".into(),
            detail: format!(
                "canary shed {} of {} requests",
                canary.shed,
                canary.requests + canary.shed
            ),
        };
    }
    if canary.requests < s.min_requests {
        return Verdict::Inconclusive {
            detail: format!(
                "{} of {} canary requests needed",
                canary.requests, s.min_requests
            ),
        };
    }
    let lr = msprt(canary, baseline, s.tau);
    if lr >= 1.0 / s.alpha {
        return Verdict::Fail {
            gate: "error_rate".into(),
            detail: format!(
                "canary 5xx {:.3}% vs baseline {:.3}% (mSPRT ratio {lr:.0} ≥ {:.0})",
                rate * 100.0,
                baseline.error_rate() * 100.0,
                1.0 / s.alpha
            ),
        };
    }
    if let (Some(c), Some(b)) = (canary.p99_ms, baseline.p99_ms)
        && b > 0
        && c as f64 > b as f64 * s.p99_ratio
        && c > 5
    {
        return Verdict::Fail {
            gate: "latency".into(),
            detail: format!("canary p99 {c} ms > {:.1} × baseline {b} ms", s.p99_ratio),
        };
    }
    Verdict::Pass {
        detail: format!(
            "canary 5xx {:.3}% over {} requests, baseline {:.3}% over {}",
            rate * 100.0,
            canary.requests,
            baseline.error_rate() * 100.0,
            baseline.requests
        ),
    }
}
