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
use std::time::Duration;

use rampart_api::{
    ChannelSpec, Component, ComponentSpec, Impact, Incident, IncidentChange, IncidentStatus,
    Report, Severity, Traffic,
};

use crate::notify::Backoff;
use crate::records::{IncidentSeed, NewAlert};
use crate::service::{ControlError, ControlPlane};
use crate::slo::{Counts, Objective, Series, TIERS, firing};
use crate::store::{NewEvent, Store, StoreError, now_ms};
use rampart_api::time::parse_ms;

/// Series of an environment's whole traffic.
pub fn environment_series(env: &str) -> String {
    format!("environment:{env}")
}

/// Series of one component.
pub fn component_series(name: &str) -> String {
    format!("component:{name}")
}

/// Operations settings and in-memory state of a control plane.
pub struct Ops {
    series: Mutex<HashMap<String, Series>>,
    /// Last minute written to the store, per series.
    flushed: Mutex<HashMap<String, u64>>,
    components: Mutex<Vec<(String, ComponentSpec)>>,
    /// The version each environment last converged on (every live instance runs it).
    converged: Mutex<HashMap<String, Option<rampart_api::VersionId>>>,
    last_environment: String,
    pub(crate) outbox_wake: tokio::sync::Notify,
    pub(crate) backoff: Backoff,
    pub(crate) notify_timeout: Duration,
    /// How notification hosts are resolved: `rampart-net`'s resolver (hickory, deadlines,
    /// negative caching), never the system's blocking `getaddrinfo`.
    pub(crate) notify_resolver: rampart_model::ResolverConfig,
    /// How long a platform-opened incident stays in monitoring, alerts all resolved, before it
    /// resolves itself.
    pub(crate) quiet: Duration,
    /// The status page's title.
    pub(crate) page_name: String,
    /// The SMTP relay subscriber emails go through (`smtp://host:port`).
    pub(crate) smtp: String,
    /// A PEM certificate SMTP relays may chain to (a private CA), besides the web's roots.
    pub(crate) smtp_ca: Option<std::sync::Arc<Vec<u8>>>,
    /// The status page's last snapshot: a stampede of page views reads the database once a second.
    pub(crate) snapshot:
        Mutex<Option<(std::time::Instant, std::sync::Arc<crate::status::Snapshot>)>>,
    /// Held by the one request re-reading the snapshot.
    pub(crate) snapshot_refresh: tokio::sync::Mutex<()>,
    /// Snapshots read from the store so far.
    pub(crate) snapshot_reads: std::sync::atomic::AtomicU64,
    /// Base URL of the page and API as users reach them (set once; defaults to the listener).
    public_url: std::sync::OnceLock<String>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Ops {
    pub async fn load(store: &Store, environments: &[String]) -> Result<Ops, StoreError> {
        let mut series = HashMap::new();
        let mut flushed = HashMap::new();
        for (name, points) in store.load_minutes().await? {
            if let Some(last) = points.last() {
                flushed.insert(name.clone(), last.0);
            }
            series.insert(name, Series::from_minutes(points));
        }
        Ok(Ops {
            series: Mutex::new(series),
            flushed: Mutex::new(flushed),
            components: Mutex::new(store.components().await?),
            converged: Mutex::new(HashMap::new()),
            last_environment: environments.last().cloned().unwrap_or_default(),
            outbox_wake: tokio::sync::Notify::new(),
            backoff: Backoff::default(),
            notify_timeout: Duration::from_secs(5),
            notify_resolver: rampart_model::ResolverConfig::default(),
            quiet: Duration::from_secs(300),
            page_name: "rampart status".into(),
            smtp: "smtp://127.0.0.1:25".into(),
            smtp_ca: None,
            snapshot: Mutex::new(None),
            snapshot_refresh: tokio::sync::Mutex::new(()),
            snapshot_reads: std::sync::atomic::AtomicU64::new(0),
            public_url: std::sync::OnceLock::new(),
        })
    }

    /// Sets the public URL unless one is set already.
    pub fn set_public_url(&self, url: &str) {
        let _ = self.public_url.set(url.trim_end_matches('/').to_owned());
    }

    pub fn public_url(&self) -> String {
        self.public_url.get().cloned().unwrap_or_default()
    }

    pub fn smtp_url(&self) -> String {
        self.smtp.clone()
    }

    fn component_environment<'a>(&'a self, spec: &'a ComponentSpec) -> &'a str {
        spec.environment
            .as_deref()
            .unwrap_or(&self.last_environment)
    }

    /// Books one report into the environment's series and its components' series.
    pub fn record(&self, env: &str, r: &Report) {
        let sec = now_ms() / 1000;
        let counts = |classes: &[u64; 5]| Counts {
            total: classes.iter().sum(),
            failed: classes[4],
        };
        let mut updates = vec![(environment_series(env), counts(&r.requests))];
        for (name, spec) in lock(&self.components).iter() {
            if self.component_environment(spec) != env {
                continue;
            }
            let c = if spec.routes.is_empty() {
                counts(&r.requests)
            } else {
                r.routes
                    .iter()
                    .filter(|(route, _)| spec.routes.contains(route))
                    .fold(Counts::default(), |acc, (_, classes)| {
                        let c = counts(classes);
                        Counts {
                            total: acc.total + c.total,
                            failed: acc.failed + c.failed,
                        }
                    })
            };
            updates.push((component_series(name), c));
        }
        let mut series = lock(&self.series);
        for (name, c) in updates {
            series.entry(name).or_default().record(sec, c);
        }
    }

    /// Requests of `series` from `from_ms` to now.
    pub fn traffic_since(&self, series: &str, from_ms: u64) -> Traffic {
        let now = now_ms() / 1000;
        let from = from_ms / 1000;
        let c = lock(&self.series)
            .get(series)
            .map(|s| s.window(now, now.saturating_sub(from) + 1))
            .unwrap_or_default();
        Traffic {
            failed: c.failed,
            total: c.total,
        }
    }

    /// Requests of `series` over the last `secs` seconds.
    pub fn window(&self, series: &str, secs: u64) -> Counts {
        let now = now_ms() / 1000;
        lock(&self.series)
            .get(series)
            .map(|s| s.window(now, secs))
            .unwrap_or_default()
    }

    /// Daily (total, failed) of `series` for the last `days` days, oldest first.
    pub fn daily(&self, series: &str, days: u64) -> Vec<Counts> {
        let now = now_ms() / 1000;
        let today_end = (now / 86_400 + 1) * 86_400 - 1;
        let all = lock(&self.series);
        let Some(s) = all.get(series) else {
            return vec![Counts::default(); days as usize];
        };
        (0..days)
            .rev()
            .map(|back| {
                let end = today_end - back * 86_400;
                if end > now {
                    s.window(now, now - (end - 86_399) + 1)
                } else {
                    s.window(end, 86_400)
                }
            })
            .collect()
    }

    fn completed_minutes(&self) -> Vec<(String, u64, Counts)> {
        let now = now_ms() / 1000;
        let series = lock(&self.series);
        let mut flushed = lock(&self.flushed);
        let mut out = vec![];
        for (name, s) in series.iter() {
            let done = s.minutes_since(flushed.get(name).copied(), now);
            if let Some(last) = done.last() {
                flushed.insert(name.clone(), last.0);
            }
            out.extend(done.into_iter().map(|(m, c)| (name.clone(), m, c)));
        }
        out
    }
}

impl ControlPlane {
    pub fn with_incident_quiet(mut self, quiet: Duration) -> ControlPlane {
        self.ops.quiet = quiet;
        self
    }

