//! SLIs from agent reports, alert evaluation, and incidents that open, advance and resolve
//! themselves. Runs every second next to the release reconciler.
//!
//! Alerts: per component SLO, the Workbook's three burn-rate tiers; per event, a failed gate
//! (ticket), an automatic rollback (page), an instance that stopped reporting (ticket); and
//! whatever Alertmanager forwards. A paging alert opens an incident for its environment or
//! joins the open one. An incident opened by the platform moves to monitoring when the
//! environment is whole again and resolves itself after a quiet period with no active alert.

use std::collections::HashMap;
use std::sync::Mutex;

use rampart_api::{
    ChannelSpec, Component, ComponentSpec, Impact, Incident, IncidentChange, IncidentStatus,
    Severity, Traffic,
};

use std::sync::Arc;

use crate::error::ControlError;
use crate::sli::{component_series, environment_series};
use crate::slo::{Objective, TIERS, firing};
use crate::store::{IncidentSeed, NewAlert};
use crate::store::{NewEvent, now_ms};
use rampart_api::time::parse_ms;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

mod alertmanager;
mod catalogue;
mod incidents;

pub use catalogue::Catalogue;
pub use incidents::Incidents;

/// Evaluates alerts every second (SLO burn rates, silent instances, convergence), fires and
/// resolves them with their notifications, and lets incidents advance.
pub struct Alerting {
    pub(crate) store: crate::store::Store,
    pub(crate) sli: Arc<crate::sli::Sli>,
    pub(crate) book: Arc<crate::component_book::ComponentBook>,
    pub(crate) notify: Arc<crate::notify::NotifySettings>,
    pub(crate) agents: Arc<crate::agents::Agents>,
    pub(crate) releases: Arc<crate::service::Releases>,
    pub(crate) catalogue: Arc<Catalogue>,
    pub(crate) maintenances: Arc<crate::status::Maintenances>,
    pub(crate) incidents: Arc<Incidents>,
}

impl Alerting {
    /// Fires an alert (deduplicated by key); wakes the outbox when it notifies anyone.
    pub(crate) async fn fire(
        &self,
        alert: NewAlert,
        seed: Option<IncidentSeed>,
    ) -> Result<bool, ControlError> {
        let channels = self.catalogue.channel_specs().await?;
        let fired = self
            .store
            .fire_alert(&alert, &channels, seed.as_ref())
            .await?;
        if let Some(a) = &fired {
            tracing::warn!(alert = a.id, key = %a.key, severity = a.severity.as_str(), summary = %a.summary, "alert fired");
            self.notify.wake();
        }
        Ok(fired.is_some())
    }

    pub(crate) async fn resolve(&self, key: &str) -> Result<bool, ControlError> {
        let channels = self.catalogue.channel_specs().await?;
        let resolved = self.store.resolve_alert(key, &channels).await?;
        if let Some(a) = &resolved {
            tracing::info!(alert = a.id, key = %a.key, "alert resolved");
            self.notify.wake();
        }
        Ok(resolved.is_some())
    }

    /// A release the platform rolled back: a ticket for the failed gate, a page for the
    /// rollback, and the incident the page opens.
    pub(crate) async fn automatic_rollback(
        &self,
        release: &crate::store::ReleaseRow,
        reason: &str,
    ) -> Result<(), ControlError> {
        let env = &release.environment;
        let gate = release.gate.clone().unwrap_or_else(|| reason.to_owned());
        let short = release.version.short();
        let data = serde_json::json!({ "environment": env, "release": release.id, "version": release.version, "previous": release.previous, "gate": gate, "reason": reason });
        self.fire(
            NewAlert {
                key: format!("gate:{env}"),
                name: "gate failed".into(),
                severity: Severity::Ticket,
                source: "event",
                summary: format!(
                    "Release {} of {short} failed a gate in {env}: {gate}",
                    release.id
                ),
                data: data.clone(),
            },
            None,
        )
        .await?;
        let components = self.book.in_environment(env);
        let seed = IncidentSeed {
            title: format!(
                "Automatic rollback in {env}: release {} failed its gate",
                release.id
            ),
            status: IncidentStatus::Identified,
            impact: Impact::Minor,
            environment: Some(env.clone()),
            components,
            cause: serde_json::json!({ "release": release.id }),
            started_ms: parse_ms(&release.created_at).unwrap_or_else(now_ms),
            first_event: self.store.release_first_event(release.id).await?,
            body: format!(
                "Release {} of {short} failed its gate ({gate}). rampart is rolling {env} back to {}.",
                release.id,
                release.previous.short()
            ),
        };
        self.fire(
            NewAlert {
                key: format!("rollback:{env}"),
                name: "automatic rollback".into(),
                severity: Severity::Page,
                source: "event",
                summary: format!(
                    "{env}: release {} of {short} rolled back automatically ({gate})",
                    release.id
                ),
                data,
            },
            Some(seed),
        )
        .await?;
        Ok(())
    }

    /// One pass: SLO and event alerts, incidents, convergence events, SLI minutes to disk.
    pub async fn evaluate(&self) -> Result<(), ControlError> {
        let active: HashMap<String, rampart_api::Alert> = self
            .store
            .alerts(true)
            .await?
            .into_iter()
            .map(|a| (a.key.clone(), a))
            .collect();
        self.evaluate_slos(&active).await?;
        self.evaluate_instances(&active).await?;
        self.evaluate_holds(&active).await?;
        let converged = self.incidents.converge().await?;
        for env in &converged {
            for key in [format!("rollback:{env}"), format!("gate:{env}")] {
                if active.contains_key(&key) {
                    self.resolve(&key).await?;
                }
            }
        }
        self.incidents.advance().await?;
        let minutes = self.sli.completed_minutes();
        self.store.save_minutes(&minutes).await?;
        Ok(())
    }

