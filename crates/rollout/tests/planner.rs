//! The planner driven by a simulated fleet in simulated time: no sleeping, no network.

use rampart_rollout::plan::{InstanceView, cohort_size};
use rampart_rollout::{
    Action, Comparison, Counts, InconclusiveAction, Intent, Observed, OnInconclusive, OnNoData,
    Plan, Prometheus, Query, QueryOutcome, ReleaseState, Sample, Verdict, WaveTarget, step,
};

const OLD: &str = "v-old";
const NEW: &str = "v-new";

/// A fleet whose instances serve `rps` requests a second, failing with a rate that depends on
/// the version they run.
struct Sim {
    instances: Vec<InstanceView>,
    rps: u64,
    old_error: f64,
    new_error: f64,
    rng: fastrand::Rng,
    /// Instances that stop reporting.
    silent: Vec<String>,
    /// Instances that reject the new version.
    rejecting: Vec<String>,
    /// What Prometheus answers each second, if the plan asks it.
    prometheus: Option<Sample>,
}

impl Sim {
    fn new(n: usize, rps: u64, old_error: f64, new_error: f64, seed: u64) -> Sim {
        let instances = (0..n)
            .map(|i| InstanceView {
                id: format!("gw-{i:02}"),
                applied: Some(OLD.into()),
                rejected: None,
                last_report_ms: 0,
                counts: Counts::default(),
            })
            .collect();
        Sim {
            instances,
            rps,
            old_error,
            new_error,
            rng: fastrand::Rng::with_seed(seed),
            silent: vec![],
            rejecting: vec![],
            prometheus: None,
        }
    }

    /// One simulated second of traffic and reports.
    fn tick(&mut self, now: u64) {
        for i in &mut self.instances {
            if self.silent.contains(&i.id) {
                continue;
            }
            let p = if i.applied.as_deref() == Some(NEW) {
                self.new_error
            } else {
                self.old_error
            };
            let errors = (0..self.rps).filter(|_| self.rng.f64() < p).count() as u64;
            i.counts.requests += self.rps;
            i.counts.errors += errors;
            i.last_report_ms = now;
        }
    }

    fn reset_counts(&mut self) {
        for i in &mut self.instances {
            i.counts = Counts::default();
        }
    }
}

/// How a simulated release ended.
#[derive(Debug)]
struct Outcome {
    state: ReleaseState,
    /// Seconds from the first apply of the new version to the end.
    seconds: u64,
    /// Most instances that ever ran the new version at once.
    max_exposed: usize,
    reason: Option<String>,
    holds: Vec<String>,
    /// What `on_inconclusive` did, each time it acted.
    overdue: Vec<InconclusiveAction>,
}

fn run(sim: &mut Sim, plan: Plan, limit_s: u64) -> Outcome {
    let mut intent = Intent {
        version: NEW.into(),
        previous: Some(OLD.into()),
        plan,
        state: ReleaseState::Pending,
        wave: 0,
        wave_started_ms: 0,
    };
    let mut max_exposed = 0;
    let mut holds = Vec::new();
    let mut overdue = Vec::new();
    for second in 0..limit_s {
        let now = second * 1000;
        sim.tick(now);
        let queries = match &sim.prometheus {
            Some(sample) => vec![QueryOutcome {
                name: "downstream".into(),
                at_ms: now,
                sample: sample.clone(),
            }],
            None => vec![],
        };
        let observed = Observed {
            instances: sim.instances.clone(),
            queries,
        };
        for action in step(&intent, &observed, now) {
            match action {
                Action::Advance { wave } => {
                    intent.state = ReleaseState::Rolling;
                    intent.wave = wave;
                    intent.wave_started_ms = now;
                    sim.reset_counts();
                }
                Action::Apply { instances } => {
                    for i in sim
                        .instances
                        .iter_mut()
                        .filter(|i| instances.contains(&i.id))
                    {
                        if sim.rejecting.contains(&i.id) {
                            i.rejected = Some("listener address in use".into());
                        } else {
                            i.applied = Some(NEW.into());
                        }
                    }
                }
                Action::Hold { reason } => holds.push(reason),
                Action::Overdue { then, .. } => overdue.push(then),
                Action::Gate { .. } => {}
                Action::Fail { reason, rollback } => {
                    for i in sim
                        .instances
                        .iter_mut()
                        .filter(|i| rollback.contains(&i.id))
                    {
                        i.applied = Some(OLD.into());
                    }
                    return Outcome {
                        state: ReleaseState::RolledBack,
                        seconds: second,
                        max_exposed,
                        reason: Some(reason),
                        holds,
                        overdue,
                    };
                }
                Action::Succeed => {
                    return Outcome {
                        state: ReleaseState::Succeeded,
                        seconds: second,
                        max_exposed,
                        reason: None,
                        holds,
                        overdue,
                    };
                }
            }
        }
        max_exposed = max_exposed.max(
            sim.instances
                .iter()
                .filter(|i| i.applied.as_deref() == Some(NEW))
                .count(),
        );
    }
    Outcome {
        state: intent.state,
        seconds: limit_s,
        max_exposed,
        reason: None,
        holds,
        overdue,
    }
}

