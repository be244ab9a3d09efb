//! The SLI book: per series (an environment's whole traffic, or one component's), requests and
//! failures per second for 6 h and per minute for 90 days (`slo::Series`), fed by agent reports
//! and flushed to the store a completed minute at a time, so a restart keeps the history.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use rampart_api::Traffic;

use crate::slo::{Counts, Series};
use crate::store::{Store, StoreError, now_ms};

/// Series of an environment's whole traffic.
pub fn environment_series(env: &str) -> String {
    format!("environment:{env}")
}

/// Series of one component.
pub fn component_series(name: &str) -> String {
    format!("component:{name}")
}

#[derive(Default)]
pub struct Sli {
    series: Mutex<HashMap<String, Series>>,
    /// Last minute written to the store, per series.
    flushed: Mutex<HashMap<String, u64>>,
}

impl Sli {
    /// The history the store holds.
    pub async fn load(store: &Store) -> Result<Sli, StoreError> {
        let mut series = HashMap::new();
        let mut flushed = HashMap::new();
        for (name, points) in store.load_minutes().await? {
            if let Some(last) = points.last() {
                flushed.insert(name.clone(), last.0);
            }
            series.insert(name, Series::from_minutes(points));
        }
        Ok(Sli {
            series: Mutex::new(series),
            flushed: Mutex::new(flushed),
        })
    }

    /// The series by name, locked (kept short: reports and evaluation share it).
    pub fn lock(&self) -> MutexGuard<'_, HashMap<String, Series>> {
        self.series.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Books counts into series, at this second.
    pub fn record(&self, updates: Vec<(String, Counts)>) {
        let sec = now_ms() / 1000;
        let mut series = self.lock();
        for (name, c) in updates {
            series.entry(name).or_default().record(sec, c);
        }
    }

    /// Requests of `series` from `from_ms` to now.
    pub fn traffic_since(&self, series: &str, from_ms: u64) -> Traffic {
        let now = now_ms() / 1000;
        let from = from_ms / 1000;
        let c = self
            .lock()
            .get(series)
            .map(|s| s.window(now, now.saturating_sub(from) + 1))
            .unwrap_or_default();
        Traffic {
            failed: c.failed,
            total: c.total,
        }
    }

    /// Daily (total, failed) of `series` for the last `days` days, oldest first.
    pub fn daily(&self, series: &str, days: u64) -> Vec<Counts> {
        let now = now_ms() / 1000;
        let today_end = (now / 86_400 + 1) * 86_400 - 1;
        let all = self.lock();
        let Some(s) = all.get(series) else {
            return vec![Counts::default(); days as usize];
        };
        (0..days)
            .rev()
            .map(|back| {
                let end = today_end - back * 86_400;
                if end > now {
                    s.window(now, now - (end - 86_399) + 1)
                } else {
                    s.window(end, 86_400)
                }
            })
            .collect()
    }

    /// The minutes completed since the last call, per series: what to write to the store.
    pub fn completed_minutes(&self) -> Vec<(String, u64, Counts)> {
        let now = now_ms() / 1000;
        let series = self.lock();
        let mut flushed = self.flushed.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = vec![];
        for (name, s) in series.iter() {
            let done = s.minutes_since(flushed.get(name).copied(), now);
            if let Some(last) = done.last() {
                flushed.insert(name.clone(), last.0);
            }
            out.extend(done.into_iter().map(|(m, c)| (name.clone(), m, c)));
        }
        out
    }
}