    /// The SMTP relay for subscriber emails: `smtp://` (STARTTLS when offered),
    /// `smtp+starttls://` (STARTTLS required) or `smtps://` (TLS from the start); checked here, so
    /// a bad URL is refused at start, not at the first email.
    pub fn with_smtp(mut self, url: &str) -> Result<ControlPlane, String> {
        crate::notify::SmtpTarget::parse(url)?;
        self.ops.smtp = url.to_owned();
        Ok(self)
    }

    /// Trusts SMTP relays whose certificates chain to this PEM certificate (besides the web's
    /// roots); checked here so a bad file is refused at start, not at the first email.
    pub fn with_smtp_ca(mut self, pem: Vec<u8>) -> Result<ControlPlane, String> {
        check_ca_pem(&pem)?;
        self.ops.smtp_ca = Some(std::sync::Arc::new(pem));
        Ok(self)
    }

    pub(crate) fn smtp_ca(&self) -> Option<std::sync::Arc<Vec<u8>>> {
        self.ops.smtp_ca.clone()
    }

    /// The base URL users reach the page and API at (links in feeds and notifications).
    pub fn with_public_url(self, url: &str) -> ControlPlane {
        self.ops.set_public_url(url);
        self
    }

    pub fn with_page_name(mut self, name: &str) -> ControlPlane {
        self.ops.page_name = name.to_owned();
        self
    }