#[test]
fn cohorts_follow_the_waves() {
    assert_eq!(cohort_size(WaveTarget::Instances(1), 5), 1);
    assert_eq!(cohort_size(WaveTarget::Percent(10), 5), 1);
    assert_eq!(cohort_size(WaveTarget::Percent(50), 5), 3);
    assert_eq!(cohort_size(WaveTarget::Percent(100), 5), 5);
    assert_eq!(cohort_size(WaveTarget::Percent(10), 100), 10);
    assert_eq!(cohort_size(WaveTarget::Instances(3), 2), 2);
}

#[test]
fn a_good_version_passes_every_wave() {
    let mut sim = Sim::new(5, 100, 0.001, 0.001, 1);
    let out = run(&mut sim, Plan::standard(30_000), 600);
    assert_eq!(out.state, ReleaseState::Succeeded, "{out:?}");
    assert!(
        sim.instances
            .iter()
            .all(|i| i.applied.as_deref() == Some(NEW))
    );
    assert!(
        out.seconds >= 120,
        "four waves of 30 s bake: took {} s",
        out.seconds
    );
}

#[test]
fn a_broken_version_stops_at_the_canary_within_seconds() {
    // The seed: every request through the new version's auth provider fails.
    let mut sim = Sim::new(5, 100, 0.001, 1.0, 2);
    let out = run(&mut sim, Plan::standard(30_000), 600);
    assert_eq!(out.state, ReleaseState::RolledBack);
    assert_eq!(out.max_exposed, 1, "only the canary may ever run it");
    assert!(out.seconds <= 3, "caught after {} s", out.seconds);
    assert!(
        out.reason
            .as_deref()
            .is_some_and(|r| r.contains("error_ceiling")),
        "{out:?}"
    );
    assert!(
        sim.instances
            .iter()
            .all(|i| i.applied.as_deref() == Some(OLD)),
        "all back on the old version"
    );
}

#[test]
fn a_subtle_regression_is_caught() {
    // +2 points of errors over a 0.1% baseline, 100 req/s per instance.
    let mut times = Vec::new();
    for seed in 0..20 {
        let mut sim = Sim::new(5, 100, 0.001, 0.021, 100 + seed);
        let out = run(&mut sim, Plan::standard(30_000), 900);
        assert_eq!(out.state, ReleaseState::RolledBack, "seed {seed}: {out:?}");
        assert_eq!(
            out.max_exposed, 1,
            "seed {seed}: caught after the canary wave"
        );
        times.push(out.seconds);
    }
    times.sort_unstable();
    let (median, worst) = (times[times.len() / 2], times[times.len() - 1]);
    println!(
        "subtle regression (+2% over 0.1%): caught in median {median} s, worst {worst} s over 20 runs"
    );
    assert!(worst <= 120, "worst time to catch {worst} s");
}