    async fn evaluate_slos(
        &self,
        active: &HashMap<String, rampart_api::Alert>,
    ) -> Result<(), ControlError> {
        let now = now_ms() / 1000;
        let components = self.book.all();
        let maintained = self.maintenances.under_maintenance().await?;
        for (name, spec) in components {
            let Ok(objective) = Objective::percent(spec.slo) else {
                continue;
            };
            let env = self.book.environment_of(&spec).to_owned();
            let series_name = component_series(&name);
            for tier in &TIERS {
                let key = format!("slo:{name}:{}", tier.name);
                let (burning, long, short) = {
                    let series = self.sli.lock();
                    let Some(s) = series.get(&series_name) else {
                        continue;
                    };
                    (
                        firing(s, objective, tier, now),
                        s.window(now, tier.long_secs),
                        s.window(now, tier.short_secs),
                    )
                };
                match (burning, active.contains_key(&key)) {
                    // Maintenance windows suppress new SLO alerts of their components.
                    (true, false) if maintained.contains(&name) => {}
                    (true, false) => {
                        let summary = format!(
                            "{name}: error budget burning {:.1}x over {} and {:.1}x over {} (page at {:.1}x; SLO {}%)",
                            objective.burn_rate(long),
                            human(tier.long_secs),
                            objective.burn_rate(short),
                            human(tier.short_secs),
                            tier.factor_tenths as f64 / 10.0,
                            spec.slo
                        );
                        let seed = IncidentSeed {
                            title: format!("{name} is failing requests"),
                            status: IncidentStatus::Investigating,
                            impact: Impact::Major,
                            environment: Some(env.clone()),
                            components: vec![name.clone()],
                            cause: serde_json::json!({ "slo": name, "tier": tier.name }),
                            started_ms: now_ms().saturating_sub(tier.short_secs * 1000),
                            first_event: None,
                            body: summary.clone(),
                        };
                        let data = serde_json::json!({
                            "component": name, "environment": env, "tier": tier.name,
                            "long": { "window_secs": tier.long_secs, "total": long.total, "failed": long.failed },
                            "short": { "window_secs": tier.short_secs, "total": short.total, "failed": short.failed },
                        });
                        self.fire(
                            NewAlert {
                                key,
                                name: format!("SLO {}", tier.name),
                                severity: tier.severity,
                                source: "slo",
                                summary,
                                data,
                            },
                            Some(seed),
                        )
                        .await?;
                    }
                    (false, true) => {
                        self.resolve(&key).await?;
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    async fn evaluate_instances(
        &self,
        active: &HashMap<String, rampart_api::Alert>,
    ) -> Result<(), ControlError> {
        for env in self.catalogue.environments.iter() {
            for i in self.agents.fleet.all(env) {
                let key = format!("instance:{}", i.registration.instance);
                let silent = i.last_seen.elapsed() >= crate::fleet::STALE_AFTER;
                match (silent, active.contains_key(&key)) {
                    (true, false) => {
                        self.fire(
                            NewAlert {
                                key,
                                name: "instance stopped reporting".into(),
                                severity: Severity::Ticket,
                                source: "event",
                                summary: format!(
                                    "{} in {env} has not reported for {}s",
                                    i.registration.instance,
                                    i.last_seen.elapsed().as_secs()
                                ),
                                data: serde_json::json!({ "instance": i.registration.instance, "environment": env }),
                            },
                            None,
                        )
                        .await?;
                    }
                    (false, true) => {
                        self.resolve(&key).await?;
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }
}

impl Alerting {
    /// A release its policy holds for a person (`on_inconclusive: hold` past its deadline)
    /// raises a ticket; it resolves when the release moves on or ends.
    async fn evaluate_holds(
        &self,
        active: &HashMap<String, rampart_api::Alert>,
    ) -> Result<(), ControlError> {
        let statuses = self.releases.statuses();
        for env in self.catalogue.environments.iter() {
            let key = format!("held:{env}");
            let held = statuses.iter().find(|r| {
                r.environment == *env
                    && r.reason
                        .as_deref()
                        .is_some_and(|why| why.contains("waiting for a person"))
            });
            match (held, active.contains_key(&key)) {
                (Some(r), false) => {
                    let why = r.reason.clone().unwrap_or_default();
                    let summary = format!(
                        "Release {} of {} in {env} is held: {why}. Decide with `rampart rollout promote|skip|abort {}`",
                        r.id,
                        r.version.short(),
                        r.id
                    );
                    let data =
                        serde_json::json!({ "environment": env, "release": r.id, "reason": why });
                    let alert = NewAlert {
                        key,
                        name: "release held".into(),
                        severity: Severity::Ticket,
                        source: "event",
                        summary,
                        data,
                    };
                    self.fire(alert, None).await?;
                }
                (None, true) => {
                    self.resolve(&key).await?;
                }
                _ => {}
            }
        }
        Ok(())
    }
}

fn human(secs: u64) -> String {
    match secs {
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}
