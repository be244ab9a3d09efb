//! What alerts are about and where they go: status-page components (with their SLOs) and
//! notification channels.

use super::*;

/// The components the status page shows (and SLOs are kept for), and the notification channels.
pub struct Catalogue {
    pub(crate) store: crate::store::Store,
    pub(crate) book: Arc<crate::component_book::ComponentBook>,
    /// The pipeline's environments, in order.
    pub(crate) environments: Arc<[String]>,
    pub(crate) maintenances: Arc<crate::status::Maintenances>,
}

impl Catalogue {
    pub(crate) async fn channel_specs(&self) -> Result<Vec<(String, ChannelSpec)>, ControlError> {
        Ok(self
            .store
            .channels()
            .await?
            .into_iter()
            .map(|(n, s, _, _)| (n, s))
            .collect())
    }

    pub async fn put_component(
        &self,
        name: &str,
        spec: ComponentSpec,
    ) -> Result<Component, ControlError> {
        if name.trim().is_empty() || name.len() > 100 {
            return Err(ControlError::Invalid(
                "name: a component needs a name of 1 to 100 characters".into(),
            ));
        }
        Objective::percent(spec.slo).map_err(|e| ControlError::Invalid(format!("slo: {e}")))?;
        if let Some(env) = &spec.environment
            && !self.environments.contains(env)
        {
            return Err(ControlError::Invalid(format!(
                "environment: no environment {env:?} (known: {})",
                self.environments.join(", ")
            )));
        }
        self.store.put_component(name, &spec).await?;
        self.book.replace(self.store.components().await?);
        self.components()
            .await?
            .into_iter()
            .find(|c| c.name == name)
            .ok_or_else(|| ControlError::NotFound(format!("no component {name:?}")))
    }

    pub async fn delete_component(&self, name: &str, actor: &str) -> Result<(), ControlError> {
        if !self.store.delete_component(name, actor).await? {
            return Err(ControlError::NotFound(format!("no component {name:?}")));
        }
        self.book.replace(self.store.components().await?);
        Ok(())
    }

    /// Components with their status: a page about one is a major outage, a ticket degraded
    /// performance, an open incident naming it a partial outage.
    pub async fn components(&self) -> Result<Vec<Component>, ControlError> {
        let alerts = self.store.alerts(true).await?;
        let mut open = vec![];
        for id in self.store.incident_ids(true, 500).await? {
            if let Some(i) = self.store.incident(id).await? {
                open.extend(i.components);
            }
        }
        let specs = self.book.all();
        let maintained = self.maintenances.under_maintenance().await?;
        Ok(specs
            .into_iter()
            .map(|(name, spec)| {
                let about = |a: &&rampart_api::Alert| {
                    a.data.get("component").and_then(|c| c.as_str()) == Some(name.as_str())
                };
                let worst = alerts.iter().filter(about).map(|a| a.severity).max();
                let status = match worst {
                    Some(Severity::Page) => "major_outage",
                    Some(Severity::Ticket) => "degraded_performance",
                    None if maintained.contains(&name) => "under_maintenance",
                    None if open.contains(&name) => "partial_outage",
                    None => "operational",
                };
                Component {
                    name,
                    spec,
                    status: status.into(),
                }
            })
            .collect())
    }

    pub async fn put_channel(
        &self,
        name: &str,
        spec: ChannelSpec,
        actor: &str,
    ) -> Result<rampart_api::Channel, ControlError> {
        if name.trim().is_empty() || name.len() > 100 {
            return Err(ControlError::Invalid(
                "name: a channel needs a name of 1 to 100 characters".into(),
            ));
        }
        crate::notify::validate(&spec).map_err(ControlError::Invalid)?;
        self.store.put_channel(name, &spec, actor).await?;
        self.channels()
            .await?
            .into_iter()
            .find(|c| c.name == name)
            .ok_or_else(|| ControlError::NotFound(format!("no channel {name:?}")))
    }

    /// Channels, secrets left out.
    pub async fn channels(&self) -> Result<Vec<rampart_api::Channel>, ControlError> {
        Ok(self
            .store
            .channels()
            .await?
            .into_iter()
            .map(|(name, mut spec, pending, failed)| {
                if spec.secret.is_some() {
                    spec.secret = Some("(set)".into());
                }
                if spec.routing_key.is_some() {
                    spec.routing_key = Some("(set)".into());
                }
                rampart_api::Channel {
                    name,
                    spec,
                    pending,
                    failed,
                }
            })
            .collect())
    }
}