#[test]
fn an_aa_release_does_not_raise_false_alarms() {
    let runs = 300;
    let mut failures = 0;
    for seed in 0..runs {
        let mut sim = Sim::new(5, 100, 0.001, 0.001, 10_000 + seed);
        let out = run(&mut sim, Plan::standard(30_000), 600);
        match out.state {
            ReleaseState::Succeeded => {}
            ReleaseState::RolledBack => failures += 1,
            other => panic!("seed {seed}: ended {other:?}"),
        }
    }
    let rate = failures as f64 / runs as f64;
    println!(
        "A/A false-alarm rate: {failures} of {runs} releases ({:.2}%), bound alpha = 1%",
        rate * 100.0
    );
    assert!(rate <= 0.01, "false alarms {failures} of {runs}");
}

#[test]
fn no_traffic_holds_as_inconclusive() {
    let mut sim = Sim::new(5, 0, 0.0, 0.0, 3);
    let out = run(&mut sim, Plan::standard(30_000), 600);
    assert_eq!(out.state, ReleaseState::Rolling, "{out:?}");
    assert_eq!(out.max_exposed, 1, "it never leaves the canary wave");
    assert!(
        out.holds
            .last()
            .is_some_and(|h| h.starts_with("inconclusive")),
        "{:?}",
        out.holds.last()
    );
}

#[test]
fn a_rejected_apply_or_a_silent_canary_fails_the_release() {
    let mut sim = Sim::new(5, 100, 0.001, 0.001, 4);
    sim.rejecting.push("gw-00".into());
    let out = run(&mut sim, Plan::standard(30_000), 60);
    assert_eq!(out.state, ReleaseState::RolledBack);
    assert!(
        out.reason
            .as_deref()
            .is_some_and(|r| r.contains("rejected")),
        "{out:?}"
    );

    let mut sim = Sim::new(5, 100, 0.001, 0.001, 5);
    sim.silent.push("gw-00".into());
    let out = run(&mut sim, Plan::standard(30_000), 60);
    assert_eq!(out.state, ReleaseState::RolledBack);
    assert!(
        out.reason
            .as_deref()
            .is_some_and(|r| r.contains("stopped reporting")),
        "{out:?}"
    );
}

#[test]
fn verdicts_explain_themselves() {
    let s = rampart_rollout::GateSettings::default();
    let c = |requests, errors| Counts {
        requests,
        errors,
        shed: 0,
        p99_ms: None,
    };
    assert!(matches!(
        rampart_rollout::judge(c(10, 0), c(1000, 1), &s),
        Verdict::Inconclusive { .. }
    ));
    assert!(matches!(
        rampart_rollout::judge(c(1000, 1), c(1000, 1), &s),
        Verdict::Pass { .. }
    ));
    match rampart_rollout::judge(c(100, 60), c(1000, 1), &s) {
        Verdict::Fail { gate, detail } => {
            assert_eq!(gate, "error_ceiling");
            assert!(detail.contains("60.00%"), "{detail}");
        }
        other => panic!("{other:?}"),
    }
    let slow = Counts {
        p99_ms: Some(300),
        ..c(1000, 0)
    };
    let fast = Counts {
        p99_ms: Some(20),
        ..c(1000, 0)
    };
    assert!(
        matches!(rampart_rollout::judge(slow, fast, &s), Verdict::Fail { ref gate, .. } if gate == "latency")
    );
}

#[test]
fn a_paused_wave_holds_after_its_bake_until_promoted() {
    let mut plan = Plan::short(10_000);
    plan.waves[1].pause = true;
    let mut sim = Sim::new(4, 100, 0.001, 0.001, 6);
    let out = run(&mut sim, plan, 300);
    assert_eq!(out.state, ReleaseState::Rolling, "{out:?}");
    let last = out.holds.last().cloned().unwrap_or_default();
    assert!(last.starts_with("paused by policy after wave 2"), "{last}");
    assert_eq!(
        out.max_exposed, 2,
        "the paused wave's cohort only (50% of 4)"
    );
}

