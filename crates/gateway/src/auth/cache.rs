//! A bounded cache of auth decisions keyed by the SHA-256 of the credential (raw tokens are
//! never kept), with per-entry expiry and single-flight: concurrent misses for the same key
//! wait for one lookup instead of each calling the auth server.
//!
//! Bounded by least-recently-used eviction, O(1) per operation: the keys are spread over
//! shards, each an LRU list under its own lock, so no operation scans or holds a global lock.
//! A single-flight entry belongs to the callers waiting on it: the last of them to leave, by
//! finishing or by being cancelled, removes it.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use hashlink::LruCache;
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

use crate::sharded_lru::ShardedLru;

pub type Key = [u8; 32];

pub fn key_of(credential: &str) -> Key {
    Sha256::digest(credential.as_bytes()).into()
}

type Flight<V> = Arc<OnceCell<(V, Instant)>>;

pub struct DecisionCache<V: Clone> {
    shards: ShardedLru<Key, (V, Instant)>,
    inflight: Mutex<HashMap<Key, Flight<V>>>,
}

impl<V: Clone> DecisionCache<V> {
    pub fn new(capacity: usize) -> Self {
        DecisionCache {
            shards: ShardedLru::new(capacity),
            inflight: Mutex::new(HashMap::new()),
        }
    }

    fn shard(&self, key: &Key) -> std::sync::MutexGuard<'_, LruCache<Key, (V, Instant)>> {
        // The key is a SHA-256: any byte of it spreads evenly.
        self.shards.shard(usize::from(key[0]))
    }

    fn inflight(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Flight<V>>> {
        self.inflight.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, key: &Key) -> Option<V> {
        let mut shard = self.shard(key);
        match shard.get(key) {
            Some((v, until)) if *until > Instant::now() => Some(v.clone()),
            Some(_) => {
                shard.remove(key);
                None
            }
            None => None,
        }
    }

    /// Caches a decision until `until`; a full shard drops its least recently used entry.
    pub fn insert(&self, key: Key, value: V, until: Instant) {
        self.shard(&key).insert(key, (value, until));
    }

    pub fn len(&self) -> usize {
        self.shards.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Single-flight entries present (callers waiting on a lookup).
    pub fn flights(&self) -> usize {
        self.inflight().len()
    }

    /// The cached value, or the result of `lookup` shared by every caller waiting on the same
    /// key. `lookup` returns the value and how long it may be cached (`None`: do not cache).
    pub async fn get_or_fetch<F, Fut>(&self, key: Key, lookup: F) -> V
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = (V, Option<Instant>)>,
    {
        if let Some(v) = self.get(&key) {
            return v;
        }
        let flight: Flight<V> = self
            .inflight()
            .entry(key)
            .or_insert_with(|| Arc::new(OnceCell::new()))
            .clone();
        // Removes the entry when this caller leaves, finished or cancelled, if it was the last.
        // It holds this caller's only clone of the flight, so the count below stays exact.
        let leave = Leave {
            cache: self,
            key,
            flight,
        };
        let (value, _) = leave
            .flight
            .get_or_init(|| async {
                let (v, until) = lookup().await;
                if let Some(until) = until {
                    self.insert(key, v.clone(), until);
                }
                // An uncached result is still shared with the callers already waiting.
                (v, until.unwrap_or_else(Instant::now))
            })
            .await
            .clone();
        value
    }
}

/// A caller's hold on a single-flight entry.
struct Leave<'a, V: Clone> {
    cache: &'a DecisionCache<V>,
    key: Key,
    flight: Flight<V>,
}

impl<V: Clone> Drop for Leave<'_, V> {
    fn drop(&mut self) {
        let mut inflight = self.cache.inflight();
        // Clones are only made under this lock, so the count is exact: the map's, ours, and
        // one per other waiter. A finished flight goes at once: later callers hit the cache.
        if let Some(entry) = inflight.get(&self.key)
            && Arc::ptr_eq(entry, &self.flight)
            && (self.flight.initialized() || Arc::strong_count(&self.flight) <= 2)
        {
            inflight.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sharded_lru::SHARDS;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    #[tokio::test]
    async fn concurrent_misses_make_one_lookup() {
        let cache = Arc::new(DecisionCache::<u32>::new(100));
        let calls = Arc::new(AtomicU32::new(0));
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let (cache, calls) = (cache.clone(), calls.clone());
            tasks.push(tokio::spawn(async move {
                cache
                    .get_or_fetch(key_of("t"), || async {
                        calls.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        (7, Some(Instant::now() + Duration::from_secs(60)))
                    })
                    .await
            }));
        }
        for t in tasks {
            assert_eq!(t.await.expect("join"), 7);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn bounded_and_expiring() {
        let cache = DecisionCache::<u32>::new(10 * SHARDS);
        let later = Instant::now() + Duration::from_secs(60);
        for i in 0..10_000u32 {
            cache.insert(key_of(&i.to_string()), i, later);
        }
        assert!(cache.len() <= 10 * SHARDS);
        cache.insert(key_of("old"), 1, Instant::now());
        assert_eq!(cache.get(&key_of("old")), None);
    }

    #[test]
    fn the_least_recently_used_entry_is_evicted() {
        let cache = DecisionCache::<u32>::new(3 * SHARDS);
        let later = Instant::now() + Duration::from_secs(60);
        // Keys of one shard, so its capacity of 3 is what counts.
        let keys: Vec<Key> = (0..10_000u32)
            .map(|i| key_of(&i.to_string()))
            .filter(|k| usize::from(k[0]) % SHARDS == 0)
            .take(4)
            .collect();
        for (i, k) in keys.iter().take(3).enumerate() {
            cache.insert(*k, i as u32, later);
        }
        // Touch the oldest: the second becomes least recently used.
        assert_eq!(cache.get(&keys[0]), Some(0));
        cache.insert(keys[3], 3, later);
        assert_eq!(cache.get(&keys[0]), Some(0));
        assert_eq!(cache.get(&keys[1]), None);
        assert_eq!(cache.get(&keys[2]), Some(2));
        assert_eq!(cache.get(&keys[3]), Some(3));
    }

    #[tokio::test]
    async fn cancelled_lookups_leave_no_flight_behind() {
        let cache = Arc::new(DecisionCache::<u32>::new(100));
        let mut tasks = Vec::new();
        for i in 0..1000u32 {
            let cache = cache.clone();
            tasks.push(tokio::spawn(async move {
                cache
                    .get_or_fetch(key_of(&format!("t{}", i % 700)), || async {
                        // A lookup that never answers: only cancellation ends it.
                        std::future::pending::<()>().await;
                        (0, None)
                    })
                    .await
            }));
        }
        let filled = async {
            while cache.flights() < 700 {
                tokio::task::yield_now().await;
            }
        };
        tokio::time::timeout(Duration::from_secs(5), filled)
            .await
            .expect("every lookup started");
        for t in &tasks {
            t.abort();
        }
        for t in tasks {
            assert!(t.await.is_err_and(|e| e.is_cancelled()));
        }
        assert_eq!(cache.flights(), 0, "cancelled lookups left entries behind");
        // And a finished lookup leaves none either.
        let v = cache
            .get_or_fetch(key_of("done"), || async { (5, None) })
            .await;
        assert_eq!(v, 5);
        assert_eq!(cache.flights(), 0);
    }
}
