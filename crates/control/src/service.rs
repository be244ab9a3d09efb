//! The control plane's rules: push validates and stores immutable versions; deploy enforces
//! the pipeline; rollback is pre-authorised; reports mark releases that completed.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use rampart_api::{
    Desired, EnvironmentStatus, PushResponse, RegisterRequest, RegisterResponse, Report,
    VersionInfo,
};
use tokio::sync::watch;

use crate::fleet::Fleet;
use crate::store::{NewEvent, Store, StoreError};
use crate::tokens::Role;

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
    desired: HashMap<String, watch::Sender<Option<String>>>,
    /// Last-known-good per environment, mirrored from the store to skip redundant writes.
    lkg: std::sync::Mutex<HashMap<String, Option<String>>>,
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
        let mut desired = HashMap::new();
        let mut lkg = HashMap::new();
        for env in store.environments().await? {
            desired.insert(env.name.clone(), watch::channel(env.desired.clone()).0);
            lkg.insert(env.name.clone(), env.last_known_good.clone());
        }
        Ok(ControlPlane {
            store,
            fleet: Fleet::default(),
            desired,
            lkg: std::sync::Mutex::new(lkg),
        })
    }

    pub fn store(&self) -> &Store {
        &self.store
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

    pub async fn version(&self, id: &str) -> Result<(VersionInfo, String), ControlError> {
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

    fn publish(&self, env: &str, version: &str) {
        if let Some(tx) = self.desired.get(env) {
            tx.send_replace(Some(version.to_owned()));
        }
    }

    /// Makes `version` desired in `env` if it completed in the previous environment, or with a
    /// recorded break-glass reason from an approver.
    pub async fn deploy(
        &self,
        actor: &Actor,
        env: &str,
        version: &str,
        break_glass: Option<&str>,
    ) -> Result<EnvironmentStatus, ControlError> {
        let envs = self.store.environments().await?;
        let target = envs
            .iter()
            .find(|e| e.name == env)
            .ok_or_else(|| ControlError::NotFound(format!("no environment {env:?}")))?;
        self.version(version).await?;
        let mut data = serde_json::json!({ "version": version });
        if let Some(previous) = envs.iter().find(|e| e.position == target.position - 1)
            && !self.store.has_succeeded(&previous.name, version).await?
        {
            let short = &version[..version.len().min(12)];
            match break_glass {
                None => {
                    return Err(ControlError::Conflict(format!(
                        "version {short} has not succeeded in {0:?}; deploy it to {0} first, or pass a break-glass reason (approver role)",
                        previous.name
                    )));
                }
                Some(reason) if reason.trim().is_empty() => {
                    return Err(ControlError::Invalid(
                        "a break-glass reason must not be empty".into(),
                    ));
                }
                Some(_) if actor.role < Role::Approver => {
                    return Err(ControlError::Forbidden(format!(
                        "break-glass needs the approver role; {} is {:?}",
                        actor.name, actor.role
                    )));
                }
                Some(reason) => {
                    data["break_glass"] =
                        serde_json::json!({ "reason": reason, "skipped": previous.name });
                }
            }
        }
        // A break-glass reason is an approver's recorded decision, also when the pipeline did not
        // need it: it then stands in for the second-person approval below.
        if let Some(reason) = break_glass
            && data.get("break_glass").is_none()
        {
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
            data["break_glass"] = serde_json::json!({ "reason": reason });
        }
        let glass = data.get("break_glass").is_some();
        // High-risk changes bound for the last environment need a second person, unless an
        // approver already took responsibility through break-glass.
        let last = envs.iter().map(|e| e.position).max() == Some(target.position);
        if last && !glass && !self.store.is_approved(env, version).await? {
            let current = match &target.desired {
                Some(v) => rampart_model::parse_document(&self.version(v).await?.1).ok(),
                None => None,
            };
            let next =
                rampart_model::parse_document(&self.version(version).await?.1).map_err(|e| {
                    ControlError::Invalid(format!("stored version {version} does not parse: {e}"))
                })?;
            let changes = rampart_model::diff(&current.unwrap_or_default(), &next);
            let sections = rampart_model::high_risk(&changes);
            if !sections.is_empty() {
                let approval = self
                    .store
                    .request_approval(env, version, &sections, &actor.name)
                    .await?;
                return Err(ControlError::ApprovalRequired(approval));
            }
        }
        let kind = if glass {
            "deploy.break_glass"
        } else {
            "deploy"
        };
        self.store
            .set_desired(
                env,
                version,
                &NewEvent {
                    kind,
                    subject: env,
                    actor: &actor.name,
                    data,
                },
            )
            .await?;
        self.publish(env, version);
        tracing::info!(env, version = &version[..version.len().min(12)], actor = %actor.name, kind, "desired version set");
        self.environment(env).await
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
        self.publish(&approval.environment, &approval.version);
        tracing::info!(env = %approval.environment, approval = id, approver = %actor.name, "approved and deployed");
        self.environment(&approval.environment).await
    }

    /// Makes the last-known-good (or `to`) desired at once. Pre-authorised: no pipeline order, no
    /// approval, no semantic checks, and nothing asked of the instances being rolled back.
    pub async fn rollback(
        &self,
        actor: &Actor,
        env: &str,
        to: Option<&str>,
    ) -> Result<EnvironmentStatus, ControlError> {
        let current = self.environment(env).await?;
        let target = match to {
            Some(v) => v.to_owned(),
            None => current.last_known_good.clone().ok_or_else(|| {
                ControlError::Conflict(format!(
                    "{env} has no last-known-good version yet; name one with --to"
                ))
            })?,
        };
        self.version(&target).await?;
        let data = serde_json::json!({ "from": current.desired, "to": target });
        self.store
            .set_desired(
                env,
                &target,
                &NewEvent {
                    kind: "rollback",
                    subject: env,
                    actor: &actor.name,
                    data,
                },
            )
            .await?;
        self.publish(env, &target);
        tracing::warn!(env, to = &target[..target.len().min(12)], actor = %actor.name, "rollback");
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
        wait: Duration,
    ) -> Result<Desired, ControlError> {
        let env = self.fleet.environment_of(instance).ok_or_else(|| {
            ControlError::NotFound(format!("instance {instance:?} is not registered"))
        })?;
        let mut rx = self
            .desired
            .get(&env)
            .ok_or_else(|| ControlError::NotFound(format!("no environment {env:?}")))?
            .subscribe();
        let differs = |v: &Option<String>| v.is_some() && v.as_deref() != current;
        if !differs(&rx.borrow_and_update()) {
            let _ = tokio::time::timeout(wait.min(POLL_WAIT), rx.wait_for(differs)).await;
        }
        let version = rx.borrow().clone();
        let document = match &version {
            Some(v) if Some(v.as_str()) != current => Some(self.version(v).await?.1),
            _ => None,
        };
        Ok(Desired { version, document })
    }

    /// Records a report; when every live instance of the environment runs the desired version,
    /// the release succeeded there and the version becomes its last-known-good.
    pub async fn report(&self, instance: &str, r: Report) -> Result<(), ControlError> {
        let env = self.fleet.report(instance, &r).ok_or_else(|| {
            ControlError::NotFound(format!("instance {instance:?} is not registered"))
        })?;
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
        if already.as_deref() != Some(desired.as_str())
            && !live.is_empty()
            && live
                .iter()
                .all(|i| i.applied.as_deref() == Some(desired.as_str()))
        {
            self.store
                .record_success(&env, &desired, live.len())
                .await?;
            self.lkg
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(env.clone(), Some(desired.clone()));
            tracing::info!(
                env,
                version = &desired[..desired.len().min(12)],
                instances = live.len(),
                "release succeeded; new last-known-good"
            );
        }
        Ok(())
    }
}