fn quiet_plan(action: InconclusiveAction) -> Plan {
    Plan {
        on_inconclusive: Some(OnInconclusive {
            after_ms: 60_000,
            action,
        }),
        ..Plan::short(10_000)
    }
}

#[test]
fn a_wave_inconclusive_for_too_long_does_what_the_policy_says() {
    let mut sim = Sim::new(3, 0, 0.0, 0.0, 7);
    let out = run(&mut sim, quiet_plan(InconclusiveAction::Rollback), 300);
    assert_eq!(out.state, ReleaseState::RolledBack, "{out:?}");
    assert!((60..=62).contains(&out.seconds), "{out:?}");
    assert!(
        out.reason
            .is_some_and(|r| r.contains("on_inconclusive: rollback"))
    );

    let mut sim = Sim::new(3, 0, 0.0, 0.0, 8);
    let out = run(&mut sim, quiet_plan(InconclusiveAction::Promote), 400);
    assert_eq!(out.state, ReleaseState::Succeeded, "{out:?}");
    assert_eq!(out.overdue.len(), 3, "once per wave: {:?}", out.overdue);

    let mut sim = Sim::new(3, 0, 0.0, 0.0, 9);
    let out = run(&mut sim, quiet_plan(InconclusiveAction::Hold), 300);
    assert_eq!(out.state, ReleaseState::Rolling, "{out:?}");
    assert_eq!(out.max_exposed, 1);
    let last = out.holds.last().cloned().unwrap_or_default();
    assert!(last.contains("waiting for a person"), "{last}");
}

fn gated(mut plan: Plan) -> Plan {
    plan.prometheus = Some(Prometheus {
        url: "http://127.0.0.1:9090".into(),
        interval_ms: 1_000,
        deadline_ms: 1_000,
        queries: vec![Query {
            name: "downstream".into(),
            query: "sum(rate(downstream_errors_total[1m]))".into(),
            comparison: Comparison::Below,
            threshold: 0.05,
            on_no_data: OnNoData::Inconclusive,
        }],
    });
    plan
}

#[test]
fn a_prometheus_gate_fails_a_release_the_agents_would_pass() {
    let mut sim = Sim::new(4, 100, 0.001, 0.001, 10);
    sim.prometheus = Some(Sample::Value(0.3));
    let out = run(&mut sim, gated(Plan::short(10_000)), 300);
    assert_eq!(out.state, ReleaseState::RolledBack, "{out:?}");
    assert!(
        out.reason
            .is_some_and(|r| r.contains("prometheus:downstream"))
    );
    assert_eq!(out.max_exposed, 1);

    let mut sim = Sim::new(4, 100, 0.001, 0.001, 11);
    sim.prometheus = Some(Sample::Value(0.01));
    let out = run(&mut sim, gated(Plan::short(10_000)), 300);
    assert_eq!(out.state, ReleaseState::Succeeded, "{out:?}");
}

#[test]
fn an_unanswered_query_holds_and_never_passes_not_even_by_policy() {
    for sample in [
        Some(Sample::Empty),
        Some(Sample::Value(f64::NAN)),
        Some(Sample::Error("deadline".into())),
        None,
    ] {
        let mut sim = Sim::new(4, 100, 0.001, 0.001, 12);
        sim.prometheus = sample.clone();
        let out = run(
            &mut sim,
            gated(quiet_plan(InconclusiveAction::Promote)),
            300,
        );
        assert_eq!(out.state, ReleaseState::Rolling, "{sample:?}: {out:?}");
        assert_eq!(out.max_exposed, 1, "{sample:?}");
        assert!(
            out.overdue.iter().all(|a| *a == InconclusiveAction::Hold),
            "{sample:?}: {:?}",
            out.overdue
        );
    }
}
