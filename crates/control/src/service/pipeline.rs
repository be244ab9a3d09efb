//! The pipeline: push (validation, semantic checks, break-glass), deploy (pipeline order,
//! second-person approval of high-risk changes, a release in waves when a version is replaced),
//! approvals, and rollback (pre-authorised: nothing asked of what is rolled back).

use super::*;

/// The pipeline's environments in order, and the rules a version follows through them.
pub struct Pipeline {
    store: Store,
    agents: Arc<crate::agents::Agents>,
    releases: Arc<Releases>,
    /// The environments, in pipeline order.
    environments: Vec<String>,
}

impl Pipeline {
    pub fn new(
        store: Store,
        agents: Arc<crate::agents::Agents>,
        releases: Arc<Releases>,
        environments: &[crate::store::EnvRow],
    ) -> Pipeline {
        let mut ordered: Vec<&crate::store::EnvRow> = environments.iter().collect();
        ordered.sort_by_key(|e| e.position);
        Pipeline {
            store,
            agents,
            releases,
            environments: ordered.into_iter().map(|e| e.name.clone()).collect(),
        }
    }

    /// The pipeline's environments, in order.
    pub fn environment_names(&self) -> &[String] {
        &self.environments
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
        stored_version(&self.store, id.as_ref()).await
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
        // approver already took responsibility through break-glass. Every such deploy asks
        // anew: an approval is one deploy (`approve` carries it out), never a standing permission.
        let last = envs.iter().map(|e| e.position).max() == Some(target.position);
        if last && !glass {
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
                return Err(ControlError::ApprovalRequired(Box::new(approval)));
            }
        }
        let kind = if glass {
            "deploy.break_glass"
        } else {
            "deploy"
        };
        self.releases
            .start_or_set(
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

    pub async fn approvals(&self) -> Result<Vec<rampart_api::Approval>, ControlError> {
        Ok(self.store.approvals().await?)
    }

    /// A second person approves a pending deploy, which then happens. An approval is used once:
    /// of two approvers at once one deploys, the other is told it was granted already.
    pub async fn approve(&self, actor: &Actor, id: i64) -> Result<EnvironmentStatus, ControlError> {
        let approval = self
            .store
            .approval(id)
            .await?
            .ok_or_else(|| ControlError::NotFound(format!("no approval {id}")))?;
        let granted_already = || {
            ControlError::Conflict(format!(
                "approval {id} was already granted and used; deploy again to request a new one"
            ))
        };
        if approval.approved_by.is_some() {
            return Err(granted_already());
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
        let env = &approval.environment;
        // Refused before the grant, so a deploy that cannot start does not spend the approval.
        if self.releases.active(env) {
            return Err(ControlError::Conflict(format!(
                "a release is running in {env}; approve when it ends"
            )));
        }
        if !self.store.grant(id, &actor.name).await? {
            return Err(granted_already());
        }
        let current = self.environment(env).await?.desired;
        let data = serde_json::json!({ "version": approval.version, "approval": id });
        self.releases
            .start_or_set(env, current, &approval.version, &actor.name, "deploy", data)
            .await?;
        tracing::info!(env = %env, approval = id, approver = %actor.name, "approved and deployed");
        self.environment(env).await
    }

    /// Makes the last-known-good (or `to`, one of its earlier last-known-goods) desired at once.
    /// Pre-authorised: no pipeline order, no approval, no semantic checks, and nothing asked of
    /// the instances being rolled back.
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
        // Rollback skips the pipeline and approvals, so it only goes back: to a version every
        // live instance of this environment once ran. Anything else is a deploy.
        if !self.store.has_succeeded(env, target.as_str()).await? {
            return Err(ControlError::Conflict(format!(
                "version {} never was {env}'s last-known-good, so rolling back to it would skip the pipeline; deploy it instead (`rampart deploy --env {env} --version {}`)",
                target.short(),
                target.short()
            )));
        }
        // A release in flight stops here: rollback overrides it, whatever its gates say.
        self.releases.stop_for_rollback(env, &actor.name).await?;
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
        self.agents.publish(env, &target);
        tracing::warn!(env, to = target.short(), actor = %actor.name, "rollback");
        self.environment(env).await
    }
}
