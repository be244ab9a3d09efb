//! The local limit: GCRA (the generic cell rate algorithm) over a bounded table of keys.
//!
//! Each key keeps one number, its theoretical arrival time (TAT): when its bucket would be
//! full again at the steady rate. A request is allowed when, after adding one interval, the
//! TAT is no further ahead of now than the bucket's capacity. The table holds at most
//! `max_keys` keys in a sharded LRU: a key not seen for a while is forgotten first,
//! and a forgotten key is simply a full bucket, so forgetting never lets a busy key through
//! faster than its rate.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::time::{Duration, Instant};

use crate::sharded_lru::ShardedLru;

/// What the bucket said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    /// Allowed; `remaining` more would be allowed now; full again in `full_in`.
    Allowed { remaining: u64, full_in: Duration },
    /// Refused; one more is allowed in `retry_in`.
    Limited { retry_in: Duration },
}

/// The arithmetic of one bucket, shared by the local table and the global script.
#[derive(Debug, Clone, Copy)]
pub struct Gcra {
    /// Nanoseconds between two requests at the steady rate.
    pub interval: u64,
    /// Requests allowed at once.
    pub capacity: u64,
}

impl Gcra {
    /// Decides one request at `now` for a key whose TAT is `tat`; the new TAT if allowed.
    pub fn decide(&self, tat: u64, now: u64) -> (Bucket, Option<u64>) {
        let tat = tat.max(now);
        let new_tat = tat.saturating_add(self.interval);
        let window = self.interval.saturating_mul(self.capacity);
        let ahead = new_tat - now;
        if ahead > window {
            return (
                Bucket::Limited {
                    retry_in: Duration::from_nanos(ahead - window),
                },
                None,
            );
        }
        let remaining = (window - ahead) / self.interval.max(1);
        (
            Bucket::Allowed {
                remaining,
                full_in: Duration::from_nanos(ahead),
            },
            Some(new_tat),
        )
    }
}

pub struct LocalLimiter {
    gcra: Gcra,
    table: ShardedLru<u64, u64>,
    hasher: RandomState,
    base: Instant,
}

impl LocalLimiter {
    pub fn new(gcra: Gcra, max_keys: usize) -> LocalLimiter {
        LocalLimiter {
            gcra,
            table: ShardedLru::new(max_keys),
            hasher: RandomState::new(),
            base: Instant::now(),
        }
    }

    pub fn check(&self, key: &[u8]) -> Bucket {
        self.check_at(key, self.base.elapsed().as_nanos() as u64)
    }

    /// `now`: nanoseconds on this limiter's clock.
    pub fn check_at(&self, key: &[u8], now: u64) -> Bucket {
        let hash = self.hasher.hash_one(key);
        let mut table = self.table.shard(hash as usize);
        let tat = table.get(&hash).copied().unwrap_or(now);
        let (bucket, new_tat) = self.gcra.decide(tat, now);
        if let Some(t) = new_tat {
            table.insert(hash, t);
        }
        bucket
    }

    /// Keys tracked now.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn ten_per_second(capacity: u64) -> LocalLimiter {
        LocalLimiter::new(
            Gcra {
                interval: 100 * MS,
                capacity,
            },
            1000,
        )
    }

    #[test]
    fn a_full_bucket_takes_its_capacity_at_once_then_the_steady_rate() {
        let l = ten_per_second(3);
        let t0 = 1_000 * MS;
        for left in [2, 1, 0] {
            assert!(
                matches!(l.check_at(b"a", t0), Bucket::Allowed { remaining, .. } if remaining == left)
            );
        }
        assert_eq!(
            l.check_at(b"a", t0),
            Bucket::Limited {
                retry_in: Duration::from_millis(100)
            }
        );
        // Another key has its own bucket.
        assert!(matches!(l.check_at(b"b", t0), Bucket::Allowed { .. }));
        // 100 ms later exactly one more fits.
        assert!(matches!(
            l.check_at(b"a", t0 + 100 * MS),
            Bucket::Allowed { remaining: 0, .. }
        ));
        assert!(matches!(
            l.check_at(b"a", t0 + 100 * MS),
            Bucket::Limited { .. }
        ));
        // Over a long run the key gets the rate, not more.
        let mut allowed = 0;
        for i in 0..10_000 {
            if matches!(l.check_at(b"c", t0 + i * 10 * MS), Bucket::Allowed { .. }) {
                allowed += 1;
            }
        }
        // 100 s at 10/s, plus the first bucket.
        assert!((1000..=1003).contains(&allowed), "{allowed}");
    }

    #[test]
    fn the_table_is_bounded_and_a_forgotten_key_is_a_full_bucket() {
        let l = ten_per_second(1);
        for i in 0u32..100_000 {
            l.check_at(&i.to_be_bytes(), 1_000 * MS);
        }
        assert!(l.len() <= 1008, "{}", l.len());
        assert!(matches!(
            l.check_at(&7u32.to_be_bytes(), 1_000 * MS),
            Bucket::Allowed { .. }
        ));
    }
}
