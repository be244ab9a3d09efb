//! A monotonic millisecond clock that fits in an atomic, for per-endpoint timestamps.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

/// Milliseconds since the first call in this process; never 0 (0 means "never" in atomics).
pub fn now_ms() -> u64 {
    base().elapsed().as_millis() as u64 + 1
}

pub fn ms(d: Duration) -> u64 {
    d.as_millis().min(u128::from(u64::MAX)) as u64
}
