//! Incidents: opened by hand or by a paging alert, advanced by the platform (monitoring once
//! the environment is whole, resolved after a quiet period), changed by hand, and their impact.

use super::*;

/// Incidents: opened by operators or by paging alerts, changed, listed with their traffic; those
/// the platform opened advance on their own as their environment converges and stays quiet.
pub struct Incidents {
    pub(crate) store: crate::store::Store,
    /// How platform-opened incidents settle.
    pub(crate) convergence: crate::convergence::Convergence,
    pub(crate) book: Arc<crate::component_book::ComponentBook>,
    pub(crate) sli: Arc<crate::sli::Sli>,
    pub(crate) agents: Arc<crate::agents::Agents>,
    pub(crate) releases: Arc<crate::service::Releases>,
    pub(crate) environments: Arc<[String]>,
}

impl Incidents {
    /// Environments whose live instances all run the desired version; records the moment each
    /// one converges on a new version. Returns the converged environments.
    pub(crate) async fn converge(&self) -> Result<Vec<String>, ControlError> {
        let mut out = vec![];
        for env in self.environments.iter() {
            let desired = self.agents.desired(env);
            let live = self.agents.fleet.live(env);
            let whole = desired.is_some()
                && !live.is_empty()
                && live.iter().all(|i| i.applied == desired)
                && !self.releases.active(env);
            if !whole {
                // Forget the last convergence, so becoming whole again (after a rollback, on the
                // same version) is recorded too.
                lock(&self.convergence.converged).remove(env);
                continue;
            }
            out.push(env.clone());
            let changed = {
                let mut c = lock(&self.convergence.converged);
                let before = c.insert(env.clone(), desired.clone());
                before != Some(desired.clone())
            };
            if changed {
                self.store
                    .append_event(&NewEvent {
                        kind: "environment.converged",
                        subject: env,
                        actor: "control",
                        data: serde_json::json!({ "version": desired, "instances": live.len() }),
                    })
                    .await?;
            }
        }
        Ok(out)
    }

