//! Releases in waves as the reconciler drives them: which version each instance should run,
//! how one starts, each tick's planner step, pause/resume/abort, and how a release ends.

use super::*;

/// The active releases, by environment.
pub struct Releases {
    store: Store,
    agents: Arc<crate::agents::Agents>,
    live: std::sync::Mutex<HashMap<String, Live>>,
    /// The plan a new release follows: its environment's policy.
    policies: Arc<super::Policies>,
    /// Prometheus's answers to the queries of releases that have them.
    asker: Arc<crate::prometheus::Asker>,
    /// Wakes the reconciler before its next tick: a release started, or someone moved one on.
    wake: tokio::sync::Notify,
}

impl super::long_poll::DesiredSource for Releases {
    fn instance_desired(&self, env: &str, instance: &str) -> Option<VersionId> {
        Releases::instance_desired(self, env, instance)
    }

    fn instance_probes(&self, env: &str, instance: &str) -> Vec<rampart_rollout::Probe> {
        Releases::instance_probes(self, env, instance)
    }
}

/// A release the control plane rolled back on its own (a gate failed): it pages.
pub struct Ended {
    pub release: crate::store::ReleaseRow,
    pub reason: String,
}

impl Releases {
    /// The releases the store holds as active go on where they were.
    pub async fn load(
        store: Store,
        agents: Arc<crate::agents::Agents>,
        policies: Arc<super::Policies>,
        asker: Arc<crate::prometheus::Asker>,
    ) -> Result<Releases, ControlError> {
        let mut live = HashMap::new();
        for row in store.releases().await? {
            let active = matches!(
                row.intent.state,
                ReleaseState::Pending | ReleaseState::Rolling | ReleaseState::Paused
            );
            if active && !live.contains_key(&row.environment) {
                tracing::info!(release = row.id, env = %row.environment, "resuming release");
                live.insert(row.environment.clone(), Live::new(row));
            }
        }
        Ok(Releases {
            store,
            agents,
            live: std::sync::Mutex::new(live),
            policies,
            asker,
            wake: tokio::sync::Notify::new(),
        })
    }

    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<String, Live>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `env` has a release in flight.
    pub fn active(&self, env: &str) -> bool {
        self.live().contains_key(env)
    }

    /// What one instance should run: its release cohort's version, or the environment's.
    pub fn instance_desired(&self, env: &str, instance: &str) -> Option<VersionId> {
        if let Some(live) = self.live().get(env) {
            return Some(super::long_poll::desired_under(&live.row, instance));
        }
        self.agents.desired(env)
    }

    /// The probes one instance sends: its release's, while it is in the cohort of a rolling
    /// release; none otherwise.
    pub fn instance_probes(&self, env: &str, instance: &str) -> Vec<rampart_rollout::Probe> {
        self.live()
            .get(env)
            .map(|live| super::long_poll::probes_under(&live.row, instance))
            .unwrap_or_default()
    }

    pub fn statuses(&self) -> Vec<rampart_api::ReleaseStatus> {
        self.live().values().map(Live::status).collect()
    }

    /// All releases, newest first: active ones with their live gate and reason.
    pub async fn list(&self) -> Result<Vec<rampart_api::ReleaseStatus>, ControlError> {
        let live: HashMap<i64, rampart_api::ReleaseStatus> =
            self.statuses().into_iter().map(|s| (s.id, s)).collect();
        Ok(self
            .store
            .releases()
            .await?
            .into_iter()
            .map(|row| {
                live.get(&row.id)
                    .cloned()
                    .unwrap_or_else(|| Live::new(row).status())
            })
            .collect())
    }

    /// A release and its events, for its picture.
    pub async fn story(&self, id: i64) -> Result<crate::rollout_picture::Story, ControlError> {
        let release = self
            .store
            .release(id)
            .await?
            .ok_or_else(|| ControlError::NotFound(format!("no release {id}")))?;
        let events = self.store.release_events(id, &release.environment).await?;
        Ok(crate::rollout_picture::Story::new(release, events))
    }

