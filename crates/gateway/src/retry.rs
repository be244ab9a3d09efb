//! Retry budget: retries may add at most `budget_percent` of a route's requests.
//!
//! A token bucket in milli-tokens: every request deposits `budget_percent × 10`, every retry
//! withdraws 1000. The bucket starts with, and is capped at, [`RESERVE`] retries so that a
//! quiet route can still retry a few requests, and a long calm spell cannot bank an unbounded
//! burst of retries for the next outage.

use std::sync::atomic::{AtomicI64, Ordering};

/// Retries a route may make beyond the percentage, and the most it can bank.
pub const RESERVE: i64 = 10;
const MILLI: i64 = 1000;

#[derive(Debug)]
pub struct RetryBudget {
    percent: AtomicI64,
    balance: AtomicI64,
}

impl RetryBudget {
    pub fn new(percent: u32) -> RetryBudget {
        RetryBudget {
            percent: AtomicI64::new(i64::from(percent)),
            balance: AtomicI64::new(RESERVE * MILLI),
        }
    }

    pub fn set_percent(&self, percent: u32) {
        self.percent.store(i64::from(percent), Ordering::Relaxed);
    }

    /// Called once per request.
    pub fn deposit(&self) {
        let add = self.percent.load(Ordering::Relaxed) * MILLI / 100;
        let _ = self
            .balance
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| {
                Some((b + add).min(RESERVE * MILLI))
            });
    }

    /// True if a retry may be sent now (and charges it).
    pub fn withdraw(&self) -> bool {
        self.balance
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| {
                (b >= MILLI).then_some(b - MILLI)
            })
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_reserve_plus_percent() {
        let budget = RetryBudget::new(10);
        let mut retries = 0;
        for _ in 0..1000 {
            budget.deposit();
            if budget.withdraw() {
                retries += 1;
            }
        }
        // 10% of 1000 requests, plus at most the initial reserve.
        assert!(
            (100..=100 + RESERVE as i32).contains(&retries),
            "{retries} retries"
        );
        assert!(
            retries > 100,
            "the reserve allows some retries beyond the percentage"
        );
    }

    #[test]
    fn zero_percent_allows_only_reserve() {
        let budget = RetryBudget::new(0);
        let allowed = (0..100).filter(|_| {
            budget.deposit();
            budget.withdraw()
        });
        assert_eq!(allowed.count() as i64, RESERVE);
    }
}
