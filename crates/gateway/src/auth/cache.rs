//! A bounded cache of auth decisions keyed by the SHA-256 of the credential (raw tokens are
//! never kept), with per-entry expiry and single-flight: concurrent misses for the same key
//! wait for one lookup instead of each calling the auth server.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

pub type Key = [u8; 32];

pub fn key_of(credential: &str) -> Key {
    Sha256::digest(credential.as_bytes()).into()
}

type Flight<V> = Arc<OnceCell<(V, Instant)>>;

pub struct DecisionCache<V: Clone> {
    capacity: usize,
    entries: Mutex<HashMap<Key, (V, Instant)>>,
    inflight: Mutex<HashMap<Key, Flight<V>>>,
}

impl<V: Clone> DecisionCache<V> {
    pub fn new(capacity: usize) -> Self {
        DecisionCache {
            capacity,
            entries: Mutex::new(HashMap::new()),
            inflight: Mutex::new(HashMap::new()),
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<Key, (V, Instant)>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, key: &Key) -> Option<V> {
        let mut entries = self.entries();
        match entries.get(key) {
            Some((v, until)) if *until > Instant::now() => Some(v.clone()),
            Some(_) => {
                entries.remove(key);
                None
            }
            None => None,
        }
    }

    pub fn insert(&self, key: Key, value: V, until: Instant) {
        let mut entries = self.entries();
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            let now = Instant::now();
            entries.retain(|_, (_, u)| *u > now);
            if entries.len() >= self.capacity {
                // Still full of live entries: drop an arbitrary tenth.
                let drop: Vec<Key> = entries
                    .keys()
                    .take(self.capacity / 10 + 1)
                    .copied()
                    .collect();
                for k in drop {
                    entries.remove(&k);
                }
            }
        }
        entries.insert(key, (value, until));
    }

    pub fn len(&self) -> usize {
        self.entries().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
        let flight: Flight<V> = {
            let mut inflight = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
            inflight
                .entry(key)
                .or_insert_with(|| Arc::new(OnceCell::new()))
                .clone()
        };
        let (value, until) = flight
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
        {
            let mut inflight = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
            if inflight.get(&key).is_some_and(|f| Arc::ptr_eq(f, &flight)) {
                inflight.remove(&key);
            }
        }
        let _ = until;
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
        let cache = DecisionCache::<u32>::new(10);
        let later = Instant::now() + Duration::from_secs(60);
        for i in 0..100u32 {
            cache.insert(key_of(&i.to_string()), i, later);
        }
        assert!(cache.len() <= 10);
        cache.insert(key_of("old"), 1, Instant::now());
        assert_eq!(cache.get(&key_of("old")), None);
    }
}
