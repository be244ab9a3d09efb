//! Admission control: concurrency limits that refuse at once instead of queueing.
//!
//! A [`Limit`] is a counter with a maximum; [`Limit::try_acquire`] either returns a [`Permit`]
//! (released on drop) or `None`, and the caller answers 503 with Retry-After. Nothing waits.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

#[derive(Debug)]
pub struct Limit {
    max: AtomicU32,
    current: AtomicU32,
}

impl Limit {
    pub fn new(max: u32) -> Arc<Limit> {
        Arc::new(Limit {
            max: AtomicU32::new(max),
            current: AtomicU32::new(0),
        })
    }

    /// Changes the maximum (on reload); permits already held stay valid.
    pub fn set_max(&self, max: u32) {
        self.max.store(max, Ordering::Relaxed);
    }

    pub fn max(&self) -> u32 {
        self.max.load(Ordering::Relaxed)
    }

    pub fn current(&self) -> u32 {
        self.current.load(Ordering::Relaxed)
    }

    /// A permit if fewer than `max` are held, else `None`. Never waits.
    pub fn try_acquire(self: &Arc<Self>) -> Option<Permit> {
        let max = self.max.load(Ordering::Relaxed);
        let prev = self.current.fetch_add(1, Ordering::AcqRel);
        if prev >= max {
            self.current.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Permit(self.clone()))
    }
}

/// Held while a request (or connection) is admitted.
#[derive(Debug)]
pub struct Permit(Arc<Limit>);

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.current.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_over_max_and_releases_on_drop() {
        let limit = Limit::new(2);
        let a = limit.try_acquire().expect("first");
        let _b = limit.try_acquire().expect("second");
        assert!(limit.try_acquire().is_none());
        assert_eq!(limit.current(), 2);
        drop(a);
        assert!(limit.try_acquire().is_some());
        limit.set_max(0);
        assert!(limit.try_acquire().is_none());
    }
}
