//! The control plane's rules: push validates and stores immutable versions; deploy enforces
//! the pipeline; rollback is pre-authorised; reports mark releases that completed.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use rampart_api::{
    Desired, EnvironmentStatus, PushResponse, RegisterRequest, RegisterResponse, Report, VersionId,
    VersionInfo,
};

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
    /// The fleet, desired versions, long-poll wake-ups and restart generations.
    agents: crate::agents::Agents,
    /// Each environment's place in the pipeline.
    position: HashMap<String, usize>,
    /// Last-known-good per environment, mirrored from the store to skip redundant writes.
    lkg: std::sync::Mutex<HashMap<String, Option<VersionId>>>,
    /// Active releases by environment.
    releases: std::sync::Mutex<HashMap<String, crate::release::Live>>,
    /// The plan new releases follow; `None` deploys to every instance at once.
    plan: Option<rampart_rollout::Plan>,
    /// How often the reconciler evaluates releases.
    tick: Duration,
    /// Requests and failures per series, for SLOs and incident impact.
    pub(crate) sli: crate::sli::Sli,
    /// Components and the routes that make them up.
    pub(crate) component_book: crate::component_book::ComponentBook,
    /// How platform-opened incidents settle.
    pub(crate) convergence: crate::convergence::Convergence,
    /// How notifications are delivered.
    pub(crate) notify: crate::notify::NotifySettings,
    /// The public status page.
    pub(crate) page: crate::status::PageState,
    /// Rolling restarts by environment (memory: a control-plane restart ends them).
    restarts: std::sync::Mutex<HashMap<String, crate::restart::RestartOp>>,
}

/// Who is asking.
#[derive(Debug, Clone)]
pub struct Actor {
    pub name: String,
    pub role: Role,
}

mod agent_protocol;
mod pipeline;
mod reconcile;
mod restarts;
mod settings;

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
        let mut lkg = HashMap::new();
        let mut position = HashMap::new();
        let envs = store.environments().await?;
        for env in &envs {
            position.insert(env.name.clone(), env.position as usize);
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
            agents: crate::agents::Agents::new(&envs, restart_gen),
            position,
            lkg: std::sync::Mutex::new(lkg),
            releases: std::sync::Mutex::new(releases),
            plan: Some(rampart_rollout::Plan::standard(30_000)),
            tick: Duration::from_secs(1),
            sli: crate::sli::Sli::load(&store_for_ops).await?,
            component_book: crate::component_book::ComponentBook::load(
                &store_for_ops,
                environments,
            )
            .await?,
            convergence: Default::default(),
            notify: Default::default(),
            page: Default::default(),
            restarts: std::sync::Mutex::new(restarts),
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
        self.agents.restart_generation(instance)
    }

    /// Hands instances their new (stored) restart generations, waking their long-polls.
    pub(crate) fn set_restart_generations(&self, generations: &[(String, u64)]) {
        self.agents.set_restart_generations(generations);
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The pipeline's environments, in order.
    pub fn environment_names(&self) -> Vec<String> {
        let mut names: Vec<(usize, String)> =
            self.position.iter().map(|(n, p)| (*p, n.clone())).collect();
        names.sort();
        names.into_iter().map(|(_, n)| n).collect()
    }

    pub(crate) fn desired_version(&self, env: &str) -> Option<VersionId> {
        self.agents.desired(env)
    }

    pub(crate) fn release_active(&self, env: &str) -> bool {
        self.live().contains_key(env)
    }

    pub(crate) fn fleet_all(&self, env: &str) -> Vec<crate::fleet::Instance> {
        self.agents.fleet.all(env)
    }

    pub(crate) fn fleet_live(&self, env: &str) -> Vec<crate::fleet::Instance> {
        self.agents.fleet.live(env)
    }

    pub async fn environments(&self) -> Result<Vec<EnvironmentStatus>, ControlError> {
        Ok(self
            .store
            .environments()
            .await?
            .into_iter()
            .map(|e| EnvironmentStatus {
                instances: self.agents.fleet.status(&e.name),
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
}
