//! Rolling restarts: an environment's gateways restarted batch by batch, each batch started only
//! when the previous one is back (restarted, reporting, and not failing requests). The agent
//! protocol carries a per-instance restart generation; an agent whose generation grows drains
//! (readiness says "draining" first, so balancers move away) and restarts its gateway.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rampart_api::RestartStatus;

use crate::release::cumulative;
use crate::service::{Actor, ControlError, ControlPlane};
use crate::store::NewEvent;

/// How long a batch may take to come back before the restart stops, failed.
pub const BATCH_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a restarted batch is watched before the next one starts.
pub const SETTLE: Duration = Duration::from_secs(1);
/// A restarted batch failing more than this share of its requests stops the restart.
pub const MAX_ERROR_RATE: f64 = 0.05;

#[derive(Debug, Clone)]
pub struct RestartOp {
    pub status: RestartStatus,
    /// When the current batch was told to restart.
    issued: Option<Instant>,
    /// When every instance of the current batch was back, and their counts then.
    back: Option<(Instant, BatchCounts)>,
}

/// (requests, 5xx) per instance.
type BatchCounts = HashMap<String, (u64, u64)>;

/// Parses "20%" (of `live`, rounded up) or "2"; at least 1.
pub fn batch_size(spec: &str, live: usize) -> Result<usize, String> {
    let spec = spec.trim();
    let size = if let Some(p) = spec.strip_suffix('%') {
        let p: f64 = p
            .trim()
            .parse()
            .map_err(|_| format!("batch: {spec:?} is not a percentage"))?;
        if !(p > 0.0 && p <= 100.0) {
            return Err(format!("batch: {spec:?} must be above 0% and at most 100%"));
        }
        ((live as f64) * p / 100.0).ceil() as usize
    } else {
        spec.parse::<usize>().map_err(|_| {
            format!("batch: {spec:?} is neither a count (\"2\") nor a share (\"20%\")")
        })?
    };
    if size == 0 {
        return Err("batch: must be at least one gateway".into());
    }
    Ok(size.max(1))
}

impl ControlPlane {
    /// Starts a rolling restart of `env`'s live gateways.
    pub async fn start_restart(
        &self,
        actor: &Actor,
        env: &str,
        batch: &str,
    ) -> Result<RestartStatus, ControlError> {
        if !self.environment_names().iter().any(|e| e == env) {
            return Err(ControlError::NotFound(format!("no environment {env:?}")));
        }
        if self.release_active(env) {
            return Err(ControlError::Conflict(format!(
                "{env} has a release in progress; restart when it ends"
            )));
        }
        let mut live: Vec<String> = self
            .fleet_live(env)
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
            let mut restarts = self.restarts_lock();
            if restarts
                .get(env)
                .is_some_and(|r| r.status.state == "running")
            {
                return Err(ControlError::Conflict(format!(
                    "{env} is already restarting; `rampart fleet restart --env {env} --status` shows how far"
                )));
            }
            restarts.insert(
                env.to_owned(),
                RestartOp {
                    status: status.clone(),
                    issued: None,
                    back: None,
                },
            );
        }
        self.store()
            .append_event(&NewEvent {
                kind: "restart.started",
                subject: env,
                actor: &actor.name,
                data: serde_json::json!({ "batch_size": size, "batches": status.batches }),
            })
            .await?;
        Ok(status)
    }

    /// The running or last restart of `env` (since this control plane started).
    pub fn restart_status(&self, env: &str) -> Option<RestartStatus> {
        self.restarts_lock().get(env).map(|r| r.status.clone())
    }

    /// One step of every running restart.
    pub(crate) async fn drive_restarts(&self) -> Result<(), ControlError> {
        let envs: Vec<String> = self.restarts_lock().keys().cloned().collect();
        for env in envs {
            let Some(mut op) = self.restarts_lock().get(&env).cloned() else {
                continue;
            };
            if op.status.state != "running" {
                continue;
            }
            let event = self.restart_step(&env, &mut op);
            self.restarts_lock().insert(env.clone(), op);
            if let Some((kind, data)) = event {
                self.store()
                    .append_event(&NewEvent {
                        kind,
                        subject: &env,
                        actor: "control",
                        data,
                    })
                    .await?;
            }
        }
        Ok(())
    }

    fn restart_step(
        &self,
        env: &str,
        op: &mut RestartOp,
    ) -> Option<(&'static str, serde_json::Value)> {
        let Some(batch) = op.status.batches.get(op.status.current).cloned() else {
            op.status.state = "succeeded".into();
            return Some((
                "restart.completed",
                serde_json::json!({ "restarted": op.status.restarted }),
            ));
        };
        let Some(issued) = op.issued else {
            for i in &batch {
                self.bump_restart(i);
            }
            op.issued = Some(Instant::now());
            return Some((
                "restart.batch",
                serde_json::json!({ "batch": op.status.current, "instances": batch }),
            ));
        };
        let instances = self.fleet_all(env);
        let target = |id: &str| self.restart_generation(id);
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
                return Some(("restart.failed", serde_json::json!({ "reason": reason })));
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
            return Some(("restart.failed", serde_json::json!({ "reason": reason })));
        }
        op.status.restarted.extend(batch.iter().cloned());
        op.status.current += 1;
        op.issued = None;
        op.back = None;
        Some((
            "restart.batch_done",
            serde_json::json!({ "batch": op.status.current - 1, "instances": batch, "requests": requests, "errors": errors }),
        ))
    }
}
