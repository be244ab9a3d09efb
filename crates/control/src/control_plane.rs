//! The control plane as a composition: `open_with` opens the store and builds each part once,
//! in dependency order, handing each the parts it uses; what crosses parts in one step (a
//! reconciler pass, an evaluation round, the outbox) is the few methods here.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::error::ControlError;
use crate::service::{AgentProtocol, Pipeline, Policies, Releases, Restarts, Settings};
use crate::store::Store;

/// The control plane: its parts, each owning its state, wired together once by `open_with`.
/// Dependencies between parts go one way (see ARCHITECTURE.md); what crosses parts in one step
/// (a reconciler pass, an evaluation round) is the few methods below.
pub struct ControlPlane {
    store: Store,
    /// The fleet, desired versions, long-poll wake-ups and restart generations.
    pub agents: Arc<crate::agents::Agents>,
    /// Releases in waves as the reconciler drives them.
    pub releases: Arc<Releases>,
    /// Each environment's rollout policy, every revision kept.
    pub policies: Arc<Policies>,
    /// Versions, deploys in pipeline order, approvals, rollback.
    pub pipeline: Pipeline,
    /// Registration, the desired-version long-poll, reports.
    pub agent_protocol: AgentProtocol,
    /// Rolling restarts.
    pub restarts: Restarts,
    /// Components and notification channels.
    pub catalogue: Arc<crate::alerting::Catalogue>,
    pub maintenances: Arc<crate::status::Maintenances>,
    pub incidents: Arc<crate::alerting::Incidents>,
    pub alerting: crate::alerting::Alerting,
    /// The public status page's snapshot, name and address.
    pub status_page: Arc<crate::status::StatusPage>,
    pub subscribers: Arc<crate::status::Subscribers>,
    /// How notifications are delivered (the outbox sender reads it).
    pub notify: Arc<crate::notify::NotifySettings>,
    /// Notification hosts' resolver (deadline-bound), shared by subscribing and delivery.
    resolver: rampart_net::Resolver,
    /// How often the reconciler evaluates releases.
    tick: Duration,
    /// The listener's limits.
    limits: crate::listener::Limits,
}

impl ControlPlane {
    /// Opens the store in `data` and creates the pipeline's environments, in order, with the
    /// default settings.
    pub async fn open(data: &Path, environments: &[String]) -> Result<ControlPlane, ControlError> {
        Self::open_with(data, environments, Settings::default()).await
    }

