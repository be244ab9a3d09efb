//! Rollout policies: each environment's, as people wrote them, every revision stored with its
//! `policy.set` event (who, what changed). A release follows the policy in force when it starts
//! (recorded in the release as its `source`); a later change does not move a release in flight.
//!
//! Without a stored policy an environment follows the default: one before the last releases at
//! once (`Plan::at_once`), the last follows the plan the control plane was opened with.

use rampart_rollout::{Plan, PolicyDocument};

use super::*;

pub struct Policies {
    store: Store,
    /// The last environment's default plan; `None` turns releases off (a deploy sets the
    /// version everywhere at once, whatever the policies say).
    default_last: Option<Plan>,
    last_environment: String,
    environments: Arc<[String]>,
}

impl Policies {
    pub fn new(
        store: Store,
        default_last: Option<Plan>,
        last_environment: String,
        environments: Arc<[String]>,
    ) -> Policies {
        Policies {
            store,
            default_last,
            last_environment,
            environments,
        }
    }

    fn known(&self, env: &str) -> Result<(), ControlError> {
        if self.environments.iter().any(|e| e == env) {
            Ok(())
        } else {
            Err(ControlError::NotFound(format!("no environment {env:?}")))
        }
    }

    fn default_plan(&self, env: &str) -> Option<Plan> {
        let mut plan = if env == self.last_environment {
            self.default_last.clone()?
        } else {
            Plan::at_once()
        };
        plan.source = "default".into();
        Some(plan)
    }

    /// The plan a release starting now in `env` follows; `None` when releases are off.
    pub async fn plan_for(&self, env: &str) -> Result<Option<Plan>, ControlError> {
        if self.default_last.is_none() {
            return Ok(None);
        }
        match self.store.policies(env).await?.first() {
            Some(row) => Ok(Some(compiled(row)?)),
            None => Ok(self.default_plan(env)),
        }
    }

    /// The policy in force in `env`: the newest revision, or the default written out.
    pub async fn show(&self, env: &str) -> Result<rampart_api::Policy, ControlError> {
        self.known(env)?;
        let rows = self.store.policies(env).await?;
        match rows.first() {
            Some(row) => Ok(view(row, rows.get(1))),
            None => Ok(self.default_view(env)),
        }
    }

    fn default_view(&self, env: &str) -> rampart_api::Policy {
        let text = match self.default_plan(env) {
            Some(plan) => format!(
                "# {env} follows the default policy (no revision stored)\n{}",
                PolicyDocument::from_plan(&plan).to_yaml()
            ),
            None => "# releases are off: a deploy sets the version everywhere at once\n".into(),
        };
        rampart_api::Policy {
            environment: env.to_owned(),
            revision: None,
            text,
            actor: None,
            created_at: None,
            changes: vec![],
        }
    }

    /// Every stored revision of `env`'s policy, newest first, each with what it changed.
    pub async fn history(&self, env: &str) -> Result<Vec<rampart_api::Policy>, ControlError> {
        self.known(env)?;
        let rows = self.store.policies(env).await?;
        Ok(rows
            .iter()
            .enumerate()
            .map(|(i, row)| view(row, rows.get(i + 1)))
            .collect())
    }

    /// Stores a new revision of `env`'s policy after checking every field; a text that changes
    /// nothing is refused, so every revision is a change.
    pub async fn set(
        &self,
        actor: &Actor,
        env: &str,
        text: &str,
    ) -> Result<rampart_api::Policy, ControlError> {
        self.known(env)?;
        let plan = rampart_rollout::policy::load(text)
            .map_err(|e| ControlError::Invalid(format!("policy for {env}: {e}")))?;
        let current = match self.store.policies(env).await?.first() {
            Some(row) => compiled(row)?,
            None => self
                .default_plan(env)
                .unwrap_or_else(|| Plan::standard(30_000)),
        };
        let changes: Vec<String> = rampart_rollout::policy::changes(&current, &plan)
            .iter()
            .map(ToString::to_string)
            .collect();
        if changes.is_empty() {
            return Err(ControlError::Conflict(format!(
                "the policy changes nothing in {env}'s policy in force; nothing stored"
            )));
        }
        let data = serde_json::json!({ "changes": changes });
        let revision = self
            .store
            .insert_policy(env, text, &actor.name, data)
            .await?;
        tracing::info!(env, revision, actor = %actor.name, "rollout policy set");
        let mut shown = self.show(env).await?;
        shown.changes = changes;
        Ok(shown)
    }
}

/// A stored revision as its plan; a revision that no longer compiles is an error, not a default.
fn compiled(row: &crate::store::PolicyRow) -> Result<Plan, ControlError> {
    let mut plan = rampart_rollout::policy::load(&row.text).map_err(|e| {
        ControlError::Invalid(format!(
            "{} policy r{} no longer reads: {e}",
            row.environment, row.revision
        ))
    })?;
    plan.source = format!("{} policy r{}", row.environment, row.revision);
    Ok(plan)
}

/// What a revision changed from the one before it (nothing for a first revision).
pub fn revision_changes(
    row: &crate::store::PolicyRow,
    before: Option<&crate::store::PolicyRow>,
) -> Vec<String> {
    match (before.map(compiled), compiled(row)) {
        (Some(Ok(old)), Ok(new)) => rampart_rollout::policy::changes(&old, &new)
            .iter()
            .map(ToString::to_string)
            .collect(),
        _ => vec![],
    }
}

/// A revision as the API shows it, with what it changed from the one before (if any).
fn view(
    row: &crate::store::PolicyRow,
    before: Option<&crate::store::PolicyRow>,
) -> rampart_api::Policy {
    let changes = revision_changes(row, before);
    rampart_api::Policy {
        environment: row.environment.clone(),
        revision: Some(row.revision),
        text: row.text.clone(),
        actor: Some(row.actor.clone()),
        created_at: Some(row.created_at.clone()),
        changes,
    }
}
