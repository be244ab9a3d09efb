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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    use prometheus_client::metrics::gauge::Gauge;
    use rampart_model::{Balance, parse_endpoint};

    use super::pick;
    use crate::clock::now_ms;
    use crate::upstream::endpoint::Endpoint;

    fn endpoints() -> Vec<Arc<Endpoint>> {
        ["127.0.0.1:1", "127.0.0.1:2"]
            .iter()
            .map(|e| {
                Arc::new(
                    Endpoint::new(parse_endpoint(e).expect("endpoint"), Gauge::default())
                        .expect("ep"),
                )
            })
            .collect()
    }

    /// Share of picks that go to endpoint 1, `elapsed_ms` after it became healthy again.
    fn share(balance: Balance, elapsed_ms: u64) -> f64 {
        let eps = endpoints();
        eps[1].set_healthy(false);
        eps[1].set_healthy(true);
        let now = now_ms() + elapsed_ms;
        let rr = AtomicUsize::new(0);
        let n = 20_000;
        let hits = (0..n)
            .filter(|_| {
                // Endpoint 0 carries a varying load, as it would under traffic.
                let _load: Vec<_> = (0..fastrand::usize(0..8))
                    .map(|_| eps[0].start_request())
                    .collect();
                pick(&eps, balance, &rr, Duration::from_secs(10), now, None) == Some(1)
            })
            .count();
        hits as f64 / f64::from(n)
    }

    #[test]
    fn slow_start_ramps_a_returning_endpoint_up() {
        for balance in [Balance::RoundRobin, Balance::P2c] {
            let early = share(balance, 1_000);
            let middle = share(balance, 5_000);
            let done = share(balance, 20_000);
            assert!(
                early < middle && middle < done,
                "{balance:?}: {early} {middle} {done}"
            );
            assert!(
                early < 0.2,
                "{balance:?}: 10% into the ramp it took {early}"
            );
            assert!(
                done > 0.45,
                "{balance:?}: after the ramp it took only {done}"
            );
        }
    }

    #[test]
    fn unavailable_endpoints_are_skipped_unless_all_are() {
        let eps = endpoints();
        let rr = AtomicUsize::new(0);
        eps[0].set_healthy(false);
        for _ in 0..100 {
            assert_eq!(
                pick(&eps, Balance::P2c, &rr, Duration::ZERO, now_ms(), None),
                Some(1)
            );
        }
        // All unhealthy: panic mode spreads over all of them rather than refusing.
        eps[1].set_healthy(false);
        let picked: std::collections::HashSet<_> = (0..100)
            .filter_map(|_| {
                pick(
                    &eps,
                    Balance::RoundRobin,
                    &rr,
                    Duration::ZERO,
                    now_ms(),
                    None,
                )
            })
            .collect();
        assert_eq!(picked.len(), 2);
    }
}
