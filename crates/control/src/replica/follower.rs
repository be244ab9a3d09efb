//! A follower answers its agents' long-polls itself, from what the database holds: each
//! environment's desired version, its active release (version, previous, cohort, probes), the
//! restart generations, and the instances' stored registrations (their credentials). It re-reads
//! them at every committed write (PostgreSQL's NOTIFY) and every second (a notification can be
//! lost), and wakes its waiting polls when what they are to run changed. So a deploy or a
//! rollback sent to any replica reaches every replica's long-polls within a second, and the
//! leader answers only its own agents' polls. Everything else — registrations, reports — goes
//! to the leader.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::response::{IntoResponse, Response};
use rampart_api::VersionId;
use rampart_rollout::ReleaseState;

use crate::http::ApiError;
use crate::service::long_poll::{self, DesiredSource, Documents, Poll};
use crate::store::{ReleaseRow, Store};

/// How often the view is re-read when no notification came.
const CATCH_UP: Duration = Duration::from_secs(1);

/// The view is read again at most this often, however many writes are announced.
const REREAD_EVERY: Duration = Duration::from_millis(50);

/// How soon after an unknown instance polled the registrations are read again (at most).
const INSTANCES_AGAIN: Duration = Duration::from_millis(500);

pub struct FollowerView {
    store: Store,
    agents: crate::agents::Agents,
    /// The active release of each environment, as stored.
    releases: RwLock<HashMap<String, ReleaseRow>>,
    documents: Documents,
    tokens: crate::tokens::Tokens,
    /// The rolling restarts as last read: the generations are read again when they change.
    restarts: std::sync::Mutex<String>,
    /// An instance polled that this view does not know: read the registrations again.
    unknown: tokio::sync::Notify,
    admission: crate::http::admission::AgentAdmission,
    /// Long-polls this replica answered itself.
    answered: std::sync::atomic::AtomicU64,
    /// True while this replica leads: the polls the view holds answer at once, and the agents'
    /// next polls reach the leader's own protocol (here).
    leading: tokio::sync::watch::Sender<bool>,
}

/// What a follower does with a request it was given.
pub enum Answer {
    Answered(Response),
    /// Not one it answers (or an instance it does not know yet): forward it.
    Forward(axum::extract::Request),
}

impl DesiredSource for FollowerView {
    fn instance_desired(&self, env: &str, instance: &str) -> Option<VersionId> {
        match self.read_releases().get(env) {
            Some(row) => Some(long_poll::desired_under(row, instance)),
            None => self.agents.desired(env),
        }
    }

    fn instance_probes(&self, env: &str, instance: &str) -> Vec<rampart_rollout::Probe> {
        self.read_releases()
            .get(env)
            .map(|row| long_poll::probes_under(row, instance))
            .unwrap_or_default()
    }
}

impl FollowerView {
    /// Reads the view whole from the store.
    pub async fn open(
        store: Store,
        tokens: crate::tokens::Tokens,
        limits: &crate::listener::Limits,
    ) -> Result<Arc<FollowerView>, crate::ControlError> {
        let envs = store.environments().await?;
        let agents = crate::agents::Agents::new(&envs, store.restart_generations().await?);
        let view = Arc::new(FollowerView {
            documents: Documents::new(store.clone()),
            store,
            agents,
            releases: RwLock::new(HashMap::new()),
            tokens,
            restarts: Default::default(),
            unknown: tokio::sync::Notify::new(),
            admission: crate::http::admission::AgentAdmission::new(limits),
            answered: Default::default(),
            leading: tokio::sync::watch::channel(false).0,
        });
        view.read_instances().await?;
        view.refresh().await?;
        Ok(view)
    }

    /// This replica leads (or no longer does): while it leads, polls the view holds are let go.
    pub fn set_leading(&self, leading: bool) {
        self.leading
            .send_if_modified(|l| std::mem::replace(l, leading) != leading);
    }