    /// Replacing a running version goes in waves under the environment's rollout policy; a
    /// first version (nothing to compare with) or a control plane with releases off sets it
    /// everywhere.
    pub(crate) async fn start_or_set(
        &self,
        env: &str,
        current: Option<VersionId>,
        version: &VersionId,
        actor: &str,
        kind: &str,
        mut data: serde_json::Value,
    ) -> Result<(), ControlError> {
        let plan = match &current {
            Some(previous) if previous != version => self.policies.plan_for(env).await?,
            _ => None,
        };
        if let (Some(plan), Some(previous)) = (plan, current) {
            if let Some(running) = self.live().get(env) {
                return Err(ControlError::Conflict(format!(
                    "release {} is already running in {env}; wait for it, or abort it (`rampart rollout abort {}`)",
                    running.row.id, running.row.id
                )));
            }
            let intent = rampart_rollout::Intent {
                version: version.to_string(),
                previous: Some(previous.to_string()),
                plan,
                state: ReleaseState::Pending,
                wave: 0,
                wave_started_ms: crate::release::now_ms(),
            };
            let id = self
                .store
                .insert_release(env, &intent, previous.as_str(), actor)
                .await?;
            data["release"] = serde_json::json!(id);
            data["policy"] = serde_json::json!(intent.plan.source);
            self.store
                .append_event(&NewEvent {
                    kind,
                    subject: env,
                    actor,
                    data,
                })
                .await?;
            let row = crate::store::ReleaseRow {
                id,
                environment: env.to_owned(),
                version: version.clone(),
                previous,
                intent,
                cohort: vec![],
                gate: None,
                reason: None,
                created_at: crate::store::now(),
            };
            self.live().insert(env.to_owned(), Live::new(row));
            // Its first wave goes out now, not at the reconciler's next tick.
            self.wake.notify_one();
            tracing::info!(
                env,
                release = id,
                version = version.short(),
                actor,
                "release started"
            );
            return Ok(());
        }
        self.store
            .set_desired(
                env,
                version.as_str(),
                &NewEvent {
                    kind,
                    subject: env,
                    actor,
                    data,
                },
            )
            .await?;
        self.agents.publish(env, version);
        tracing::info!(
            env,
            version = version.short(),
            actor,
            kind,
            "desired version set"
        );
        Ok(())
    }

    /// Resolves when a release needs a reconciler pass before the next tick.
    pub async fn woken(&self) {
        self.wake.notified().await
    }

    /// A rollback overrides the release in flight in `env`, whatever its gates say.
    pub(crate) async fn stop_for_rollback(
        &self,
        env: &str,
        actor: &str,
    ) -> Result<(), ControlError> {
        let running = self.live().remove(env);
        if let Some(mut live) = running {
            live.row.intent.state = ReleaseState::RolledBack;
            let data = serde_json::json!({ "release": live.row.id, "reason": "manual rollback" });
            let event = NewEvent {
                kind: "release.rolled_back",
                subject: env,
                actor,
                data,
            };
            self.store.update_release(&live.row, None, &[event]).await?;
            self.agents.cohorts_changed();
        }
        Ok(())
    }

