//! Releases in waves: the control plane's side of the rollout planner (`rampart-rollout`).
//!
//! A deploy that replaces a version starts a release. Every tick the reconciler turns what the
//! agents reported into the planner's `Observed`, calls the pure `step`, and carries out its
//! actions: instances join the cohort (their long-poll then answers the new version), waves
//! advance, gate verdicts are recorded, and a failed gate rolls the cohort back through the same
//! path as a manual rollback. The intent is stored after every change, so a control plane that
//! restarts mid-release resumes it (counters restart from the next reports: the wave holds as
//! inconclusive until it has data again).

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use rampart_rollout::plan::InstanceView;
use rampart_rollout::{Action, Counts, Observed, ReleaseState, Verdict, step};

use crate::fleet::Instance;
use crate::store::ReleaseRow;

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A release in memory: the stored row plus what the reconciler needs between ticks.
#[derive(Debug, Clone)]
pub struct Live {
    pub row: ReleaseRow,
    /// Each instance's cumulative counts when the current wave started, or — for a cohort
    /// instance — when it was first seen running the new version, so its counts are its own.
    pub snapshot: HashMap<String, Counts>,
    /// Cohort instances seen running the new version.
    pub applied: std::collections::HashSet<String>,
    /// The wave whose overdue inconclusive hold was last recorded (one event per wave).
    pub overdue_wave: Option<usize>,
}

/// What the gates count of an instance: user requests and synthetic probes together, a probe
/// answered unexpectedly counting as an error (the SLIs count user requests only).
pub fn cumulative(i: &Instance) -> Counts {
    Counts {
        requests: i.requests.iter().sum::<u64>() + i.probes.sent,
        errors: i.requests[4] + i.probes.unexpected,
        shed: i.shed,
        p99_ms: None,
    }
}

/// p99 from a latency histogram (bucket upper bounds; the last bucket is "slower").
fn p99(buckets: &[u64]) -> Option<u64> {
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return None;
    }
    let target = (total as f64 * 0.99).ceil() as u64;
    let mut seen = 0;
    for (i, n) in buckets.iter().enumerate() {
        seen += n;
        if seen >= target {
            return Some(
                rampart_api::LATENCY_BOUNDS_MS
                    .get(i)
                    .copied()
                    .unwrap_or(10_000),
            );
        }
    }
    None
}

impl Live {
    /// A release as stored, nothing observed of it yet.
    pub fn new(row: ReleaseRow) -> Live {
        Live {
            row,
            snapshot: HashMap::new(),
            applied: Default::default(),
            overdue_wave: None,
        }
    }

    /// The planner's view of the fleet: counts since the wave started.
    pub fn observe(&self, instances: &[Instance], now: u64) -> Observed {
        let views = instances
            .iter()
            .map(|i| {
                let id = i.registration.instance.clone();
                let total = cumulative(i);
                let base = self.snapshot.get(&id).copied().unwrap_or_default();
                let counts = Counts {
                    requests: total.requests.saturating_sub(base.requests),
                    errors: total.errors.saturating_sub(base.errors),
                    shed: total.shed.saturating_sub(base.shed),
                    p99_ms: p99(&i.latency),
                };
                let rejected = match &i.last_result {
                    Some(rampart_api::ApplyResult::Rejected { version, error })
                        if *version == self.row.version =>
                    {
                        Some(error.clone())
                    }
                    _ => None,
                };
                InstanceView {
                    id,
                    applied: i.applied.as_ref().map(ToString::to_string),
                    rejected,
                    last_report_ms: now.saturating_sub(i.last_seen.elapsed().as_millis() as u64),
                    counts,
                }
            })
            .collect();
        Observed {
            instances: views,
            queries: vec![],
        }
    }

    /// Re-bases a cohort instance's counts the first time it reports the new version: the
    /// requests it served on the previous version before applying must not dilute the gate.
    pub fn note_applies(&mut self, instances: &[Instance]) {
        for i in instances {
            let id = &i.registration.instance;
            if self.row.cohort.contains(id)
                && i.applied.as_ref() == Some(&self.row.version)
                && self.applied.insert(id.clone())
            {
                self.snapshot.insert(id.clone(), cumulative(i));
            }
        }
    }

    pub fn take_snapshot(&mut self, instances: &[Instance]) {
        self.snapshot = instances
            .iter()
            .map(|i| (i.registration.instance.clone(), cumulative(i)))
            .collect();
    }

    pub fn status(&self) -> rampart_api::ReleaseStatus {
        let i = &self.row.intent;
        rampart_api::ReleaseStatus {
            id: self.row.id,
            environment: self.row.environment.clone(),
            version: self.row.version.clone(),
            previous: self.row.previous.clone(),
            state: state_name(i.state).into(),
            wave: i.wave,
            waves: i.plan.waves.len(),
            cohort: self.row.cohort.clone(),
            gate: self.row.gate.clone(),
            reason: self.row.reason.clone(),
            policy: i.plan.source.clone(),
            step: step_text(i),
        }
    }
}

pub fn state_name(s: ReleaseState) -> &'static str {
    match s {
        ReleaseState::Pending => "pending",
        ReleaseState::Rolling => "rolling",
        ReleaseState::Paused => "paused",
        ReleaseState::Succeeded => "succeeded",
        ReleaseState::Failed => "failed",
        ReleaseState::RolledBack => "rolled_back",
    }
}

pub fn verdict_text(v: &Verdict) -> String {
    match v {
        Verdict::Pass { detail } => format!("pass: {detail}"),
        Verdict::Fail { gate, detail } => format!("fail ({gate}): {detail}"),
        Verdict::Inconclusive { detail } => format!("inconclusive: {detail}"),
    }
}

/// The planner's decision for a release, given the fleet and Prometheus's latest answers.
pub fn decide(
    live: &Live,
    instances: &[Instance],
    queries: Vec<rampart_rollout::QueryOutcome>,
    now: u64,
) -> Vec<Action> {
    let mut observed = live.observe(instances, now);
    observed.queries = queries;
    step(&live.row.intent, &observed, now)
}

/// Whether a hold is one someone's `promote` may end: a policy pause or an inconclusive wave.
pub fn awaits_judgement(reason: &str) -> bool {
    reason.starts_with("inconclusive") || reason.starts_with("paused")
}

/// The current step in words: "wave 2 of 3: 50%, bake 10s, then a pause".
pub fn step_text(intent: &rampart_rollout::Intent) -> String {
    let Some(w) = intent.plan.waves.get(intent.wave) else {
        return format!("all {} waves done", intent.plan.waves.len());
    };
    let size = match w.target {
        rampart_rollout::WaveTarget::Instances(n) => format!("{n} instance(s)"),
        rampart_rollout::WaveTarget::Percent(p) => format!("{p}%"),
    };
    let bake =
        rampart_model::duration::format_duration(std::time::Duration::from_millis(w.bake_ms));
    let pause = if w.pause { ", then a pause" } else { "" };
    format!(
        "wave {} of {}: {size}, bake {bake}{pause}",
        intent.wave + 1,
        intent.plan.waves.len()
    )
}
