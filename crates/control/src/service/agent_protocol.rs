//! The agent protocol: registration, the desired-version long-poll, and reports (which make a
//! version an environment's last-known-good once every live instance runs it).

use super::*;

/// The server side of the agent protocol.
pub struct AgentProtocol {
    store: Store,
    agents: Arc<crate::agents::Agents>,
    releases: Arc<Releases>,
    sli: Arc<crate::sli::Sli>,
    book: Arc<crate::component_book::ComponentBook>,
    /// Last-known-good per environment, mirrored from the store to skip redundant writes.
    lkg: std::sync::Mutex<HashMap<String, Option<VersionId>>>,
    /// `instance.applied` events not yet stored: reports are booked in memory and the events
    /// written in batches (`flush`), so a thousand agents applying a rollback at once cost a
    /// few transactions, not a thousand, and an operator's write does not queue behind them.
    pending: std::sync::Mutex<Vec<(String, serde_json::Value)>>,
    /// One flush at a time, so batches reach the log in the order they were taken.
    flushing: tokio::sync::Mutex<()>,
    /// Documents of the versions agents were sent lately.
    documents: super::long_poll::Documents,
    /// This replica's name, when it is one of several: the replica a report reached directly.
    replica: Option<String>,
}

impl AgentProtocol {
    pub fn new(
        store: Store,
        agents: Arc<crate::agents::Agents>,
        releases: Arc<Releases>,
        sli: Arc<crate::sli::Sli>,
        book: Arc<crate::component_book::ComponentBook>,
        environments: &[crate::store::EnvRow],
        replica: Option<String>,
    ) -> AgentProtocol {
        let lkg = environments
            .iter()
            .map(|e| (e.name.clone(), e.last_known_good.clone()))
            .collect();
        AgentProtocol {
            agents,
            releases,
            sli,
            book,
            lkg: std::sync::Mutex::new(lkg),
            pending: std::sync::Mutex::new(Vec::new()),
            flushing: tokio::sync::Mutex::new(()),
            documents: super::long_poll::Documents::new(store.clone()),
            store,
            replica,
        }
    }

    fn pending_events(&self) -> std::sync::MutexGuard<'_, Vec<(String, serde_json::Value)>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores the `instance.applied` events reports brought since the last flush, in order, in
    /// one transaction.
    pub async fn flush(&self) -> Result<(), ControlError> {
        let _one = self.flushing.lock().await;
        let batch = std::mem::take(&mut *self.pending_events());
        let events: Vec<NewEvent> = batch
            .iter()
            .map(|(instance, data)| NewEvent {
                kind: "instance.applied",
                subject: instance,
                actor: instance,
                data: data.clone(),
            })
            .collect();
        if let Err(e) = self.store.append_events(&events).await {
            // Not stored: put them back ahead of anything that came since.
            let mut pending = self.pending_events();
            let later = std::mem::replace(&mut *pending, batch);
            pending.extend(later);
            return Err(e.into());
        }
        Ok(())
    }

    /// Every environment whose live instances all run its desired version has succeeded with
    /// it (a straggler that went silent also completes a release); called every reconciler tick.
    pub async fn check_successes(&self) -> Result<(), ControlError> {
        self.flush().await?;
        for env in self.agents.environments() {
            self.check_success(&env).await?;
        }
        Ok(())
    }

    /// When every live instance of `env` runs the desired version, the release succeeded there
    /// and the version becomes its last-known-good (stored after the applies that led to it).
    async fn check_success(&self, env: &str) -> Result<(), ControlError> {
        let Some(desired) = self.agents.desired(env) else {
            return Ok(());
        };
        let already = self
            .lkg
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(env)
            .cloned()
            .flatten();
        if already.as_ref() == Some(&desired) {
            return Ok(());
        }
        let Some(live) = self.agents.fleet.all_live_on(env, &desired) else {
            return Ok(());
        };
        self.flush().await?;
        self.store
            .record_success(env, desired.as_str(), live)
            .await?;
        self.lkg
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(env.to_owned(), Some(desired.clone()));
        tracing::info!(
            env,
            version = desired.short(),
            instances = live,
            "release succeeded; new last-known-good"
        );
        Ok(())
    }

