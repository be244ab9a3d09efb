//! Choosing an endpoint: power of two choices (least outstanding requests) or round robin,
//! over available endpoints, weighted by slow start.
//!
//! When no endpoint is available (all unhealthy or ejected), the choice falls back to all
//! endpoints ("panic mode", as in Envoy), so a flapping health check cannot black-hole a pool.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rampart_model::Balance;

use super::endpoint::Endpoint;

/// Picks an endpoint index; `avoid` is an index tried already (retries go elsewhere when they can).
pub fn pick(
    endpoints: &[std::sync::Arc<Endpoint>],
    balance: Balance,
    rr: &AtomicUsize,
    slow_start: Duration,
    now: u64,
    avoid: Option<usize>,
) -> Option<usize> {
    let n = endpoints.len();
    if n == 0 {
        return None;
    }
    if n == 1 {
        return Some(0);
    }
    let usable = |i: usize| endpoints[i].is_available(now) && Some(i) != avoid;
    let mut count = (0..n).filter(|&i| usable(i)).count();
    let filter: &dyn Fn(usize) -> bool = if count > 0 {
        &usable
    } else if (0..n).any(|i| endpoints[i].is_available(now)) {
        // Only the avoided endpoint is available: use it rather than a known-bad one.
        count = 1;
        &|i: usize| endpoints[i].is_available(now)
    } else {
        count = n;
        &|_| true
    };
    let nth = |k: usize| (0..n).filter(|&i| filter(i)).nth(k);
    match balance {
        Balance::P2c => {
            if count == 1 {
                return nth(0);
            }
            let a = fastrand::usize(..count);
            let mut b = fastrand::usize(..count - 1);
            if b >= a {
                b += 1;
            }
            let (a, b) = (nth(a)?, nth(b)?);
            let score = |i: usize| {
                (f64::from(endpoints[i].inflight()) + 1.0) / endpoints[i].weight(now, slow_start)
            };
            Some(if score(b) < score(a) { b } else { a })
        }
        Balance::RoundRobin => {
            let start = rr.fetch_add(1, Ordering::Relaxed);
            for step in 0..n {
                let i = (start + step) % n;
                if !filter(i) {
                    continue;
                }
                let w = endpoints[i].weight(now, slow_start);
                if w >= 1.0 || fastrand::f64() < w {
                    return Some(i);
                }
            }
            // Every candidate was skipped by its ramp: take the first usable one.
            nth(0)
        }
    }
}
