//! Rolling restarts as the control plane drives them: started by an operator, advanced each
//! tick (a batch told through the agent protocol, watched until it is back), stored at each step.

use super::*;
use std::time::Instant;

use rampart_api::RestartStatus;

use crate::release::cumulative;
use crate::restart::{BATCH_TIMEOUT, MAX_ERROR_RATE, RestartOp, SETTLE, Step, batch_size};

/// Rolling restarts by environment: running, or the last one's outcome.
pub struct Restarts {
    store: Store,
    agents: Arc<crate::agents::Agents>,
    releases: Arc<Releases>,
    environments: Arc<[String]>,
    ops: std::sync::Mutex<HashMap<String, RestartOp>>,
}

impl Restarts {
    /// Rolling restarts go on where they were (their generations are stored too).
    pub async fn load(
        store: Store,
        agents: Arc<crate::agents::Agents>,
        releases: Arc<Releases>,
        environments: Arc<[String]>,
    ) -> Result<Restarts, ControlError> {
        let ops = store
            .restarts()
            .await?
            .into_iter()
            .map(|(status, issued)| {
                if status.state == "running" {
                    tracing::info!(env = %status.environment, batch = status.current, "resuming rolling restart");
                }
                (
                    status.environment.clone(),
                    RestartOp::resumed(status, issued),
                )
            })
            .collect();
        Ok(Restarts {
            store,
            agents,
            releases,
            environments,
            ops: std::sync::Mutex::new(ops),
        })
    }

    fn ops(&self) -> std::sync::MutexGuard<'_, HashMap<String, RestartOp>> {
        self.ops.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a rolling restart of `env`'s live gateways.
    pub async fn start(
        &self,
        actor: &Actor,
        env: &str,
        batch: &str,
    ) -> Result<RestartStatus, ControlError> {
        if !self.environments.iter().any(|e| e == env) {
            return Err(ControlError::NotFound(format!("no environment {env:?}")));
        }
        if self.releases.active(env) {
            return Err(ControlError::Conflict(format!(
                "{env} has a release in progress; restart when it ends"
            )));
        }
        let mut live: Vec<String> = self
            .agents
            .fleet
            .live(env)
            .into_iter()
            .map(|i| i.registration.instance)
            .collect();
        if live.is_empty() {
            return Err(ControlError::Conflict(format!(
                "{env} has no live gateway to restart"
            )));
        }
        live.sort();
        let size = batch_size(batch, live.len()).map_err(ControlError::Invalid)?;
        let status = RestartStatus {
            environment: env.to_owned(),
            state: "running".into(),
            batch_size: size,
            batches: live.chunks(size).map(<[String]>::to_vec).collect(),
            current: 0,
            restarted: vec![],
            reason: None,
        };
        {
            let mut restarts = self.ops();
            if restarts
                .get(env)
                .is_some_and(|r| r.status.state == "running")
            {
                return Err(ControlError::Conflict(format!(
                    "{env} is already restarting; `rampart fleet restart --env {env} --status` shows how far"
                )));
            }
            restarts.insert(env.to_owned(), RestartOp::resumed(status.clone(), false));
        }
        let event = NewEvent {
            kind: "restart.started",
            subject: env,
            actor: &actor.name,
            data: serde_json::json!({ "batch_size": size, "batches": status.batches }),
        };
        if let Err(e) = self.store.save_restart(&status, false, &[], &event).await {
            self.ops().remove(env);
            return Err(e.into());
        }
        Ok(status)
    }

    /// The running or last restart of `env`.
    pub fn status(&self, env: &str) -> Option<RestartStatus> {
        self.ops().get(env).map(|r| r.status.clone())
    }