    pub fn with_backoff(mut self, backoff: Backoff) -> ControlPlane {
        self.ops.backoff = backoff;
        self
    }

    pub(crate) fn backoff(&self) -> Backoff {
        self.ops.backoff
    }

    pub(crate) fn notify_timeout(&self) -> Duration {
        self.ops.notify_timeout
    }

    /// Where notification hosts are looked up (default: the system's nameservers, through
    /// `rampart-net`'s resolver with the default deadlines).
    pub fn with_notify_resolver(mut self, resolver: rampart_model::ResolverConfig) -> ControlPlane {
        self.ops.notify_resolver = resolver;
        self
    }

    pub(crate) fn notify_resolver(&self) -> &rampart_model::ResolverConfig {
        &self.ops.notify_resolver
    }

    pub(crate) fn outbox_wake(&self) -> &tokio::sync::Notify {
        &self.ops.outbox_wake
    }

    pub fn ops(&self) -> &Ops {
        &self.ops
    }

    async fn channel_specs(&self) -> Result<Vec<(String, ChannelSpec)>, ControlError> {
        Ok(self
            .store()
            .channels()
            .await?
            .into_iter()
            .map(|(n, s, _, _)| (n, s))
            .collect())
    }

    /// Fires an alert (deduplicated by key); wakes the outbox when it notifies anyone.
    pub(crate) async fn fire(
        &self,
        alert: NewAlert,
        seed: Option<IncidentSeed>,
    ) -> Result<bool, ControlError> {
        let channels = self.channel_specs().await?;
        let fired = self
            .store()
            .fire_alert(&alert, &channels, seed.as_ref())
            .await?;
        if let Some(a) = &fired {
            tracing::warn!(alert = a.id, key = %a.key, severity = a.severity.as_str(), summary = %a.summary, "alert fired");
            self.ops.outbox_wake.notify_one();
        }
        Ok(fired.is_some())
    }

    pub(crate) async fn resolve(&self, key: &str) -> Result<bool, ControlError> {
        let channels = self.channel_specs().await?;
        let resolved = self.store().resolve_alert(key, &channels).await?;
        if let Some(a) = &resolved {
            tracing::info!(alert = a.id, key = %a.key, "alert resolved");
            self.ops.outbox_wake.notify_one();
        }
        Ok(resolved.is_some())
    }

    /// A release the platform rolled back: a ticket for the failed gate, a page for the
    /// rollback, and the incident the page opens.
    pub(crate) async fn automatic_rollback_alerts(
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
        let components: Vec<String> = lock(&self.ops.components)
            .iter()
            .filter(|(_, s)| self.ops.component_environment(s) == env)
            .map(|(n, _)| n.clone())
            .collect();
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
            first_event: self.store().release_first_event(release.id).await?,
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
            .store()
            .alerts(true)
            .await?
            .into_iter()
            .map(|a| (a.key.clone(), a))
            .collect();
        self.evaluate_slos(&active).await?;
        self.evaluate_instances(&active).await?;
        let converged = self.evaluate_convergence().await?;
        for env in &converged {
            for key in [format!("rollback:{env}"), format!("gate:{env}")] {
                if active.contains_key(&key) {
                    self.resolve(&key).await?;
                }
            }
        }
        self.advance_incidents().await?;
        let minutes = self.ops.completed_minutes();
        self.store().save_minutes(&minutes).await?;
        Ok(())
    }

