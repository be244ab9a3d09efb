//! A bounded map split into 16 LRU lists, each under its own lock: O(1) per operation, no
//! global lock, the least recently used entry of a full shard evicted first. The auth
//! decision cache and the rate limiter's key table are built on it.

use std::hash::Hash;
use std::sync::{Mutex, MutexGuard};

use hashlink::LruCache;

pub const SHARDS: usize = 16;

pub struct ShardedLru<K, V> {
    shards: Box<[Mutex<LruCache<K, V>>]>,
}

impl<K: Hash + Eq, V> ShardedLru<K, V> {
    /// Holds about `capacity` entries in all (at least one a shard).
    pub fn new(capacity: usize) -> Self {
        let per_shard = capacity.div_ceil(SHARDS).max(1);
        ShardedLru {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(LruCache::new(per_shard)))
                .collect(),
        }
    }

    /// The shard for a key whose hash (or any evenly spread number) is `spread`.
    pub fn shard(&self, spread: usize) -> MutexGuard<'_, LruCache<K, V>> {
        let shard = &self.shards[spread % SHARDS];
        shard.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
