//! The control plane's rules: push validates and stores immutable versions; deploy enforces
//! the pipeline; rollback is pre-authorised; reports mark releases that completed.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use rampart_api::{
    Desired, EnvironmentStatus, PushResponse, RegisterRequest, RegisterResponse, Report, VersionId,
    VersionInfo,
};
use tokio::sync::watch;

use crate::fleet::Fleet;
use crate::release::Live;
use crate::store::{NewEvent, Store, StoreError};
use crate::tokens::Role;
use rampart_rollout::{Action, ReleaseState};

/// How long an agent's desired-version poll is held open.
pub const POLL_WAIT: Duration = Duration::from_secs(25);
pub const REPORT_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    /// Refused by a rule (pipeline order); says which step is missing.
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Forbidden(String),
    /// A high-risk change to the last environment waits for a second person.
    #[error("needs a second person's approval: it changes {sections}; an approver (not {requested_by}) can run `rampart approve {id}`", sections = .0.sections.join(", "), requested_by = .0.requested_by, id = .0.id)]
    ApprovalRequired(rampart_api::Approval),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub struct ControlPlane {
    store: Store,
    fleet: Fleet,
    /// Desired version per environment, watched by long-polling agents.
    desired: HashMap<String, watch::Sender<Option<VersionId>>>,
    /// Each environment's place in the pipeline.
    position: HashMap<String, usize>,
    /// Last-known-good per environment, mirrored from the store to skip redundant writes.
    lkg: std::sync::Mutex<HashMap<String, Option<VersionId>>>,
    /// Active releases by environment.
    releases: std::sync::Mutex<HashMap<String, crate::release::Live>>,
    /// Bumped whenever a release's cohort changes, waking long-polls.
    cohort_changes: watch::Sender<u64>,
    /// The plan new releases follow; `None` deploys to every instance at once.
    plan: Option<rampart_rollout::Plan>,
    /// How often the reconciler evaluates releases.
    tick: Duration,
    /// SLIs, alerting and incident settings and state.
    pub(crate) ops: crate::alerting::Ops,
    /// Rolling restarts by environment (memory: a control-plane restart ends them).
    restarts: std::sync::Mutex<HashMap<String, crate::restart::RestartOp>>,
    /// Restart generation per instance, handed to agents with their desired version.
    restart_gen: std::sync::Mutex<HashMap<String, u64>>,
}

/// Who is asking.
#[derive(Debug, Clone)]
pub struct Actor {
    pub name: String,
    pub role: Role,
}

impl ControlPlane {
    /// Opens the store in `data` and creates the pipeline's environments, in order.
    pub async fn open(data: &Path, environments: &[String]) -> Result<ControlPlane, ControlError> {
        if environments.is_empty() {
            return Err(ControlError::Invalid(
                "at least one environment is required".into(),
            ));
        }
        let store = Store::open(data).await?;
        store.ensure_environments(environments).await?;
        let store_for_ops = store.clone();
        let mut desired = HashMap::new();
        let mut lkg = HashMap::new();
        let mut position = HashMap::new();
        for env in store.environments().await? {
            position.insert(env.name.clone(), env.position as usize);
            desired.insert(env.name.clone(), watch::channel(env.desired.clone()).0);
            lkg.insert(env.name.clone(), env.last_known_good.clone());
        }
        let mut releases = HashMap::new();
        for row in store.releases().await? {
            let active = matches!(
                row.intent.state,
                ReleaseState::Pending | ReleaseState::Rolling | ReleaseState::Paused
            );
            if active && !releases.contains_key(&row.environment) {
                tracing::info!(release = row.id, env = %row.environment, "resuming release");
                releases.insert(
                    row.environment.clone(),
                    Live {
                        row,
                        snapshot: HashMap::new(),
                        applied: Default::default(),
                    },
                );
            }
        }
        // Rolling restarts go on where they were (their generations are stored too).
        let restarts = store
            .restarts()
            .await?
            .into_iter()
            .map(|(status, issued)| {
                if status.state == "running" {
                    tracing::info!(env = %status.environment, batch = status.current, "resuming rolling restart");
                }
                (
                    status.environment.clone(),
                    crate::restart::RestartOp::resumed(status, issued),
                )
            })
            .collect();
        let restart_gen = store.restart_generations().await?;
        Ok(ControlPlane {
            store,
            fleet: Fleet::default(),
            desired,
            position,
            lkg: std::sync::Mutex::new(lkg),
            releases: std::sync::Mutex::new(releases),
            cohort_changes: watch::channel(0).0,
            plan: Some(rampart_rollout::Plan::standard(30_000)),
            tick: Duration::from_secs(1),
            ops: crate::alerting::Ops::load(&store_for_ops, environments).await?,
            restarts: std::sync::Mutex::new(restarts),
            restart_gen: std::sync::Mutex::new(restart_gen),
        })
    }