    /// Pause, resume or abort an active release; or, by someone's judgement (with a reason),
    /// `promote` it past a pause or an inconclusive hold, or `skip` the wave it is in. A promote
    /// or skip past the last wave ends the release as succeeded.
    pub async fn action(
        &self,
        actor: &Actor,
        id: i64,
        action: &str,
        reason: &str,
    ) -> Result<rampart_api::ReleaseStatus, ControlError> {
        let mut live = self
            .live()
            .values()
            .find(|l| l.row.id == id)
            .cloned()
            .ok_or_else(|| ControlError::NotFound(format!("no active release {id}")))?;
        let mut data = serde_json::json!({ "release": id });
        match action {
            "pause" => live.row.intent.state = ReleaseState::Paused,
            "resume" => live.row.intent.state = ReleaseState::Rolling,
            "abort" => {
                self.end(
                    &mut live,
                    ReleaseState::RolledBack,
                    &format!("aborted by {}", actor.name),
                    &actor.name,
                )
                .await?;
                return Ok(live.status());
            }
            "promote" | "skip" => {
                if reason.trim().is_empty() {
                    return Err(ControlError::Invalid(format!(
                        "reason: say why you {action} release {id} (it is recorded)"
                    )));
                }
                let held = live.row.intent.state == ReleaseState::Paused
                    || live
                        .row
                        .reason
                        .as_deref()
                        .is_some_and(crate::release::awaits_judgement);
                if action == "promote" && !held {
                    return Err(ControlError::Conflict(format!(
                        "release {id} is neither paused nor held inconclusive ({}); `skip` moves past a wave regardless",
                        live.row.reason.as_deref().unwrap_or("running")
                    )));
                }
                let from = live.row.intent.wave;
                data["from_wave"] = serde_json::json!(from);
                data["reason"] = serde_json::json!(reason);
                let kind = if action == "promote" {
                    "release.promoted"
                } else {
                    "release.skipped"
                };
                if from + 1 >= live.row.intent.plan.waves.len() {
                    self.store
                        .append_event(&NewEvent {
                            kind,
                            subject: &live.row.environment,
                            actor: &actor.name,
                            data,
                        })
                        .await?;
                    let why = format!("{action}d past the last wave by {}: {reason}", actor.name);
                    self.end(&mut live, ReleaseState::Succeeded, &why, &actor.name)
                        .await?;
                    return Ok(live.status());
                }
                live.row.intent.state = ReleaseState::Rolling;
                live.row.intent.wave = from + 1;
                live.row.intent.wave_started_ms = crate::release::now_ms();
                live.row.reason = Some(format!("{action}d by {}", actor.name));
                live.take_snapshot(&self.agents.fleet.all(&live.row.environment));
                data["wave"] = serde_json::json!(from + 1);
                let wave = serde_json::json!({ "release": id, "wave": from + 1 });
                let events = [
                    NewEvent {
                        kind,
                        subject: &live.row.environment,
                        actor: &actor.name,
                        data,
                    },
                    NewEvent {
                        kind: "release.wave",
                        subject: &live.row.environment,
                        actor: &actor.name,
                        data: wave,
                    },
                ];
                self.store.update_release(&live.row, None, &events).await?;
                tracing::info!(release = id, action, actor = %actor.name, reason, "release moved on by judgement");
                let status = live.status();
                self.live().insert(live.row.environment.clone(), live);
                // The next wave's cohort goes out now, not at the next tick.
                self.wake.notify_one();
                return Ok(status);
            }
            other => {
                return Err(ControlError::Invalid(format!(
                    "unknown release action {other:?}: use pause, resume, abort, promote or skip"
                )));
            }
        }
        let kind = format!("release.{action}d");
        self.store
            .update_release(
                &live.row,
                None,
                &[NewEvent {
                    kind: &kind,
                    subject: &live.row.environment,
                    actor: &actor.name,
                    data,
                }],
            )
            .await?;
        let status = live.status();
        self.live().insert(live.row.environment.clone(), live);
        Ok(status)
    }

    /// Ends a release: rolled back (everyone on the previous version) or succeeded (everyone on
    /// the new one). The environment's desired version changes in the same transaction.
    async fn end(
        &self,
        live: &mut Live,
        state: ReleaseState,
        reason: &str,
        actor: &str,
    ) -> Result<(), ControlError> {
        live.row.intent.state = state;
        live.row.reason = Some(reason.to_owned());
        let (target, kind) = match state {
            ReleaseState::Succeeded => (live.row.version.clone(), "release.succeeded_all_waves"),
            _ => (live.row.previous.clone(), "release.rolled_back"),
        };
        let data = serde_json::json!({ "release": live.row.id, "version": live.row.version, "to": target, "reason": reason, "gate": live.row.gate });
        let event = NewEvent {
            kind,
            subject: &live.row.environment,
            actor,
            data,
        };
        self.store
            .update_release(&live.row, Some(target.as_str()), &[event])
            .await?;
        self.live().remove(&live.row.environment);
        self.asker.forget(live.row.id);
        self.agents.publish(&live.row.environment, &target);
        self.agents.cohorts_changed();
        match state {
            ReleaseState::Succeeded => {
                tracing::info!(release = live.row.id, env = %live.row.environment, "release succeeded")
            }
            _ => {
                tracing::warn!(release = live.row.id, env = %live.row.environment, %reason, "release rolled back")
            }
        }
        Ok(())
    }

    /// Prometheus's latest answers for a rolling release whose policy has queries, asking again
    /// in the background when the interval has passed.
    fn ask_prometheus(&self, live: &Live, now: u64) -> Vec<rampart_rollout::QueryOutcome> {
        let Some(p) = &live.row.intent.plan.prometheus else {
            return vec![];
        };
        if live.row.intent.state == ReleaseState::Rolling {
            let vars = crate::prometheus::Vars {
                environment: &live.row.environment,
                version: live.row.version.as_str(),
                previous: live.row.previous.as_str(),
            };
            self.asker.ask_if_due(live.row.id, p, vars, now);
        }
        self.asker.answers(live.row.id)
    }

