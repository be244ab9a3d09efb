//! SLI series and multiwindow, multi-burn-rate alerting (SRE Workbook, "Alerting on SLOs").
//!
//! A [`Series`] keeps cumulative (total, failed) counts at the end of every second for the
//! recent window and at the end of every minute for 90 days, so the sum over any window is one
//! subtraction. Time is passed in (seconds since the epoch), so tests run days in milliseconds.
//! Burn rates are compared in integers: a burn exactly at a tier's factor does not fire it.

use std::collections::VecDeque;

use rampart_api::Severity;

/// Per-second points kept: a little over the longest short-precision window (6 h).
pub const SECOND_RETENTION: u64 = 6 * 3600 + 120;
/// Per-minute points kept: 90 days.
pub const MINUTE_RETENTION: u64 = 90 * 24 * 60;

/// Requests counted, and how many of them failed (5xx).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub total: u64,
    pub failed: u64,
}

impl Counts {
    fn minus(self, earlier: Counts) -> Counts {
        Counts {
            total: self.total.saturating_sub(earlier.total),
            failed: self.failed.saturating_sub(earlier.failed),
        }
    }
}

/// One SLI's counts over time.
#[derive(Debug, Clone, Default)]
pub struct Series {
    /// (second, cumulative counts at its end), ascending.
    seconds: VecDeque<(u64, Counts)>,
    /// (minute, cumulative counts at its end), ascending.
    minutes: VecDeque<(u64, Counts)>,
    cumulative: Counts,
}

impl Series {
    /// Rebuilds a series from stored per-minute counts (ascending minutes).
    pub fn from_minutes(points: impl IntoIterator<Item = (u64, Counts)>) -> Series {
        let mut s = Series::default();
        for (minute, c) in points {
            s.cumulative.total += c.total;
            s.cumulative.failed += c.failed;
            s.minutes.push_back((minute, s.cumulative));
        }
        s
    }

    /// Adds requests seen during second `sec`. Seconds must not go backwards by more than the
    /// current one; late counts are booked into the latest second.
    pub fn record(&mut self, sec: u64, c: Counts) {
        let sec = sec.max(self.seconds.back().map_or(0, |p| p.0));
        self.cumulative.total += c.total;
        self.cumulative.failed += c.failed;
        let now = self.cumulative;
        match self.seconds.back_mut() {
            Some(p) if p.0 == sec => p.1 = now,
            _ => self.seconds.push_back((sec, now)),
        }
        let minute = sec / 60;
        match self.minutes.back_mut() {
            Some(p) if p.0 >= minute => p.1 = now,
            _ => self.minutes.push_back((minute, now)),
        }
        while self
            .seconds
            .front()
            .is_some_and(|p| p.0 + SECOND_RETENTION < sec)
        {
            self.seconds.pop_front();
        }
        while self
            .minutes
            .front()
            .is_some_and(|p| p.0 + MINUTE_RETENTION < minute)
        {
            self.minutes.pop_front();
        }
    }

    /// Cumulative counts at the end of second `t`.
    fn at(&self, t: u64) -> Counts {
        if let Some(first) = self.seconds.front()
            && t >= first.0
        {
            let i = self.seconds.partition_point(|p| p.0 <= t);
            return self.seconds[i - 1].1;
        }
        // Older than the per-second points: the last minute that ended by `t`.
        let ended = (t + 1) / 60;
        let i = self.minutes.partition_point(|p| p.0 < ended);
        if i == 0 {
            return Counts::default();
        }
        self.minutes[i - 1].1
    }

    /// Requests in the `window` seconds that end with second `now` (inclusive).
    pub fn window(&self, now: u64, window: u64) -> Counts {
        self.at(now).minus(self.at(now.saturating_sub(window)))
    }

    /// Completed minutes after `after` (exclusive) and before `now`'s minute, with their counts.
    pub fn minutes_since(&self, after: Option<u64>, now: u64) -> Vec<(u64, Counts)> {
        let current = now / 60;
        let mut out = vec![];
        let mut previous: Option<Counts> = None;
        for &(minute, cum) in &self.minutes {
            if minute >= current {
                break;
            }
            if after.is_none_or(|a| minute > a) {
                let base = previous.unwrap_or_default();
                out.push((minute, cum.minus(base)));
            }
            previous = Some(cum);
        }
        out
    }
}

