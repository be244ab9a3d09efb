//! Multiwindow, multi-burn-rate alerting held against the SRE Workbook's table, in simulated
//! time: for a 99.9 % SLO at 100 % errors the tiers fire after 51.84 s, 129.6 s and 259.2 s of
//! burn (± one evaluation interval, here 1 s), never before; a burn exactly at a tier's factor
//! never fires it; an alert resolves once the burn stops.

use rampart_control::slo::{Counts, Objective, Series, TIERS, Tier, firing};

const RATE: u64 = 10;
/// Error-free traffic before the burn: the longest window (3 d) plus an hour.
const PREFILL: u64 = 3 * 24 * 3600 + 3600;

fn objective() -> Objective {
    Objective::percent(99.9).expect("valid")
}

fn steady(series: &mut Series, from: u64, to: u64, per_sec: Counts) {
    for sec in from..to {
        series.record(sec, per_sec);
    }
}

/// Seconds of 100 % errors after which `tier` first fires (evaluated at the end of each second).
fn seconds_to_fire(tier: &Tier) -> Option<u64> {
    let mut s = Series::default();
    let ok = Counts {
        total: RATE,
        failed: 0,
    };
    steady(&mut s, 0, PREFILL, ok);
    for sec in 0..PREFILL {
        // Sampled: error-free traffic must never fire.
        if sec % 600 == 0 {
            assert!(
                !firing(&s, objective(), tier, sec),
                "{} fired on error-free traffic",
                tier.name
            );
        }
    }
    let burn = Counts {
        total: RATE,
        failed: RATE,
    };
    for t in 1..=600 {
        let sec = PREFILL + t - 1;
        s.record(sec, burn);
        if firing(&s, objective(), tier, sec) {
            return Some(t);
        }
    }
    None
}

#[test]
fn tiers_fire_at_the_workbook_times_at_full_burn() {
    let expected = [51.84, 129.6, 259.2];
    for (tier, want) in TIERS.iter().zip(expected) {
        let got = seconds_to_fire(tier).unwrap_or_else(|| panic!("{} never fired", tier.name));
        println!(
            "{}: fired after {got} s of 100 % errors (Workbook: {want} s)",
            tier.name
        );
        assert!(
            (got as f64 - want).abs() <= 1.0,
            "{} fired after {got} s, expected {want} s ± 1 s",
            tier.name
        );
    }
}

#[test]
fn a_burn_at_or_below_a_tier_factor_never_fires_it() {
    for tier in &TIERS {
        // Exactly at the factor: failed/total = factor × 0.1 %. 10 000 req/s keeps it an integer.
        let total = 10_000;
        let at = tier.factor_tenths; // factor/10 × 0.001 × 10 000
        for failed in [at, at - 1] {
            let mut s = Series::default();
            steady(&mut s, 0, PREFILL, Counts { total, failed: 0 });
            let until = PREFILL + tier.long_secs + tier.short_secs;
            for sec in PREFILL..until {
                s.record(sec, Counts { total, failed });
                assert!(
                    !firing(&s, objective(), tier, sec),
                    "{} fired at {failed}/{total} failed after {} s",
                    tier.name,
                    sec - PREFILL
                );
            }
        }
    }
}

#[test]
fn an_alert_resolves_once_the_burn_stops() {
    let tier = &TIERS[0];
    let mut s = Series::default();
    steady(
        &mut s,
        0,
        2 * 3600,
        Counts {
            total: RATE,
            failed: 0,
        },
    );
    let mut sec = 2 * 3600;
    while !firing(&s, objective(), tier, sec - 1) {
        s.record(
            sec,
            Counts {
                total: RATE,
                failed: RATE,
            },
        );
        sec += 1;
        assert!(sec < 2 * 3600 + 120, "never fired");
    }
    let stopped = sec;
    let mut resolved = None;
    for t in stopped..stopped + 3600 {
        s.record(
            t,
            Counts {
                total: RATE,
                failed: 0,
            },
        );
        if !firing(&s, objective(), tier, t) {
            resolved = Some(t - stopped + 1);
            break;
        }
    }
    let after = resolved.expect("the alert kept firing an hour after the burn stopped");
    println!("{}: resolved {after} s after the burn stopped", tier.name);
    // The short window (5 min) forgets the burn first: the alert resolves once at most
    // 4 burning seconds are left in it (4 / 300 = 1.33 % of requests failed < 14.4 × 0.1 % =
    // 1.44 %; 5 / 300 = 1.67 % is not), that is 296 s after the burn stopped, to the second.
    assert_eq!(after, 296, "resolved {after} s after the burn stopped");
}
