//! Rolling restarts: an environment's gateways restarted batch by batch, each batch started only
//! when the previous one is back (restarted, reporting, and not failing requests). The agent
//! protocol carries a per-instance restart generation; an agent whose generation grows drains
//! (readiness says "draining" first, so balancers move away) and restarts its gateway.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rampart_api::RestartStatus;

use sqlx::Row;

use crate::release::cumulative;
use crate::service::{Actor, ControlError, ControlPlane};
use crate::store::{NewEvent, Store, StoreError, now};

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

impl RestartOp {
    /// A restart read back from the store. A batch already told to restart is watched again
    /// from now (its instances may be re-registering); one not yet told is told on the next step.
    pub fn resumed(status: RestartStatus, batch_issued: bool) -> RestartOp {
        RestartOp {
            status,
            issued: batch_issued.then(Instant::now),
            back: None,
        }
    }
}

/// One step's outcome: its event, and the instances to tell to restart.
struct Step {
    kind: &'static str,
    data: serde_json::Value,
    bump: Vec<String>,
}

impl Step {
    fn event(kind: &'static str, data: serde_json::Value) -> Step {
        Step {
            kind,
            data,
            bump: vec![],
        }
    }
}

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
            restarts.insert(env.to_owned(), RestartOp::resumed(status.clone(), false));
        }
        let event = NewEvent {
            kind: "restart.started",
            subject: env,
            actor: &actor.name,
            data: serde_json::json!({ "batch_size": size, "batches": status.batches }),
        };
        if let Err(e) = self.store().save_restart(&status, false, &[], &event).await {
            self.restarts_lock().remove(env);
            return Err(e.into());
        }
        Ok(status)
    }

    /// The running or last restart of `env`.
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
                    .store()
                    .save_restart(&op.status, op.issued.is_some(), &step.bump, &event)
                    .await;
                match saved {
                    Ok(generations) => self.set_restart_generations(&generations),
                    Err(e) => {
                        self.restarts_lock().insert(env.clone(), before);
                        return Err(e.into());
                    }
                }
            }
            self.restarts_lock().insert(env.clone(), op);
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

impl Store {
    /// Stores an environment's restart, bumps the restart generation of `bump`, and appends
    /// `event`, in one transaction; returns the bumped generations.
    pub async fn save_restart(
        &self,
        status: &RestartStatus,
        batch_issued: bool,
        bump: &[String],
        event: &NewEvent<'_>,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        let mut tx = self.write().await?;
        sqlx::query("INSERT INTO restarts (environment, status, batch_issued, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT(environment) DO UPDATE SET status = excluded.status, batch_issued = excluded.batch_issued, updated_at = excluded.updated_at")
            .bind(&status.environment)
            .bind(serde_json::to_string(status).unwrap_or_default())
            .bind(batch_issued)
            .bind(now())
            .execute(&mut *tx)
            .await?;
        let mut generations = Vec::with_capacity(bump.len());
        for instance in bump {
            let generation: i64 = sqlx::query("INSERT INTO restart_generations (instance, generation) VALUES (?, 1) ON CONFLICT(instance) DO UPDATE SET generation = generation + 1 RETURNING generation")
                .bind(instance)
                .fetch_one(&mut *tx)
                .await?
                .get(0);
            generations.push((instance.clone(), generation.max(0) as u64));
        }
        Self::append(&mut tx, event).await?;
        tx.commit().await?;
        Ok(generations)
    }

    /// Every environment's last restart, and whether its current batch was told to restart.
    pub async fn restarts(&self) -> Result<Vec<(RestartStatus, bool)>, StoreError> {
        let rows = sqlx::query("SELECT status, batch_issued FROM restarts")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                let status: String = r.get(0);
                Some((serde_json::from_str(&status).ok()?, r.get(1)))
            })
            .collect())
    }

    /// The restart generation of every instance ever told to restart.
    pub async fn restart_generations(&self) -> Result<HashMap<String, u64>, StoreError> {
        let rows = sqlx::query("SELECT instance, generation FROM restart_generations")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|r| (r.get::<String, _>(0), r.get::<i64, _>(1).max(0) as u64))
            .collect())
    }
}