/// One row of the Workbook's table: fire when both windows burn faster than `factor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tier {
    pub name: &'static str,
    pub severity: Severity,
    /// Burn-rate factor, in tenths (14.4× is 144).
    pub factor_tenths: u64,
    pub long_secs: u64,
    pub short_secs: u64,
}

/// The SRE Workbook's recommended tiers for a 30-day SLO.
pub const TIERS: [Tier; 3] = [
    Tier {
        name: "fast-burn",
        severity: Severity::Page,
        factor_tenths: 144,
        long_secs: 3600,
        short_secs: 300,
    },
    Tier {
        name: "slow-burn",
        severity: Severity::Page,
        factor_tenths: 60,
        long_secs: 6 * 3600,
        short_secs: 1800,
    },
    Tier {
        name: "budget-burn",
        severity: Severity::Ticket,
        factor_tenths: 10,
        long_secs: 3 * 24 * 3600,
        short_secs: 6 * 3600,
    },
];

/// An objective as parts per million of good requests (99.9 % is 999 000).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Objective {
    pub good_ppm: u64,
}

impl Objective {
    /// From a percentage; must be above 0 and below 100.
    pub fn percent(p: f64) -> Result<Objective, String> {
        if !(p > 0.0 && p < 100.0) {
            return Err(format!(
                "an SLO is a percentage above 0 and below 100, not {p}"
            ));
        }
        Ok(Objective {
            good_ppm: (p * 10_000.0).round() as u64,
        })
    }

    fn budget_ppm(self) -> u64 {
        1_000_000 - self.good_ppm
    }

    /// Whether `c` burns the error budget strictly faster than `factor_tenths / 10`.
    pub fn burns_faster(self, c: Counts, factor_tenths: u64) -> bool {
        c.total > 0
            && u128::from(c.failed) * 10_000_000
                > u128::from(factor_tenths) * u128::from(self.budget_ppm()) * u128::from(c.total)
    }

    /// The burn rate of `c` (1.0 spends the budget exactly over the SLO period).
    pub fn burn_rate(self, c: Counts) -> f64 {
        if c.total == 0 {
            return 0.0;
        }
        (c.failed as f64 / c.total as f64) / (self.budget_ppm() as f64 / 1_000_000.0)
    }
}

/// Whether `tier` fires for `series` at second `now`.
pub fn firing(series: &Series, objective: Objective, tier: &Tier, now: u64) -> bool {
    objective.burns_faster(series.window(now, tier.long_secs), tier.factor_tenths)
        && objective.burns_faster(series.window(now, tier.short_secs), tier.factor_tenths)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_sum_exactly_within_the_second_points_and_by_minute_beyond() {
        let mut s = Series::default();
        for sec in 0..20_000 {
            s.record(
                sec,
                Counts {
                    total: 10,
                    failed: u64::from(sec % 10 == 0),
                },
            );
        }
        assert_eq!(
            s.window(19_999, 100),
            Counts {
                total: 1000,
                failed: 10
            }
        );
        let mut long = Series::default();
        for sec in 0..(SECOND_RETENTION + 3600) {
            long.record(
                sec,
                Counts {
                    total: 1,
                    failed: 0,
                },
            );
        }
        let now = SECOND_RETENTION + 3599;
        // Past the per-second points the window starts at a minute boundary: up to 59 s more.
        let w = long.window(now, SECOND_RETENTION + 1000).total;
        assert!(
            (SECOND_RETENTION + 1000..SECOND_RETENTION + 1060).contains(&w),
            "{w}"
        );
    }

    #[test]
    fn minutes_since_gives_each_completed_minute_once() {
        let mut s = Series::default();
        for sec in 0..185 {
            s.record(
                sec,
                Counts {
                    total: 2,
                    failed: 1,
                },
            );
        }
        let done = s.minutes_since(None, 184);
        assert_eq!(
            done,
            vec![
                (
                    0,
                    Counts {
                        total: 120,
                        failed: 60
                    }
                ),
                (
                    1,
                    Counts {
                        total: 120,
                        failed: 60
                    }
                ),
                (
                    2,
                    Counts {
                        total: 120,
                        failed: 60
                    }
                )
            ]
        );
        assert!(s.minutes_since(Some(2), 184).is_empty());
        let restored = Series::from_minutes(done);
        assert_eq!(restored.window(179, 180).total, 360);
    }

    #[test]
    fn objectives_are_checked() {
        assert!(Objective::percent(100.0).is_err());
        assert!(Objective::percent(0.0).is_err());
        assert_eq!(Objective::percent(99.9).map(|o| o.good_ppm), Ok(999_000));
    }
}