    /// Moves platform-opened incidents along: identified → monitoring once the environment is
    /// whole and their alerts resolved; monitoring → resolved after the quiet period.
    pub(super) async fn advance(&self) -> Result<(), ControlError> {
        let active = self.store.alerts(true).await?;
        for id in self.store.incident_ids(true, 500).await? {
            let Some(incident) = self.store.incident(id).await? else {
                continue;
            };
            let by_platform = incident.cause.get("by").is_none();
            if !by_platform {
                continue;
            }
            let open_alerts = active.iter().filter(|a| a.incident == Some(id)).count();
            if open_alerts > 0 {
                continue;
            }
            let env = incident.environment.clone().unwrap_or_default();
            let whole = lock(&self.convergence.converged)
                .get(&env)
                .is_some_and(|v| v.is_some())
                && !self.releases.active(&env);
            match incident.status {
                IncidentStatus::Investigating | IncidentStatus::Identified if whole => {
                    let version = lock(&self.convergence.converged)
                        .get(&env)
                        .cloned()
                        .flatten();
                    let body = format!(
                        "{env} is whole again: every instance runs {}. Its alerts resolved; watching for {}s before resolving.",
                        version.as_ref().map_or("?", |v| v.short()),
                        self.convergence.quiet.as_secs()
                    );
                    self.change(
                        id,
                        IncidentChange {
                            status: Some(IncidentStatus::Monitoring),
                            body: Some(body),
                            ..Default::default()
                        },
                        "control",
                    )
                    .await?;
                }
                IncidentStatus::Monitoring => {
                    let since = incident
                        .updates
                        .last()
                        .and_then(|u| parse_ms(&u.at))
                        .unwrap_or(0);
                    if now_ms().saturating_sub(since) >= self.convergence.quiet.as_millis() as u64 {
                        let body = format!(
                            "Resolved: no alert for {}s and {env} stayed whole.",
                            self.convergence.quiet.as_secs()
                        );
                        self.change(
                            id,
                            IncidentChange {
                                status: Some(IncidentStatus::Resolved),
                                body: Some(body),
                                ..Default::default()
                            },
                            "control",
                        )
                        .await?;
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Requests over an incident's window: frozen once resolved, live before.
    pub async fn traffic(&self, incident: &Incident) -> Result<Traffic, ControlError> {
        if incident.resolved_at.is_some() {
            return Ok(incident.traffic);
        }
        let Some(env) = &incident.environment else {
            return Ok(Traffic::default());
        };
        let started = self
            .store
            .incident_started_ms(incident.id)
            .await?
            .unwrap_or_else(now_ms);
        Ok(self.sli.traffic_since(&environment_series(env), started))
    }

    /// Changes an incident (status, note, narrative); a resolution freezes its traffic.
    pub async fn change(
        &self,
        id: i64,
        change: IncidentChange,
        actor: &str,
    ) -> Result<Incident, ControlError> {
        let incident = self.get(id).await?;
        if incident.status == IncidentStatus::Resolved && change.status.is_some() {
            return Err(ControlError::Conflict(format!(
                "incident {id} is resolved; open a new one"
            )));
        }
        let traffic = if change.status == Some(IncidentStatus::Resolved) {
            Some(self.traffic(&incident).await?)
        } else {
            None
        };
        self.store
            .change_incident(id, &change, traffic, actor)
            .await?;
        self.get(id).await
    }

    pub async fn get(&self, id: i64) -> Result<Incident, ControlError> {
        let mut incident = self
            .store
            .incident(id)
            .await?
            .ok_or_else(|| ControlError::NotFound(format!("no incident {id}")))?;
        incident.traffic = self.traffic(&incident).await?;
        Ok(incident)
    }

    /// The latest 500 incidents, newest first.
    pub async fn list(&self) -> Result<Vec<Incident>, ControlError> {
        self.recent(500).await
    }

    pub async fn recent(&self, limit: i64) -> Result<Vec<Incident>, ControlError> {
        let mut out = vec![];
        for id in self.store.incident_ids(false, limit).await? {
            out.push(self.get(id).await?);
        }
        Ok(out)
    }

    pub async fn open(
        &self,
        new: rampart_api::NewIncident,
        actor: &str,
    ) -> Result<Incident, ControlError> {
        if new.title.trim().is_empty() {
            return Err(ControlError::Invalid(
                "title: an incident needs a title".into(),
            ));
        }
        let known = self.book.names();
        if let Some(c) = new.components.iter().find(|c| !known.contains(c)) {
            return Err(ControlError::Invalid(format!(
                "components: no component {c:?} (known: {})",
                known.join(", ")
            )));
        }
        let seed = IncidentSeed {
            title: new.title,
            status: IncidentStatus::Investigating,
            impact: new.impact,
            environment: new
                .environment
                .or_else(|| Some(self.book.last_environment().to_owned())),
            components: new.components,
            cause: serde_json::json!({ "by": actor }),
            started_ms: now_ms(),
            first_event: None,
            body: new.body,
        };
        let id = self.store.open_incident(&seed, actor).await?;
        self.get(id).await
    }

    /// Adds an action item to an incident's postmortem.
    pub async fn add_action_item(
        &self,
        id: i64,
        item: &rampart_api::ActionItemSpec,
        actor: &str,
    ) -> Result<Incident, ControlError> {
        check_item(item).map_err(ControlError::Invalid)?;
        self.get(id).await?;
        self.store.add_action_item(id, item, actor).await?;
        self.get(id).await
    }

    /// Changes one of an incident's action items.
    pub async fn set_action_item(
        &self,
        id: i64,
        item: i64,
        spec: &rampart_api::ActionItemSpec,
        actor: &str,
    ) -> Result<Incident, ControlError> {
        check_item(spec).map_err(ControlError::Invalid)?;
        if !self.store.set_action_item(id, item, spec, actor).await? {
            return Err(ControlError::NotFound(format!(
                "incident {id} has no action item {item}"
            )));
        }
        self.get(id).await
    }
}

/// What is wrong with an action item, if anything.
fn check_item(item: &rampart_api::ActionItemSpec) -> Result<(), String> {
    if item.title.trim().is_empty() {
        return Err("title: an action item needs a title".into());
    }
    if item.owner.trim().is_empty() {
        return Err("owner: an action item needs an owner".into());
    }
    if item.state != "open" && item.state != "done" {
        return Err(format!(
            "state: expected \"open\" or \"done\", got {:?}",
            item.state
        ));
    }
    Ok(())
}