    /// One step of every running restart.
    pub(crate) async fn drive(&self) -> Result<(), ControlError> {
        let envs: Vec<String> = self.ops().keys().cloned().collect();
        for env in envs {
            let Some(mut op) = self.ops().get(&env).cloned() else {
                continue;
            };
            if op.status.state != "running" {
                continue;
            }
            // A step that changes the restart is stored (with its event and the generations it
            // bumps, in one transaction) before it takes effect; if storing fails, the step is
            // taken again next tick.
            let before = op.clone();
            if let Some(step) = self.restart_step(&env, &mut op) {
                let event = NewEvent {
                    kind: step.kind,
                    subject: &env,
                    actor: "control",
                    data: step.data,
                };
                let saved = self
                    .store
                    .save_restart(&op.status, op.issued.is_some(), &step.bump, &event)
                    .await;
                match saved {
                    Ok(generations) => self.agents.set_restart_generations(&generations),
                    Err(e) => {
                        self.ops().insert(env.clone(), before);
                        return Err(e.into());
                    }
                }
            }
            self.ops().insert(env.clone(), op);
        }
        Ok(())
    }

    fn restart_step(&self, env: &str, op: &mut RestartOp) -> Option<Step> {
        let Some(batch) = op.status.batches.get(op.status.current).cloned() else {
            op.status.state = "succeeded".into();
            return Some(Step::event(
                "restart.completed",
                serde_json::json!({ "restarted": op.status.restarted }),
            ));
        };
        let Some(issued) = op.issued else {
            op.issued = Some(Instant::now());
            return Some(Step {
                kind: "restart.batch",
                data: serde_json::json!({ "batch": op.status.current, "instances": batch }),
                bump: batch,
            });
        };
        let instances = self.agents.fleet.all(env);
        let target = |id: &str| self.agents.restart_generation(id);
        let fresh = |i: &crate::fleet::Instance| i.last_seen.elapsed() < Duration::from_secs(3);
        let members: Vec<&crate::fleet::Instance> = instances
            .iter()
            .filter(|i| batch.contains(&i.registration.instance))
            .collect();
        let all_back = members.len() == batch.len()
            && members
                .iter()
                .all(|i| i.restarts >= target(&i.registration.instance) && fresh(i));
        if !all_back {
            if issued.elapsed() > BATCH_TIMEOUT {
                op.status.state = "failed".into();
                let reason = format!(
                    "batch {} ({}) not back within {}s",
                    op.status.current,
                    batch.join(", "),
                    BATCH_TIMEOUT.as_secs()
                );
                op.status.reason = Some(reason.clone());
                return Some(Step::event(
                    "restart.failed",
                    serde_json::json!({ "reason": reason }),
                ));
            }
            return None;
        }
        let counts = |i: &crate::fleet::Instance| {
            let c = cumulative(i);
            (c.requests, c.errors)
        };
        let Some((back_at, base)) = &op.back else {
            op.back = Some((
                Instant::now(),
                members
                    .iter()
                    .map(|i| (i.registration.instance.clone(), counts(i)))
                    .collect(),
            ));
            return None;
        };
        if back_at.elapsed() < SETTLE {
            return None;
        }
        let (requests, errors) = members.iter().fold((0, 0), |(r, e), i| {
            let (r0, e0) = base
                .get(&i.registration.instance)
                .copied()
                .unwrap_or_default();
            let (r1, e1) = counts(i);
            (r + r1.saturating_sub(r0), e + e1.saturating_sub(e0))
        });
        if requests > 0 && errors as f64 / requests as f64 > MAX_ERROR_RATE {
            op.status.state = "failed".into();
            let reason = format!(
                "batch {} failed {errors} of {requests} requests after restarting",
                op.status.current
            );
            op.status.reason = Some(reason.clone());
            return Some(Step::event(
                "restart.failed",
                serde_json::json!({ "reason": reason }),
            ));
        }
        op.status.restarted.extend(batch.iter().cloned());
        op.status.current += 1;
        op.issued = None;
        op.back = None;
        Some(Step::event(
            "restart.batch_done",
            serde_json::json!({ "batch": op.status.current - 1, "instances": batch, "requests": requests, "errors": errors }),
        ))
    }
}
