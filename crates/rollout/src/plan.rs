//! Releases in waves: which instances get the new version when, and when to stop.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::gates::{Counts, GateSettings, Verdict, judge};
use crate::probes::Probe;
use crate::queries::{Prometheus, QueryOutcome, combine};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WaveTarget {
    /// This many instances (at most all).
    Instances(u32),
    /// This share of instances, rounded up, at least one.
    Percent(u32),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Wave {
    pub target: WaveTarget,
    /// How long the wave runs, with passing gates, before the next one starts.
    pub bake_ms: u64,
    /// Once baked and passing, the wave waits for someone's `rampart rollout promote`.
    #[serde(default)]
    pub pause: bool,
}

/// What a wave held inconclusive for too long does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum InconclusiveAction {
    /// Keep holding, and raise a ticket alert so a person decides.
    Hold,
    /// Move on as if the wave had passed (never for an unanswered Prometheus query).
    Promote,
    /// Roll the release back.
    Rollback,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OnInconclusive {
    /// Counted from the wave's start.
    pub after_ms: u64,
    pub action: InconclusiveAction,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub waves: Vec<Wave>,
    pub gates: GateSettings,
    /// An instance of the cohort silent for this long fails the release.
    pub liveness_ms: u64,
    /// What a wave inconclusive for too long does; `None` holds without a deadline.
    #[serde(default)]
    pub on_inconclusive: Option<OnInconclusive>,
    /// Requests each cohort gateway sends through its own listener while it bakes.
    #[serde(default)]
    pub probes: Vec<Probe>,
    /// Queries against a Prometheus server, gating each wave beside the agents' counts.
    #[serde(default)]
    pub prometheus: Option<Prometheus>,
    /// Where the plan came from ("default", "production policy r3"), for people.
    #[serde(default)]
    pub source: String,
}

impl Plan {
    /// One instance, 10%, 50%, 100%, each baking `bake_ms`.
    pub fn standard(bake_ms: u64) -> Plan {
        let waves = [
            WaveTarget::Instances(1),
            WaveTarget::Percent(10),
            WaveTarget::Percent(50),
            WaveTarget::Percent(100),
        ]
        .into_iter()
        .map(|target| Wave {
            target,
            bake_ms,
            pause: false,
        })
        .collect();
        Plan {
            waves,
            gates: GateSettings::default(),
            liveness_ms: 5_000,
            on_inconclusive: Some(OnInconclusive {
                after_ms: 10 * 60_000,
                action: InconclusiveAction::Hold,
            }),
            probes: vec![],
            prometheus: None,
            source: "default".into(),
        }
    }

    /// Every instance at once; passes once all run the version and report, unless the error
    /// ceiling is breached — no minimum of requests, so an environment without traffic (most
    /// testing environments) still ends its release. What an environment before the last
    /// gets by default.
    pub fn at_once() -> Plan {
        Plan {
            waves: vec![Wave {
                target: WaveTarget::Percent(100),
                bake_ms: 0,
                pause: false,
            }],
            gates: GateSettings {
                min_requests: 0,
                ..GateSettings::default()
            },
            ..Plan::standard(0)
        }
    }

    /// One instance, 50%, 100%, each baking `bake_ms`, gates judging from 30 canary requests:
    /// a release over a handful of gateways that ends in seconds (drills, tests).
    pub fn short(bake_ms: u64) -> Plan {
        let mut plan = Plan::standard(bake_ms);
        plan.waves.remove(1);
        plan.gates.min_requests = 30;
        plan
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseState {
    Pending,
    Rolling,
    Paused,
    Succeeded,
    Failed,
    RolledBack,
}

/// What operators asked for, and where the release stands (stored by the caller).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Intent {
    pub version: String,
    pub previous: Option<String>,
    pub plan: Plan,
    pub state: ReleaseState,
    pub wave: usize,
    pub wave_started_ms: u64,
}

/// One instance as the control plane sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceView {
    pub id: String,
    pub applied: Option<String>,
    /// Set when the instance rejected `version` (with the error).
    pub rejected: Option<String>,
    pub last_report_ms: u64,
    /// Traffic since the current wave started.
    pub counts: Counts,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Observed {
    pub instances: Vec<InstanceView>,
    /// The latest answer to each of the plan's Prometheus queries.
    #[serde(default)]
    pub queries: Vec<QueryOutcome>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Make these instances run the release's version.
    Apply {
        instances: Vec<String>,
    },
    /// Start wave `wave` now.
    Advance {
        wave: usize,
    },
    /// The gates' verdict this step.
    Gate {
        wave: usize,
        verdict: Verdict,
    },
    /// Stay in this wave, and why.
    Hold {
        reason: String,
    },
    /// The wave stayed inconclusive past the policy's `on_inconclusive.after`; what the
    /// policy does about it follows (a hold, an advance or success, or a failure).
    Overdue {
        wave: usize,
        then: InconclusiveAction,
        detail: String,
    },
    /// The release failed: put these instances back on the previous version.
    Fail {
        reason: String,
        rollback: Vec<String>,
    },
    Succeed,
}

/// How many instances wave `target` covers out of `n`.
pub fn cohort_size(target: WaveTarget, n: usize) -> usize {
    match target {
        WaveTarget::Instances(k) => (k as usize).min(n),
        WaveTarget::Percent(p) => (n * p as usize).div_ceil(100).clamp(1, n),
    }
}

/// The next actions. Pure: the same inputs give the same answer.
pub fn step(intent: &Intent, observed: &Observed, now_ms: u64) -> Vec<Action> {
    match intent.state {
        ReleaseState::Pending => return vec![Action::Advance { wave: 0 }],
        ReleaseState::Rolling => {}
        _ => return vec![],
    }
    let Some(wave) = intent.plan.waves.get(intent.wave) else {
        return vec![Action::Succeed];
    };
    let mut all: Vec<&InstanceView> = observed.instances.iter().collect();
    all.sort_by(|a, b| a.id.cmp(&b.id));
    if all.is_empty() {
        return vec![Action::Hold {
            reason: "no instances in the environment".into(),
        }];
    }
    let k = cohort_size(wave.target, all.len());
    let cohort = &all[..k];
    let on_new = |i: &InstanceView| i.applied.as_deref() == Some(intent.version.as_str());
    let rollback: Vec<String> = all
        .iter()
        .filter(|i| on_new(i))
        .map(|i| i.id.clone())
        .collect();

    if let Some(i) = all.iter().find(|i| i.rejected.is_some()) {
        let reason = format!(
            "{} rejected the version: {}",
            i.id,
            i.rejected.as_deref().unwrap_or_default()
        );
        return vec![Action::Fail { reason, rollback }];
    }
    if let Some(i) = cohort
        .iter()
        .find(|i| now_ms.saturating_sub(i.last_report_ms) > intent.plan.liveness_ms)
    {
        let reason = format!(
            "{} stopped reporting ({} ms ago)",
            i.id,
            now_ms.saturating_sub(i.last_report_ms)
        );
        return vec![Action::Fail { reason, rollback }];
    }
    let mut actions = Vec::new();
    let missing: Vec<String> = cohort
        .iter()
        .filter(|i| !on_new(i))
        .map(|i| i.id.clone())
        .collect();
    if !missing.is_empty() {
        actions.push(Action::Apply {
            instances: missing.clone(),
        });
    }
    let canary = all
        .iter()
        .filter(|i| on_new(i))
        .fold(Counts::default(), |a, i| a.merge(i.counts));
    let baseline = all
        .iter()
        .filter(|i| intent.previous.is_some() && i.applied == intent.previous)
        .fold(Counts::default(), |a, i| a.merge(i.counts));
    let agents = judge(canary, baseline, &intent.plan.gates);
    // Prometheus is asked about the wave once its whole cohort runs the version.
    let (verdict, query_holds) = if missing.is_empty() {
        combine(
            agents,
            intent.plan.prometheus.as_ref(),
            &observed.queries,
            intent.wave_started_ms,
        )
    } else {
        (agents, false)
    };
    actions.push(Action::Gate {
        wave: intent.wave,
        verdict: verdict.clone(),
    });
    if let Verdict::Fail { gate, detail } = &verdict {
        actions.push(Action::Fail {
            reason: format!("gate {gate} failed: {detail}"),
            rollback,
        });
        return actions;
    }
    if !missing.is_empty() {
        actions.push(Action::Hold {
            reason: format!("waiting for {} instance(s) to apply", missing.len()),
        });
        return actions;
    }
    let baked = now_ms.saturating_sub(intent.wave_started_ms);
    let next = if intent.wave + 1 == intent.plan.waves.len() {
        Action::Succeed
    } else {
        Action::Advance {
            wave: intent.wave + 1,
        }
    };
    match verdict {
        Verdict::Inconclusive { detail } => match intent.plan.on_inconclusive {
            Some(o) if baked >= o.after_ms.max(wave.bake_ms) => {
                // An unanswered query is never a pass, not even by policy.
                let action = match o.action {
                    InconclusiveAction::Promote if query_holds => InconclusiveAction::Hold,
                    a => a,
                };
                let overdue = format!("inconclusive for {} s", baked / 1000);
                actions.push(Action::Overdue {
                    wave: intent.wave,
                    then: action,
                    detail: detail.clone(),
                });
                actions.push(match action {
                    InconclusiveAction::Hold => Action::Hold {
                        reason: format!(
                            "{overdue}, waiting for a person (on_inconclusive: hold): {detail}"
                        ),
                    },
                    InconclusiveAction::Promote => next,
                    InconclusiveAction::Rollback => Action::Fail {
                        reason: format!("{overdue} (on_inconclusive: rollback): {detail}"),
                        rollback,
                    },
                });
            }
            _ => actions.push(Action::Hold {
                reason: format!("inconclusive: {detail}"),
            }),
        },
        Verdict::Pass { .. } if baked < wave.bake_ms => actions.push(Action::Hold {
            reason: format!("baking: {} of {} s", baked / 1000, wave.bake_ms / 1000),
        }),
        Verdict::Pass { .. } if wave.pause => actions.push(Action::Hold {
            reason: format!(
                "paused by policy after wave {}: waiting for `rampart rollout promote`",
                intent.wave + 1
            ),
        }),
        Verdict::Pass { .. } => actions.push(next),
        Verdict::Fail { .. } => {}
    }
    actions
}
