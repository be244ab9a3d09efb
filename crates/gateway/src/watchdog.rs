//! The agent's watchdog: after applying a version, compare its error rate with what the previous
//! version had; if it is well above, revert by itself — no control plane involved.

use std::collections::VecDeque;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct WatchdogSettings {
    /// How long a new version is watched before it becomes the last-known-good.
    pub window: Duration,
    /// Requests needed before a verdict: fewer is no evidence either way.
    pub min_requests: u64,
    /// A 5xx rate at or below this never trips the watchdog.
    pub floor: f64,
    /// Trips when the new rate exceeds the previous version's by this factor (and the floor).
    pub factor: f64,
}

impl Default for WatchdogSettings {
    fn default() -> Self {
        WatchdogSettings {
            window: Duration::from_secs(30),
            min_requests: 20,
            floor: 0.1,
            factor: 5.0,
        }
    }
}

impl WatchdogSettings {
    /// A watchdog that never trips (a 5xx floor of 100%), for when the control plane's gates
    /// are the defence being shown (drills, tests).
    pub fn quiet() -> WatchdogSettings {
        WatchdogSettings {
            window: Duration::from_secs(1),
            floor: 1.0,
            ..Default::default()
        }
    }
}

/// Requests and 5xx answers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sample {
    pub requests: u64,
    pub errors: u64,
}

impl Sample {
    pub fn rate(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.errors as f64 / self.requests as f64
        }
    }
}

/// The last `capacity` one-second samples.
#[derive(Debug)]
pub struct History {
    samples: VecDeque<Sample>,
    capacity: usize,
}

impl History {
    pub fn new(capacity: usize) -> History {
        History {
            samples: VecDeque::with_capacity(capacity),
            capacity,
        }
    }

    pub fn push(&mut self, s: Sample) {
        if self.samples.len() == self.capacity {
            self.samples.pop_front();
        }
        self.samples.push_back(s);
    }

    pub fn total(&self) -> Sample {
        self.samples.iter().fold(Sample::default(), |a, s| Sample {
            requests: a.requests + s.requests,
            errors: a.errors + s.errors,
        })
    }

    pub fn clear(&mut self) {
        self.samples.clear();
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Not enough evidence, or nothing wrong.
    Hold,
    Revert(String),
}

/// Compares the new version's traffic since it was applied with the previous version's.
pub fn judge(previous: Sample, current: Sample, s: &WatchdogSettings) -> Verdict {
    if current.requests < s.min_requests {
        return Verdict::Hold;
    }
    let threshold = s.floor.max(previous.rate() * s.factor);
    if current.rate() > threshold {
        Verdict::Revert(format!(
            "5xx rate {:.1}% over {} requests after the apply, against {:.1}% before (threshold {:.1}%)",
            current.rate() * 100.0,
            current.requests,
            previous.rate() * 100.0,
            threshold * 100.0
        ))
    } else {
        Verdict::Hold
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(requests: u64, errors: u64) -> Sample {
        Sample { requests, errors }
    }

    #[test]
    fn verdicts() {
        let w = WatchdogSettings::default();
        let table = [
            (s(1000, 0), s(10, 10), Verdict::Hold), // too few requests to judge
            (s(1000, 0), s(100, 5), Verdict::Hold), // 5% is under the 10% floor
            (s(1000, 0), s(100, 50), Verdict::Revert(String::new())),
            (s(1000, 100), s(100, 40), Verdict::Hold), // 40% < 5 × 10%
            (s(1000, 100), s(100, 60), Verdict::Revert(String::new())),
            (s(0, 0), s(100, 100), Verdict::Revert(String::new())), // no previous traffic: the floor decides
        ];
        for (before, after, want) in table {
            let got = judge(before, after, &w);
            assert_eq!(
                matches!(got, Verdict::Revert(_)),
                matches!(want, Verdict::Revert(_)),
                "{before:?} -> {after:?}: {got:?}"
            );
        }
    }

    #[test]
    fn history_keeps_the_last_samples() {
        let mut h = History::new(3);
        for i in 1..=5 {
            h.push(s(i, 0));
        }
        assert_eq!(h.total(), s(3 + 4 + 5, 0));
    }
}
