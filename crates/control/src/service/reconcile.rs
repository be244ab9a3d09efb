//! Releases in waves as the reconciler drives them: which version each instance should run,
//! each tick's planner step, pause/resume/abort, and how a release ends.

use super::*;

impl ControlPlane {
    pub(super) fn live(&self) -> std::sync::MutexGuard<'_, HashMap<String, Live>> {
        self.releases.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What one instance should run: its release cohort's version, or the environment's.
    pub(super) fn instance_desired(&self, env: &str, instance: &str) -> Option<VersionId> {
        if let Some(live) = self.live().get(env) {
            let v = if live.row.cohort.iter().any(|i| i == instance) {
                &live.row.version
            } else {
                &live.row.previous
            };
            return Some(v.clone());
        }
        self.agents.desired(env)
    }

    pub fn release_statuses(&self) -> Vec<rampart_api::ReleaseStatus> {
        self.live().values().map(Live::status).collect()
    }

    /// All releases, newest first: active ones with their live gate and reason.
    pub async fn releases(&self) -> Result<Vec<rampart_api::ReleaseStatus>, ControlError> {
        let live: HashMap<i64, rampart_api::ReleaseStatus> = self
            .release_statuses()
            .into_iter()
            .map(|s| (s.id, s))
            .collect();
        Ok(self
            .store
            .releases()
            .await?
            .into_iter()
            .map(|row| {
                live.get(&row.id).cloned().unwrap_or_else(|| {
                    Live {
                        row,
                        snapshot: HashMap::new(),
                        applied: Default::default(),
                    }
                    .status()
                })
            })
            .collect())
    }

    /// Pause, resume or abort an active release.
    pub async fn release_action(
        &self,
        actor: &Actor,
        id: i64,
        action: &str,
    ) -> Result<rampart_api::ReleaseStatus, ControlError> {
        let mut live = self
            .live()
            .values()
            .find(|l| l.row.id == id)
            .cloned()
            .ok_or_else(|| ControlError::NotFound(format!("no active release {id}")))?;
        match action {
            "pause" => live.row.intent.state = ReleaseState::Paused,
            "resume" => live.row.intent.state = ReleaseState::Rolling,
            "abort" => {
                self.end_release(
                    &mut live,
                    ReleaseState::RolledBack,
                    &format!("aborted by {}", actor.name),
                    &actor.name,
                )
                .await?;
                return Ok(live.status());
            }
            other => {
                return Err(ControlError::Invalid(format!(
                    "unknown release action {other:?}: use pause, resume or abort"
                )));
            }
        }
        let kind = format!("release.{action}d");
        let data = serde_json::json!({ "release": id });
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
    async fn end_release(
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
        self.publish(&live.row.environment, &target);
        self.agents.cohorts_changed();
        if state == ReleaseState::RolledBack && actor == "control" {
            self.automatic_rollback_alerts(&live.row, reason).await?;
        }
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

    /// One reconciler pass over every active release.
    pub async fn reconcile(&self) -> Result<(), ControlError> {
        self.drive_restarts().await?;
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
            let mut changed = false;
            // Every event of this pass: a gate verdict and the wave it lets start both count.
            let mut events: Vec<(String, serde_json::Value)> = Vec::new();
            let mut ended: Option<(ReleaseState, String)> = None;
            for action in crate::release::decide(&live, &instances, now) {
                match action {
                    Action::Advance { wave } => {
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
                            }
                        }
                        changed = true;
                        self.agents.cohorts_changed();
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
                    Action::Fail { reason, .. } => ended = Some((ReleaseState::RolledBack, reason)),
                    Action::Succeed => {
                        ended = Some((
                            ReleaseState::Succeeded,
                            "every wave passed its gates".into(),
                        ))
                    }
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
                self.end_release(&mut live, state, &reason, "control")
                    .await?;
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
            }
        }
        Ok(())
    }
}