    /// How many long-polls this replica answered itself.
    pub fn answered(&self) -> u64 {
        self.answered.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn read_releases(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, ReleaseRow>> {
        self.releases.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps the view current while `following()` says this replica follows: at every change
    /// the database announces, every second, and soon after an unknown instance polled.
    pub async fn run(self: Arc<Self>, following: impl Fn() -> bool) {
        let mut changes = match self.store.change_watch().await {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(error = %e, "not listening for changes; re-reading every second");
                None
            }
        };
        // A timer of its own, so a stream of notifications never postpones the catch-up.
        let mut catch_up = tokio::time::interval(CATCH_UP);
        // Notifications mark the view stale; it is read again at most every `REREAD_EVERY`, so
        // a burst of writes (a fleet registering) costs a few reads, not one each.
        let (mut stale, mut instances_stale) = (false, false);
        let mut next_read = tokio::time::Instant::now();
        loop {
            tokio::select! {
                heard = async {
                    match &mut changes {
                        Some(w) => w.changed().await,
                        None => std::future::pending().await,
                    }
                } => {
                    if let Err(e) = heard {
                        tracing::warn!(error = %e, "change notifications lost; re-reading every second");
                        changes = None;
                    }
                    stale = true;
                }
                _ = catch_up.tick() => stale = true,
                _ = self.unknown.notified() => {
                    // The first unknown instance sets when they are read; later ones wait for
                    // that read (a fleet registering never postpones it).
                    if !instances_stale {
                        instances_stale = true;
                        next_read = next_read.max(tokio::time::Instant::now() + INSTANCES_AGAIN);
                    }
                }
                _ = tokio::time::sleep_until(next_read), if stale || instances_stale => {
                    // While this replica leads the view holds no polls (they were let go):
                    // nothing to read for.
                    if following() {
                        if instances_stale
                            && let Err(e) = self.read_instances().await
                        {
                            tracing::warn!(error = %e, "reading the registrations");
                        }
                        if let Err(e) = self.refresh().await {
                            tracing::warn!(error = %e, "reading what agents are to run");
                        }
                    }
                    (stale, instances_stale) = (false, false);
                    next_read = tokio::time::Instant::now() + REREAD_EVERY;
                }
            }
        }
    }

    /// The stored registrations, so their credentials hold here.
    async fn read_instances(&self) -> Result<(), crate::ControlError> {
        Ok(self.agents.restore_registrations(&self.store).await?)
    }

    /// Re-reads the desired versions, the active releases and (when a restart moved) the
    /// restart generations; wakes the polls whose answer may have changed.
    async fn refresh(&self) -> Result<(), crate::ControlError> {
        for env in self.store.environments().await? {
            if let Some(v) = &env.desired
                && self.agents.desired(&env.name).as_ref() != Some(v)
            {
                self.agents.publish(&env.name, v);
            }
        }
        let mut active: HashMap<String, ReleaseRow> = HashMap::new();
        // Newest first: the first active release of an environment is its release.
        for row in self.store.releases().await? {
            let running = matches!(
                row.intent.state,
                ReleaseState::Pending | ReleaseState::Rolling | ReleaseState::Paused
            );
            if running && !active.contains_key(&row.environment) {
                active.insert(row.environment.clone(), row);
            }
        }
        let changed = {
            let known = self.read_releases();
            known.len() != active.len()
                || active.iter().any(|(env, row)| {
                    known.get(env).is_none_or(|k| {
                        k.id != row.id
                            || k.cohort != row.cohort
                            || k.intent.state != row.intent.state
                    })
                })
        };
        tracing::info!(changed, releases = active.len(), "TEMP refresh");
        if changed {
            *self.releases.write().unwrap_or_else(|p| p.into_inner()) = active;
            self.agents.cohorts_changed();
        }
        let restarts = format!("{:?}", self.store.restarts().await?);
        let moved = {
            let mut seen = self.restarts.lock().unwrap_or_else(|p| p.into_inner());
            let moved = *seen != restarts;
            *seen = restarts;
            moved
        };
        if moved {
            let generations: Vec<(String, u64)> = self
                .store
                .restart_generations()
                .await?
                .into_iter()
                .collect();
            self.agents.set_restart_generations(&generations);
        }
        self.tokens.load_stored(&self.store).await?;
        Ok(())
    }

    /// Answers `req` if it is an agent's long-poll for an instance this view knows.
    pub async fn answer(&self, req: axum::extract::Request) -> Answer {
        let Some(instance) = polled_instance(&req) else {
            return Answer::Forward(req);
        };
        if self.agents.fleet.environment_of(&instance).is_none() {
            self.unknown.notify_one();
            return Answer::Forward(req);
        }
        let query = req.uri().query().unwrap_or_default().to_owned();
        Answer::Answered(match self.poll(req.headers(), &query, &instance).await {
            Ok(resp) => resp,
            Err(e) => e.into_response(),
        })
    }

    async fn poll(
        &self,
        headers: &http::HeaderMap,
        query: &str,
        instance: &str,
    ) -> Result<Response, ApiError> {
        use crate::http::extract::{agent_only, bearer_actor, instance_credential};
        let actor = agent_only(bearer_actor(headers, &self.tokens)?)?;
        let credential = instance_credential(headers)?;
        let env = crate::service::check_instance(&self.agents.fleet, instance, &credential)?;
        if !actor.may_act_in(&env) {
            return Err(crate::ControlError::Forbidden(format!(
                "{}'s token is for {}, not {env}",
                actor.name,
                actor.environments.join(", ")
            ))
            .into());
        }
        let q: crate::http::agents::DesiredQuery =
            serde_urlencoded::from_str(query).map_err(|e| {
                ApiError(
                    axum::http::StatusCode::BAD_REQUEST,
                    "bad_request",
                    format!("query: {e}"),
                )
            })?;
        let _admitted = self.admission.poll()?;
        let poll = Poll {
            env: &env,
            instance,
            current: (!q.current.is_empty()).then_some(q.current.as_str()),
            known_restart: q.restart,
            probing: q.probing,
            wait: Duration::from_millis(q.wait_ms),
            until: Some(self.leading.subscribe()),
        };
        let desired =
            long_poll::wait_for_desired(&self.agents, self, &self.documents, poll).await?;
        self.answered
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(axum::Json(desired).into_response())
    }
}

/// The instance of a `GET /v1/agents/{id}/desired`, if `req` is one.
fn polled_instance(req: &axum::extract::Request) -> Option<String> {
    if req.method() != http::Method::GET {
        return None;
    }
    let id = req
        .uri()
        .path()
        .strip_prefix("/v1/agents/")?
        .strip_suffix("/desired")?;
    if id.is_empty() || id.contains('/') {
        return None;
    }
    // Instance ids are registered as given; a percent-encoded one is left to the leader.
    (!id.contains('%')).then(|| id.to_owned())
}