    /// Opens the store and builds the parts, each from what the store holds (active releases
    /// and rolling restarts resume where they were).
    pub async fn open_with(
        data: &Path,
        environments: &[String],
        settings: Settings,
    ) -> Result<ControlPlane, ControlError> {
        if environments.is_empty() {
            return Err(ControlError::Invalid(
                "at least one environment is required".into(),
            ));
        }
        let store = match &settings.database {
            Some(url) => Store::connect(url).await?,
            None => Store::open(data).await?,
        };
        // A replica leading under an epoch writes nothing once it is superseded, from the
        // first write on.
        store.fence(settings.fence);
        store.ensure_environments(environments).await?;
        let envs = store.environments().await?;
        let names: Arc<[String]> = envs.iter().map(|e| e.name.clone()).collect();
        let last = envs
            .iter()
            .max_by_key(|e| e.position)
            .map(|e| e.name.clone())
            .unwrap_or_default();
        let agents = Arc::new(crate::agents::Agents::new(
            &envs,
            store.restart_generations().await?,
        ));
        // Instances registered lately are known at once (a takeover, a restart): their
        // credentials hold, and a fleet does not register again all together.
        agents.restore_registrations(&store).await?;
        // Notifications and Prometheus gates resolve hosts with the deadline-bound resolver;
        // without one nothing starts.
        let resolver = rampart_net::Resolver::new(&settings.notify.resolver)
            .map_err(|e| ControlError::Invalid(format!("DNS resolver: {e}")))?;
        let policies = Arc::new(Policies::new(
            store.clone(),
            settings.plan,
            last,
            names.clone(),
        ));
        let asker = Arc::new(crate::prometheus::Asker::new(&resolver));
        let releases =
            Arc::new(Releases::load(store.clone(), agents.clone(), policies.clone(), asker).await?);
        let sli = Arc::new(crate::sli::Sli::load(&store).await?);
        let book =
            Arc::new(crate::component_book::ComponentBook::load(&store, environments).await?);
        let notify = Arc::new(settings.notify);
        let maintenances = Arc::new(crate::status::Maintenances::new(
            store.clone(),
            book.clone(),
        ));
        let catalogue = Arc::new(crate::alerting::Catalogue {
            store: store.clone(),
            book: book.clone(),
            environments: names.clone(),
            maintenances: maintenances.clone(),
        });
        let incidents = Arc::new(crate::alerting::Incidents {
            store: store.clone(),
            convergence: crate::convergence::Convergence::new(settings.incident_quiet),
            book: book.clone(),
            sli: sli.clone(),
            agents: agents.clone(),
            releases: releases.clone(),
            environments: names.clone(),
        });
        let status_page = Arc::new(crate::status::StatusPage {
            store: store.clone(),
            page: page_state(&settings.page_name, settings.public_url.as_deref()),
            sli: sli.clone(),
            catalogue: catalogue.clone(),
            incidents: incidents.clone(),
            maintenances: maintenances.clone(),
        });
        Ok(ControlPlane {
            pipeline: Pipeline::new(store.clone(), agents.clone(), releases.clone(), &envs),
            agent_protocol: AgentProtocol::new(
                store.clone(),
                agents.clone(),
                releases.clone(),
                sli.clone(),
                book.clone(),
                &envs,
                settings.replica_name.clone(),
            ),
            restarts: Restarts::load(
                store.clone(),
                agents.clone(),
                releases.clone(),
                names.clone(),
            )
            .await?,
            alerting: crate::alerting::Alerting {
                store: store.clone(),
                sli,
                book,
                notify: notify.clone(),
                agents: agents.clone(),
                releases: releases.clone(),
                catalogue: catalogue.clone(),
                maintenances: maintenances.clone(),
                incidents: incidents.clone(),
            },
            subscribers: Arc::new(crate::status::Subscribers {
                store: store.clone(),
                notify: notify.clone(),
                status_page: status_page.clone(),
                incidents: incidents.clone(),
                resolver: resolver.clone(),
            }),
            store,
            agents,
            releases,
            policies,
            catalogue,
            maintenances,
            incidents,
            status_page,
            notify,
            resolver,
            tick: settings.tick,
            limits: settings.limits,
        })
    }

    pub fn tick(&self) -> Duration {
        self.tick
    }

    pub fn limits(&self) -> crate::listener::Limits {
        self.limits
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The public page's state (name, address, snapshot).
    pub fn page(&self) -> &crate::status::PageState {
        &self.status_page.page
    }

    pub fn resolver(&self) -> &rampart_net::Resolver {
        &self.resolver
    }

    /// The outbox's sender.
    pub fn notifier(&self) -> crate::notify::Notifier {
        crate::notify::Notifier {
            store: self.store.clone(),
            settings: self.notify.clone(),
            subscribers: self.subscribers.clone(),
        }
    }

    /// One reconciler pass: reports' applies stored and completed releases recorded, rolling
    /// restarts take their next step, every active release its
    /// planner step; a release the control plane rolled back raises its alerts and incident.
    pub async fn reconcile(&self) -> Result<(), ControlError> {
        // Reports' applies are stored (and releases that they completed recorded) first, so
        // every step below reads and writes after them.
        self.agent_protocol.check_successes().await?;
        self.restarts.drive().await?;
        for ended in self.releases.reconcile().await? {
            self.alerting
                .automatic_rollback(&ended.release, &ended.reason)
                .await?;
        }
        Ok(())
    }

    /// One evaluation round of alerts and incidents.
    pub async fn evaluate(&self) -> Result<(), ControlError> {
        self.alerting.evaluate().await
    }
}

/// The page's name, and its public address when one is set (else the listener's, at serve).
fn page_state(name: &str, public_url: Option<&str>) -> crate::status::PageState {
    let page = crate::status::PageState::new(name);
    if let Some(url) = public_url {
        page.set_public_url(url);
    }
    page
}
