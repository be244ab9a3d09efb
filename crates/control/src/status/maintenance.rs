//! Maintenance windows: scheduled, running (their components under maintenance, their SLO
//! alerts suppressed), completed or cancelled.

use super::*;
use std::sync::Arc;

use crate::error::ControlError;

/// Maintenance windows, as stored; their state follows the clock.
pub struct Maintenances {
    store: crate::store::Store,
    book: Arc<crate::component_book::ComponentBook>,
}

impl Maintenances {
    pub fn new(
        store: crate::store::Store,
        book: Arc<crate::component_book::ComponentBook>,
    ) -> Maintenances {
        Maintenances { store, book }
    }

    pub async fn list(&self) -> Result<Vec<Maintenance>, ControlError> {
        let now = now_ms();
        Ok(self
            .store
            .maintenances()
            .await?
            .into_iter()
            .map(|r| Maintenance {
                id: r.id,
                status: maintenance_status(&r.spec, r.cancelled_at.is_some(), now).into(),
                spec: r.spec,
                created_by: r.created_by,
            })
            .collect())
    }

    /// Components under a maintenance window in progress now.
    pub async fn under_maintenance(&self) -> Result<Vec<String>, ControlError> {
        Ok(self
            .list()
            .await?
            .into_iter()
            .filter(|m| m.status == "in_progress")
            .flat_map(|m| m.spec.components)
            .collect())
    }

    pub async fn schedule(
        &self,
        spec: MaintenanceSpec,
        actor: &str,
    ) -> Result<Maintenance, ControlError> {
        let invalid = |m: String| ControlError::Invalid(m);
        if spec.title.trim().is_empty() {
            return Err(invalid("title: a maintenance needs a title".into()));
        }
        let Some(from) = parse_ms(&spec.scheduled_for) else {
            return Err(invalid(format!(
                "scheduled_for: {:?} is not an RFC 3339 time (e.g. 2026-11-24T22:00:00Z)",
                spec.scheduled_for
            )));
        };
        let Some(until) = parse_ms(&spec.scheduled_until) else {
            return Err(invalid(format!(
                "scheduled_until: {:?} is not an RFC 3339 time",
                spec.scheduled_until
            )));
        };
        if until <= from {
            return Err(invalid(
                "scheduled_until: must be after scheduled_for".into(),
            ));
        }
        if spec.components.is_empty() {
            return Err(invalid(
                "components: name at least one component under maintenance".into(),
            ));
        }
        let known = self.book.names();
        if let Some(c) = spec.components.iter().find(|c| !known.contains(c)) {
            return Err(invalid(format!(
                "components: no component {c:?} (known: {})",
                known.join(", ")
            )));
        }
        let id = self.store.insert_maintenance(&spec, actor).await?;
        self.list()
            .await?
            .into_iter()
            .find(|m| m.id == id)
            .ok_or_else(|| ControlError::NotFound(format!("no maintenance {id}")))
    }

    pub async fn cancel(&self, id: i64, actor: &str) -> Result<(), ControlError> {
        if !self.store.cancel_maintenance(id, actor).await? {
            return Err(ControlError::NotFound(format!(
                "no maintenance {id} to cancel (unknown or already cancelled)"
            )));
        }
        Ok(())
    }
}