    async fn evaluate_slos(
        &self,
        active: &HashMap<String, rampart_api::Alert>,
    ) -> Result<(), ControlError> {
        let now = now_ms() / 1000;
        let components = lock(&self.ops.components).clone();
        let maintained = self.under_maintenance().await?;
        for (name, spec) in components {
            let Ok(objective) = Objective::percent(spec.slo) else {
                continue;
            };
            let env = self.ops.component_environment(&spec).to_owned();
            let series_name = component_series(&name);
            for tier in &TIERS {
                let key = format!("slo:{name}:{}", tier.name);
                let (burning, long, short) = {
                    let series = lock(&self.ops.series);
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
        for env in self.environment_names() {
            for i in self.fleet_all(&env) {
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

    /// Environments whose live instances all run the desired version; records the moment each
    /// one converges on a new version. Returns the converged environments.
    async fn evaluate_convergence(&self) -> Result<Vec<String>, ControlError> {
        let mut out = vec![];
        for env in self.environment_names() {
            let desired = self.desired_version(&env);
            let live = self.fleet_live(&env);
            let whole = desired.is_some()
                && !live.is_empty()
                && live.iter().all(|i| i.applied == desired)
                && !self.release_active(&env);
            if !whole {
                // Forget the last convergence, so becoming whole again (after a rollback, on the
                // same version) is recorded too.
                lock(&self.ops.converged).remove(&env);
                continue;
            }
            out.push(env.clone());
            let changed = {
                let mut c = lock(&self.ops.converged);
                let before = c.insert(env.clone(), desired.clone());
                before != Some(desired.clone())
            };
            if changed {
                self.store()
                    .append_event(&NewEvent {
                        kind: "environment.converged",
                        subject: &env,
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
    async fn advance_incidents(&self) -> Result<(), ControlError> {
        let active = self.store().alerts(true).await?;
        for id in self.store().incident_ids(true, 500).await? {
            let Some(incident) = self.store().incident(id).await? else {
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
            let whole = lock(&self.ops.converged)
                .get(&env)
                .is_some_and(|v| v.is_some())
                && !self.release_active(&env);
            match incident.status {
                IncidentStatus::Investigating | IncidentStatus::Identified if whole => {
                    let version = lock(&self.ops.converged).get(&env).cloned().flatten();
                    let body = format!(
                        "{env} is whole again: every instance runs {}. Its alerts resolved; watching for {}s before resolving.",
                        version.as_ref().map_or("?", |v| v.short()),
                        self.ops.quiet.as_secs()
                    );
                    self.change_incident(
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
                    if now_ms().saturating_sub(since) >= self.ops.quiet.as_millis() as u64 {
                        let body = format!(
                            "Resolved: no alert for {}s and {env} stayed whole.",
                            self.ops.quiet.as_secs()
                        );
                        self.change_incident(
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
    pub async fn incident_traffic(&self, incident: &Incident) -> Result<Traffic, ControlError> {
        if incident.resolved_at.is_some() {
            return Ok(incident.traffic);
        }
        let Some(env) = &incident.environment else {
            return Ok(Traffic::default());
        };
        let started = self
            .store()
            .incident_started_ms(incident.id)
            .await?
            .unwrap_or_else(now_ms);
        Ok(self.ops.traffic_since(&environment_series(env), started))
    }

    /// Changes an incident (status, note, narrative); a resolution freezes its traffic.
    pub async fn change_incident(
        &self,
        id: i64,
        change: IncidentChange,
        actor: &str,
    ) -> Result<Incident, ControlError> {
        let incident = self.incident(id).await?;
        if incident.status == IncidentStatus::Resolved && change.status.is_some() {
            return Err(ControlError::Conflict(format!(
                "incident {id} is resolved; open a new one"
            )));
        }
        let traffic = if change.status == Some(IncidentStatus::Resolved) {
            Some(self.incident_traffic(&incident).await?)
        } else {
            None
        };
        self.store()
            .change_incident(id, &change, traffic, actor)
            .await?;
        self.incident(id).await
    }

    pub async fn incident(&self, id: i64) -> Result<Incident, ControlError> {
        let mut incident = self
            .store()
            .incident(id)
            .await?
            .ok_or_else(|| ControlError::NotFound(format!("no incident {id}")))?;
        incident.traffic = self.incident_traffic(&incident).await?;
        Ok(incident)
    }

    /// The latest 500 incidents, newest first.
    pub async fn incidents(&self) -> Result<Vec<Incident>, ControlError> {
        self.recent_incidents(500).await
    }

    pub async fn recent_incidents(&self, limit: i64) -> Result<Vec<Incident>, ControlError> {
        let mut out = vec![];
        for id in self.store().incident_ids(false, limit).await? {
            out.push(self.incident(id).await?);
        }
        Ok(out)
    }

    pub async fn open_incident(
        &self,
        new: rampart_api::NewIncident,
        actor: &str,
    ) -> Result<Incident, ControlError> {
        if new.title.trim().is_empty() {
            return Err(ControlError::Invalid(
                "title: an incident needs a title".into(),
            ));
        }
        let known: Vec<String> = lock(&self.ops.components)
            .iter()
            .map(|c| c.0.clone())
            .collect();
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
                .or_else(|| Some(self.ops.last_environment.clone())),
            components: new.components,
            cause: serde_json::json!({ "by": actor }),
            started_ms: now_ms(),
            first_event: None,
            body: new.body,
        };
        let id = self.store().open_incident(&seed, actor).await?;
        self.incident(id).await
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
            && !self.environment_names().contains(env)
        {
            return Err(ControlError::Invalid(format!(
                "environment: no environment {env:?} (known: {})",
                self.environment_names().join(", ")
            )));
        }
        self.store().put_component(name, &spec).await?;
        *lock(&self.ops.components) = self.store().components().await?;
        self.components()
            .await?
            .into_iter()
            .find(|c| c.name == name)
            .ok_or_else(|| ControlError::NotFound(format!("no component {name:?}")))
    }

    pub async fn delete_component(&self, name: &str, actor: &str) -> Result<(), ControlError> {
        if !self.store().delete_component(name, actor).await? {
            return Err(ControlError::NotFound(format!("no component {name:?}")));
        }
        *lock(&self.ops.components) = self.store().components().await?;
        Ok(())
    }

    /// Components with their status: a page about one is a major outage, a ticket degraded
    /// performance, an open incident naming it a partial outage.
    pub async fn components(&self) -> Result<Vec<Component>, ControlError> {
        let alerts = self.store().alerts(true).await?;
        let mut open = vec![];
        for id in self.store().incident_ids(true, 500).await? {
            if let Some(i) = self.store().incident(id).await? {
                open.extend(i.components);
            }
        }
        let specs = lock(&self.ops.components).clone();
        let maintained = self.under_maintenance().await?;
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
        self.store().put_channel(name, &spec, actor).await?;
        self.channels()
            .await?
            .into_iter()
            .find(|c| c.name == name)
            .ok_or_else(|| ControlError::NotFound(format!("no channel {name:?}")))
    }

    /// Channels, secrets left out.
    pub async fn channels(&self) -> Result<Vec<rampart_api::Channel>, ControlError> {
        Ok(self
            .store()
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

    /// Alerts from Alertmanager's webhook (version 4): firing ones fire, resolved ones resolve,
    /// keyed by fingerprint. `severity` label critical or page pages; anything else is a ticket.
    pub async fn alertmanager(&self, payload: serde_json::Value) -> Result<usize, ControlError> {
        let alerts = payload
            .get("alerts")
            .and_then(|a| a.as_array())
            .ok_or_else(|| {
                ControlError::Invalid(
                    "alerts: expected Alertmanager's webhook payload with an \"alerts\" list"
                        .into(),
                )
            })?;
        // Every alert is checked before any is applied: a bad payload changes nothing.
        let mut actions: Vec<(NewAlert, Option<IncidentSeed>)> = vec![];
        let mut resolutions: Vec<String> = vec![];
        for (i, a) in alerts.iter().enumerate() {
            match am_alert(i, a, &self.ops.last_environment).map_err(ControlError::Invalid)? {
                AmAlert::Fire(fire) => actions.push((fire.0, Some(fire.1))),
                AmAlert::Resolve(key) => resolutions.push(key),
            }
        }
        let maintained = self.under_maintenance().await?;
        actions.retain(|(a, _)| {
            let component = a.data.get("component").and_then(|c| c.as_str());
            !component.is_some_and(|c| maintained.iter().any(|m| m == c))
        });
        let mut changed = 0;
        for (alert, seed) in actions {
            changed += usize::from(self.fire(alert, seed).await?);
        }
        for key in resolutions {
            changed += usize::from(self.resolve(&key).await?);
        }
        Ok(changed)
    }
}

/// One alert of an Alertmanager payload, read.
enum AmAlert {
    Fire(Box<(NewAlert, IncidentSeed)>),
    Resolve(String),
}

/// Reads the `i`th alert of a payload: what is wrong with it says where.
fn am_alert(i: usize, a: &serde_json::Value, environment: &str) -> Result<AmAlert, String> {
    let shape = if !a.is_object() {
        Some(("", "an object"))
    } else if !a.get("labels").is_some_and(|l| l.is_object()) {
        Some((".labels", "an object of labels"))
    } else if a.get("annotations").is_some_and(|n| !n.is_object()) {
        Some((".annotations", "an object"))
    } else if a.get("fingerprint").is_some_and(|f| !f.is_string()) {
        Some((".fingerprint", "a string"))
    } else {
        None
    };
    if let Some((field, want)) = shape {
        return Err(format!("alerts[{i}]{field}: expected {want}"));
    }
    let labels = a.get("labels").cloned().unwrap_or_default();
    let label = |k: &str| labels.get(k).and_then(|v| v.as_str()).unwrap_or_default();
    let name = label("alertname");
    if name.is_empty() {
        return Err(format!(
            "alerts[{i}].labels.alertname: every alert needs a name"
        ));
    }
    let fingerprint = a
        .get("fingerprint")
        .and_then(|f| f.as_str())
        .map(str::to_owned)
        .unwrap_or_else(|| labels.to_string());
    let key = format!("alertmanager:{fingerprint}");
    match a.get("status").and_then(|s| s.as_str()) {
        Some("firing") => {
            let severity = match label("severity") {
                "critical" | "page" => Severity::Page,
                _ => Severity::Ticket,
            };
            let summary = a
                .pointer("/annotations/summary")
                .and_then(|s| s.as_str())
                .map(str::to_owned)
                .unwrap_or_else(|| format!("{name} firing"));
            let component = label("component").to_owned();
            let seed = IncidentSeed {
                title: summary.clone(),
                status: IncidentStatus::Investigating,
                impact: Impact::Major,
                environment: Some(environment.to_owned()),
                components: if component.is_empty() {
                    vec![]
                } else {
                    vec![component.clone()]
                },
                cause: serde_json::json!({ "alertmanager": name }),
                started_ms: a
                    .get("startsAt")
                    .and_then(|s| s.as_str())
                    .and_then(parse_ms)
                    .unwrap_or_else(now_ms),
                first_event: None,
                body: summary.clone(),
            };
            let mut data =
                serde_json::json!({ "labels": labels, "annotations": a.get("annotations") });
            if !component.is_empty() {
                data["component"] = serde_json::Value::String(component);
            }
            let alert = NewAlert {
                key,
                name: name.to_owned(),
                severity,
                source: "alertmanager",
                summary,
                data,
            };
            Ok(AmAlert::Fire(Box::new((alert, seed))))
        }
        Some("resolved") => Ok(AmAlert::Resolve(key)),
        other => Err(format!(
            "alerts[{i}].status: expected \"firing\" or \"resolved\", got {other:?}"
        )),
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

/// Checks that `pem` holds at least one certificate and nothing malformed.
pub(crate) fn check_ca_pem(pem: &[u8]) -> Result<(), String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("not a PEM certificate: {e}"))?;
    if certs.is_empty() {
        return Err("no PEM certificate (-----BEGIN CERTIFICATE-----) in it".into());
    }
    Ok(())
}