    /// One planner step of every active release; returns the releases it rolled back.
    pub async fn reconcile(&self) -> Result<Vec<Ended>, ControlError> {
        let mut rolled_back = vec![];
        let envs: Vec<String> = self.live().keys().cloned().collect();
        for env in envs {
            let Some(mut live) = self.live().get(&env).cloned() else {
                continue;
            };
            let instances = self.agents.fleet.all(&env);
            let now = crate::release::now_ms();
            if live.snapshot.is_empty() {
                live.take_snapshot(&instances);
            }
            live.note_applies(&instances);
            let queries = self.ask_prometheus(&live, now);
            let mut changed = false;
            // Every event of this pass: a gate verdict and the wave it lets start both count.
            let mut events: Vec<(String, serde_json::Value)> = Vec::new();
            let mut ended: Option<(ReleaseState, String)> = None;
            let mut succeed_why = "every wave passed its gates";
            // Long-polls are woken once the grown cohort is in place for them to read.
            let mut cohort_grew = false;
            for action in crate::release::decide(&live, &instances, queries, now) {
                match action {
                    Action::Advance { wave } => {
                        // The wave's cohort is chosen by the next pass: run it at once.
                        self.wake.notify_one();
                        live.row.intent.state = ReleaseState::Rolling;
                        live.row.intent.wave = wave;
                        live.row.intent.wave_started_ms = now;
                        live.take_snapshot(&instances);
                        changed = true;
                        events.push((
                            "release.wave".into(),
                            serde_json::json!({ "release": live.row.id, "wave": wave }),
                        ));
                    }
                    Action::Apply { instances: add } => {
                        for i in add {
                            if !live.row.cohort.contains(&i) {
                                live.row.cohort.push(i);
                                cohort_grew = true;
                            }
                        }
                        changed |= cohort_grew;
                    }
                    Action::Gate { wave, verdict } => {
                        let text = crate::release::verdict_text(&verdict);
                        let kind_changed = live.row.gate.as_deref().map(|g| g.split(':').next())
                            != Some(text.split(':').next());
                        if kind_changed {
                            events.push((
                                "gate.verdict".into(),
                                serde_json::json!({ "release": live.row.id, "wave": wave, "verdict": verdict }),
                            ));
                        }
                        live.row.gate = Some(text);
                    }
                    Action::Hold { reason } => live.row.reason = Some(reason),
                    Action::Overdue { wave, then, detail } => {
                        if then == rampart_rollout::InconclusiveAction::Promote {
                            succeed_why = "the last wave was promoted by policy (on_inconclusive)";
                        }
                        if live.overdue_wave != Some(wave) {
                            live.overdue_wave = Some(wave);
                            events.push((
                                "release.overdue".into(),
                                serde_json::json!({ "release": live.row.id, "wave": wave, "then": then, "detail": detail }),
                            ));
                        }
                    }
                    Action::Fail { reason, .. } => ended = Some((ReleaseState::RolledBack, reason)),
                    Action::Succeed => ended = Some((ReleaseState::Succeeded, succeed_why.into())),
                }
            }
            if let Some((state, reason)) = ended {
                for (kind, data) in events {
                    self.store
                        .append_event(&NewEvent {
                            kind: &kind,
                            subject: &env,
                            actor: "control",
                            data,
                        })
                        .await?;
                }
                self.end(&mut live, state, &reason, "control").await?;
                if state == ReleaseState::RolledBack {
                    rolled_back.push(Ended {
                        release: live.row,
                        reason,
                    });
                }
                continue;
            }
            if changed || !events.is_empty() {
                let events: Vec<NewEvent> = events
                    .iter()
                    .map(|(kind, data)| NewEvent {
                        kind,
                        subject: &env,
                        actor: "control",
                        data: data.clone(),
                    })
                    .collect();
                self.store.update_release(&live.row, None, &events).await?;
            }
            if self.live().contains_key(&env) {
                self.live().insert(env.clone(), live);
                if cohort_grew {
                    self.agents.cohorts_changed();
                }
            }
        }
        Ok(rolled_back)
    }
}