    /// Registers an instance and hands it a fresh credential. An agent token bound to
    /// environments registers only into those; a live instance stays in its environment.
    pub async fn register(
        &self,
        actor: &Actor,
        r: RegisterRequest,
    ) -> Result<RegisterResponse, ControlError> {
        if !self.agents.knows_environment(&r.environment) {
            return Err(ControlError::NotFound(format!(
                "no environment {:?}",
                r.environment
            )));
        }
        if !actor.may_act_in(&r.environment) {
            return Err(ControlError::Forbidden(format!(
                "{}'s token is for {}, not {}",
                actor.name,
                actor.environments.join(", "),
                r.environment
            )));
        }
        if r.instance.is_empty() || r.instance.len() > 200 {
            return Err(ControlError::Invalid(
                "instance: 1 to 200 characters".into(),
            ));
        }
        let first = self.agents.fleet.environment_of(&r.instance).is_none();
        let (instance, env) = (r.instance.clone(), r.environment.clone());
        let credential = crate::tokens::secret("ri_");
        let row = crate::store::InstanceRow {
            instance: r.instance.clone(),
            environment: r.environment.clone(),
            zone: r.zone.clone(),
            build: r.build.clone(),
            credential: hex::encode(crate::tokens::digest(&credential)),
            registered_ms: crate::store::now_ms() as i64,
        };
        self.agents
            .fleet
            .register(r, &credential)
            .map_err(|refused| ControlError::Conflict(refused.0))?;
        // Stored, so a replica that takes over knows the instance and its credential.
        self.store.save_instance(&row).await?;
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
            credential,
        })
    }

    /// The instance's environment, if `credential` is the one its registration got.
    fn check(&self, instance: &str, credential: &str) -> Result<String, ControlError> {
        check_instance(&self.agents.fleet, instance, credential)
    }

    /// Answers at once if the desired version differs from `current`; otherwise waits (up to
    /// `wait`) for it to change.
    pub async fn desired(
        &self,
        instance: &str,
        credential: &str,
        current: Option<&str>,
        known_restart: Option<u64>,
        probing: Option<usize>,
        wait: Duration,
    ) -> Result<Desired, ControlError> {
        let env = self.check(instance, credential)?;
        let poll = super::long_poll::Poll {
            env: &env,
            instance,
            current,
            known_restart,
            probing,
            wait,
            until: None,
        };
        super::long_poll::wait_for_desired(&self.agents, &*self.releases, &self.documents, poll)
            .await
    }

    /// Records a report (`via`: the replica that forwarded it, if one did); when every live
    /// instance of the environment runs the desired version, the release succeeded there and
    /// the version becomes its last-known-good.
    pub async fn report(
        &self,
        instance: &str,
        credential: &str,
        r: Report,
        via: Option<&str>,
    ) -> Result<(), ControlError> {
        self.check(instance, credential)?;
        let (env, before) = self.agents.fleet.report(instance, &r).ok_or_else(|| {
            ControlError::NotFound(format!("instance {instance:?} is not registered"))
        })?;
        let replica = via.map(str::to_owned).or_else(|| self.replica.clone());
        let expected = self.releases.instance_desired(&env, instance);
        self.agents.fleet.note_link(instance, replica, expected);
        self.sli.record(self.book.sli_updates(&env, &r));
        for p in &r.problems {
            tracing::warn!(instance, problem = %p, "agent reports a problem");
        }
        if r.applied.is_some() && before != r.applied {
            let data =
                serde_json::json!({ "environment": env, "version": r.applied, "previous": before });
            self.pending_events().push((instance.to_owned(), data));
            // Only a report that changes what an instance runs can complete a release.
            self.check_success(&env).await?;
        }
        Ok(())
    }
}

/// The environment of `instance`, if it is registered in `fleet` and `credential` is the one
/// its registration got.
pub(crate) fn check_instance(
    fleet: &crate::fleet::Fleet,
    instance: &str,
    credential: &str,
) -> Result<String, ControlError> {
    let Some(env) = fleet.environment_of(instance) else {
        return Err(ControlError::NotFound(format!(
            "instance {instance:?} is not registered"
        )));
    };
    if !fleet.verify(instance, credential) {
        return Err(ControlError::Forbidden(format!(
            "that is not {instance:?}'s credential; an agent registers to get its own"
        )));
    }
    Ok(env)
}