    /// Sets how often the reconciler evaluates releases.
    pub fn with_tick(mut self, tick: Duration) -> ControlPlane {
        self.tick = tick;
        self
    }

    pub fn tick(&self) -> Duration {
        self.tick
    }

    /// Sets the plan of new releases; `None` deploys to every instance at once.
    pub fn with_plan(mut self, plan: Option<rampart_rollout::Plan>) -> ControlPlane {
        self.plan = plan;
        self
    }

    pub(crate) fn restarts_lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, crate::restart::RestartOp>> {
        self.restarts.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn restart_generation(&self, instance: &str) -> u64 {
        self.restart_gen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(instance)
            .copied()
            .unwrap_or(0)
    }

    /// Hands instances their new (stored) restart generations, waking their long-polls.
    pub(crate) fn set_restart_generations(&self, generations: &[(String, u64)]) {
        if generations.is_empty() {
            return;
        }
        let mut all = self.restart_gen.lock().unwrap_or_else(|p| p.into_inner());
        for (instance, generation) in generations {
            all.insert(instance.clone(), *generation);
        }
        drop(all);
        self.cohort_changes.send_modify(|g| *g += 1);
    }

    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<String, Live>> {
        self.releases.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What one instance should run: its release cohort's version, or the environment's.
    fn instance_desired(&self, env: &str, instance: &str) -> Option<VersionId> {
        if let Some(live) = self.live().get(env) {
            let v = if live.row.cohort.iter().any(|i| i == instance) {
                &live.row.version
            } else {
                &live.row.previous
            };
            return Some(v.clone());
        }
        self.desired.get(env).and_then(|tx| tx.borrow().clone())
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
        self.cohort_changes.send_modify(|g| *g += 1);
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
            let instances = self.fleet.all(&env);
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
                        self.cohort_changes.send_modify(|g| *g += 1);
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

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The pipeline's environments, in order.
    pub fn environment_names(&self) -> Vec<String> {
        let mut names: Vec<(usize, String)> = self
            .desired
            .keys()
            .map(|n| {
                (
                    self.position.get(n).copied().unwrap_or(usize::MAX),
                    n.clone(),
                )
            })
            .collect();
        names.sort();
        names.into_iter().map(|(_, n)| n).collect()
    }

    pub(crate) fn desired_version(&self, env: &str) -> Option<VersionId> {
        self.desired.get(env).and_then(|tx| tx.borrow().clone())
    }

    pub(crate) fn release_active(&self, env: &str) -> bool {
        self.live().contains_key(env)
    }

    pub(crate) fn fleet_all(&self, env: &str) -> Vec<crate::fleet::Instance> {
        self.fleet.all(env)
    }

    pub(crate) fn fleet_live(&self, env: &str) -> Vec<crate::fleet::Instance> {
        self.fleet.live(env)
    }

    /// Validates a document with the same model the gateways use, then checks what the model
    /// cannot (hosts resolve, auth endpoints answer), and stores it as a version. Failed semantic
    /// checks block the push unless an approver gives a break-glass reason (recorded).
    pub async fn push(
        &self,
        actor: &Actor,
        document: &str,
        message: &str,
        break_glass: Option<&str>,
    ) -> Result<PushResponse, ControlError> {
        let config =
            rampart_model::load(document).map_err(|e| ControlError::Invalid(e.to_string()))?;
        let id = config.version().as_str().to_owned();
        if let Some((existing, _)) = self.store.version(&id).await? {
            return Ok(PushResponse {
                version: existing,
                created: false,
                warnings: config.warnings.clone(),
                overridden: vec![],
            });
        }
        let findings: Vec<String> = crate::semantic::check(&config)
            .await
            .iter()
            .map(ToString::to_string)
            .collect();
        let mut extra = serde_json::json!({ "warnings": config.warnings });
        if !findings.is_empty() {
            match break_glass {
                Some(reason) if !reason.trim().is_empty() && actor.role >= Role::Approver => {
                    extra["break_glass"] =
                        serde_json::json!({ "reason": reason, "overridden": findings });
                }
                Some(reason) if !reason.trim().is_empty() => {
                    return Err(ControlError::Forbidden(format!(
                        "overriding semantic checks needs the approver role; {} is {:?}",
                        actor.name, actor.role
                    )));
                }
                _ => {
                    return Err(ControlError::Invalid(format!(
                        "{} semantic check{} failed:\n  {}\nfix the config, or have an approver store it with a break-glass reason",
                        findings.len(),
                        if findings.len() == 1 { "" } else { "s" },
                        findings.join("\n  ")
                    )));
                }
            }
        }
        let canonical = rampart_model::canonical_json(config.document());
        let (version, created) = self
            .store
            .insert_version(&id, &canonical, &actor.name, message, extra)
            .await?;
        let overridden = if break_glass.is_some() {
            findings
        } else {
            vec![]
        };
        Ok(PushResponse {
            version,
            created,
            warnings: config.warnings.clone(),
            overridden,
        })
    }

    pub async fn versions(&self) -> Result<Vec<VersionInfo>, ControlError> {
        Ok(self.store.versions().await?)
    }

    pub async fn version(
        &self,
        id: impl AsRef<str>,
    ) -> Result<(VersionInfo, String), ControlError> {
        let id = id.as_ref();
        self.store
            .version(id)
            .await?
            .ok_or_else(|| ControlError::NotFound(format!("no version {id}")))
    }

    pub async fn environments(&self) -> Result<Vec<EnvironmentStatus>, ControlError> {
        Ok(self
            .store
            .environments()
            .await?
            .into_iter()
            .map(|e| EnvironmentStatus {
                instances: self.fleet.status(&e.name),
                name: e.name,
                position: e.position,
                desired: e.desired,
                last_known_good: e.last_known_good,
            })
            .collect())
    }

    async fn environment(&self, env: &str) -> Result<EnvironmentStatus, ControlError> {
        self.environments()
            .await?
            .into_iter()
            .find(|e| e.name == env)
            .ok_or_else(|| ControlError::NotFound(format!("no environment {env:?}")))
    }

    fn publish(&self, env: &str, version: &VersionId) {
        if let Some(tx) = self.desired.get(env) {
            tx.send_replace(Some(version.clone()));
        }
    }

    /// Makes `version` desired in `env` if it completed in the previous environment, or with a
    /// recorded break-glass reason from an approver.
    pub async fn deploy(
        &self,
        actor: &Actor,
        env: &str,
        version: &VersionId,
        break_glass: Option<&str>,
    ) -> Result<EnvironmentStatus, ControlError> {
        let envs = self.store.environments().await?;
        let target = envs
            .iter()
            .find(|e| e.name == env)
            .ok_or_else(|| ControlError::NotFound(format!("no environment {env:?}")))?;
        self.version(version.as_str()).await?;
        // A break-glass reason is an approver's recorded decision: it may skip the pipeline order,
        // and it stands in for the second-person approval below.
        if let Some(reason) = break_glass {
            if reason.trim().is_empty() {
                return Err(ControlError::Invalid(
                    "a break-glass reason must not be empty".into(),
                ));
            }
            if actor.role < Role::Approver {
                return Err(ControlError::Forbidden(format!(
                    "break-glass needs the approver role; {} is {:?}",
                    actor.name, actor.role
                )));
            }
        }
        let mut data = serde_json::json!({ "version": version });
        if let Some(reason) = break_glass {
            data["break_glass"] = serde_json::json!({ "reason": reason });
        }
        if let Some(previous) = envs.iter().find(|e| e.position == target.position - 1)
            && !self
                .store
                .has_succeeded(&previous.name, version.as_str())
                .await?
        {
            if break_glass.is_none() {
                let short = version.short();
                return Err(ControlError::Conflict(format!(
                    "version {short} has not succeeded in {0:?}; deploy it to {0} first, or pass a break-glass reason (approver role)",
                    previous.name
                )));
            }
            data["break_glass"]["skipped"] = serde_json::json!(previous.name);
        }
        let glass = break_glass.is_some();
        // High-risk changes bound for the last environment need a second person, unless an
        // approver already took responsibility through break-glass.
        let last = envs.iter().map(|e| e.position).max() == Some(target.position);
        if last && !glass && !self.store.is_approved(env, version.as_str()).await? {
            let current = match &target.desired {
                Some(v) => rampart_model::parse_document(&self.version(v.as_str()).await?.1).ok(),
                None => None,
            };
            let next = rampart_model::parse_document(&self.version(version.as_str()).await?.1)
                .map_err(|e| {
                    ControlError::Invalid(format!("stored version {version} does not parse: {e}"))
                })?;
            let changes = rampart_model::diff(&current.unwrap_or_default(), &next);
            let sections = rampart_model::high_risk(&changes);
            if !sections.is_empty() {
                let approval = self
                    .store
                    .request_approval(env, version.as_str(), &sections, &actor.name)
                    .await?;
                return Err(ControlError::ApprovalRequired(approval));
            }
        }
        let kind = if glass {
            "deploy.break_glass"
        } else {
            "deploy"
        };
        self.start_or_set(
            env,
            target.desired.clone(),
            version,
            &actor.name,
            kind,
            data,
        )
        .await?;
        self.environment(env).await
    }

    /// Replacing a running version goes in waves under the rollout planner's gates; a first
    /// version (nothing to compare with) or a control plane without a plan sets it everywhere.
    async fn start_or_set(
        &self,
        env: &str,
        current: Option<VersionId>,
        version: &VersionId,
        actor: &str,
        kind: &str,
        mut data: serde_json::Value,
    ) -> Result<(), ControlError> {
        if let (Some(plan), Some(previous)) = (&self.plan, current)
            && previous != *version
        {
            if let Some(running) = self.live().get(env) {
                return Err(ControlError::Conflict(format!(
                    "release {} is already running in {env}; wait for it, or abort it (`rampart rollout abort {}`)",
                    running.row.id, running.row.id
                )));
            }
            let intent = rampart_rollout::Intent {
                version: version.to_string(),
                previous: Some(previous.to_string()),
                plan: plan.clone(),
                state: ReleaseState::Pending,
                wave: 0,
                wave_started_ms: crate::release::now_ms(),
            };
            let id = self
                .store
                .insert_release(env, &intent, previous.as_str(), actor)
                .await?;
            data["release"] = serde_json::json!(id);
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
            self.live().insert(
                env.to_owned(),
                Live {
                    row,
                    snapshot: HashMap::new(),
                    applied: Default::default(),
                },
            );
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
        self.publish(env, version);
        tracing::info!(
            env,
            version = version.short(),
            actor,
            kind,
            "desired version set"
        );
        Ok(())
    }

    pub async fn approvals(&self) -> Result<Vec<rampart_api::Approval>, ControlError> {
        Ok(self.store.approvals().await?)
    }

    /// A second person approves a pending deploy, which then happens.
    pub async fn approve(&self, actor: &Actor, id: i64) -> Result<EnvironmentStatus, ControlError> {
        let approval = self
            .store
            .approval(id)
            .await?
            .ok_or_else(|| ControlError::NotFound(format!("no approval {id}")))?;
        if approval.approved_by.is_some() {
            return Err(ControlError::Conflict(format!(
                "approval {id} was already granted"
            )));
        }
        if actor.role < Role::Approver {
            return Err(ControlError::Forbidden(format!(
                "approving needs the approver role; {} is {:?}",
                actor.name, actor.role
            )));
        }
        if actor.name == approval.requested_by {
            return Err(ControlError::Forbidden(format!(
                "{} requested this deploy; a second person must approve it",
                actor.name
            )));
        }
        self.store.grant(id, &actor.name).await?;
        let current = self.environment(&approval.environment).await?.desired;
        let data = serde_json::json!({ "version": approval.version, "approval": id });
        self.start_or_set(
            &approval.environment,
            current,
            &approval.version,
            &actor.name,
            "deploy",
            data,
        )
        .await?;
        tracing::info!(env = %approval.environment, approval = id, approver = %actor.name, "approved and deployed");
        self.environment(&approval.environment).await
    }

    /// Makes the last-known-good (or `to`) desired at once. Pre-authorised: no pipeline order, no
    /// approval, no semantic checks, and nothing asked of the instances being rolled back.
    pub async fn rollback(
        &self,
        actor: &Actor,
        env: &str,
        to: Option<&VersionId>,
    ) -> Result<EnvironmentStatus, ControlError> {
        let current = self.environment(env).await?;
        let target = match to {
            Some(v) => v.clone(),
            None => current.last_known_good.clone().ok_or_else(|| {
                ControlError::Conflict(format!(
                    "{env} has no last-known-good version yet; name one with --to"
                ))
            })?,
        };
        self.version(&target).await?;
        // A release in flight stops here: rollback overrides it, whatever its gates say.
        let running = self.live().remove(env);
        if let Some(mut live) = running {
            live.row.intent.state = ReleaseState::RolledBack;
            let data = serde_json::json!({ "release": live.row.id, "reason": "manual rollback" });
            let event = NewEvent {
                kind: "release.rolled_back",
                subject: env,
                actor: &actor.name,
                data,
            };
            self.store.update_release(&live.row, None, &[event]).await?;
            self.cohort_changes.send_modify(|g| *g += 1);
        }
        let data = serde_json::json!({ "from": current.desired, "to": target });
        self.store
            .set_desired(
                env,
                target.as_str(),
                &NewEvent {
                    kind: "rollback",
                    subject: env,
                    actor: &actor.name,
                    data,
                },
            )
            .await?;
        self.publish(env, &target);
        tracing::warn!(env, to = target.short(), actor = %actor.name, "rollback");
        self.environment(env).await
    }

    pub async fn register(
        &self,
        actor: &Actor,
        r: RegisterRequest,
    ) -> Result<RegisterResponse, ControlError> {
        if !self.desired.contains_key(&r.environment) {
            return Err(ControlError::NotFound(format!(
                "no environment {:?}",
                r.environment
            )));
        }
        let first = self.fleet.environment_of(&r.instance).is_none();
        let (instance, env) = (r.instance.clone(), r.environment.clone());
        self.fleet.register(r);
        if first {
            let data = serde_json::json!({ "environment": env });
            self.store
                .append_event(&NewEvent {
                    kind: "instance.registered",
                    subject: &instance,
                    actor: &actor.name,
                    data,
                })
                .await?;
        }
        Ok(RegisterResponse {
            poll_wait_ms: POLL_WAIT.as_millis() as u64,
            report_interval_ms: REPORT_INTERVAL.as_millis() as u64,
        })
    }

    /// Answers at once if the desired version differs from `current`; otherwise waits (up to
    /// `wait`) for it to change.
    pub async fn desired(
        &self,
        instance: &str,
        current: Option<&str>,
        known_restart: Option<u64>,
        wait: Duration,
    ) -> Result<Desired, ControlError> {
        let env = self.fleet.environment_of(instance).ok_or_else(|| {
            ControlError::NotFound(format!("instance {instance:?} is not registered"))
        })?;
        let mut env_rx = self
            .desired
            .get(&env)
            .ok_or_else(|| ControlError::NotFound(format!("no environment {env:?}")))?
            .subscribe();
        let mut cohort_rx = self.cohort_changes.subscribe();
        let deadline = tokio::time::Instant::now() + wait.min(POLL_WAIT);
        let version = loop {
            env_rx.borrow_and_update();
            cohort_rx.borrow_and_update();
            // Per instance: a release's cohort runs its version, everyone else the previous one.
            let want = self.instance_desired(&env, instance);
            if want.is_some() && want.as_ref().map(VersionId::as_str) != current {
                break want;
            }
            if known_restart.is_some_and(|k| k != self.restart_generation(instance)) {
                break want;
            }
            tokio::select! {
                _ = env_rx.changed() => {}
                _ = cohort_rx.changed() => {}
                _ = tokio::time::sleep_until(deadline) => break want,
            }
        };
        let document = match &version {
            Some(v) if Some(v.as_str()) != current => Some(self.version(v).await?.1),
            _ => None,
        };
        Ok(Desired {
            version,
            document,
            restart: self.restart_generation(instance),
        })
    }

    /// Records a report; when every live instance of the environment runs the desired version,
    /// the release succeeded there and the version becomes its last-known-good.
    pub async fn report(&self, instance: &str, r: Report) -> Result<(), ControlError> {
        let (env, before) = self.fleet.report(instance, &r).ok_or_else(|| {
            ControlError::NotFound(format!("instance {instance:?} is not registered"))
        })?;
        self.ops.record(&env, &r);
        if r.applied.is_some() && before != r.applied {
            let data =
                serde_json::json!({ "environment": env, "version": r.applied, "previous": before });
            self.store
                .append_event(&NewEvent {
                    kind: "instance.applied",
                    subject: instance,
                    actor: instance,
                    data,
                })
                .await?;
        }
        for p in &r.problems {
            tracing::warn!(instance, problem = %p, "agent reports a problem");
        }
        let Some(desired) = self.desired.get(&env).and_then(|tx| tx.borrow().clone()) else {
            return Ok(());
        };
        let live = self.fleet.live(&env);
        let already = self
            .lkg
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&env)
            .cloned()
            .flatten();
        if already.as_ref() != Some(&desired)
            && !live.is_empty()
            && live.iter().all(|i| i.applied.as_ref() == Some(&desired))
        {
            self.store
                .record_success(&env, desired.as_str(), live.len())
                .await?;
            self.lkg
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(env.clone(), Some(desired.clone()));
            tracing::info!(
                env,
                version = desired.short(),
                instances = live.len(),
                "release succeeded; new last-known-good"
            );
        }
        Ok(())
    }
}
