//! The agent: a gateway driven by the control plane, failing static without it.
//!
//! At start it serves its last-known-good (if any) before talking to anyone. It registers,
//! long-polls for the desired version, validates and applies it, and reports once a second
//! (applied version, the last apply result, counters since the previous report). A newly applied
//! version is watched for `watchdog.window`: if its 5xx rate jumps well above the previous
//! version's, the agent reverts to the previous version by itself and reports `reverted`; if it
//! survives the window it becomes the last-known-good on disk. When the control plane is
//! unreachable the agent keeps serving what it has and retries with backoff; nothing in the data
//! plane waits on it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rampart_api::{ApiClient, ApplyResult, Desired, RegisterRequest, Report, VersionId};
use tokio::sync::Mutex;

use crate::gateway::{Gateway, Options};
use crate::lkg;
use crate::metrics::TotalsReading;
use crate::watchdog::{History, Sample, Verdict, WatchdogSettings, judge};

#[derive(Debug, Clone)]
pub struct AgentOptions {
    pub control: String,
    pub token: Option<String>,
    /// A PEM certificate the control plane's HTTPS certificate may chain to, besides the
    /// web's roots.
    pub ca: Option<Vec<u8>>,
    pub environment: String,
    pub instance: String,
    pub zone: String,
    pub state_dir: PathBuf,
    pub gateway: Options,
    pub watchdog: WatchdogSettings,
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("starting the gateway: {0}")]
    Start(#[from] crate::ApplyError),
    #[error("--ca: {0}")]
    Ca(String),
}

/// A version and its canonical document.
#[derive(Debug, Clone)]
struct Served {
    version: VersionId,
    document: String,
}

/// A version under watch after an apply.
struct Watch {
    served: Served,
    previous: Option<Served>,
    started: Instant,
    at_apply: TotalsReading,
    baseline: Sample,
}

/// What the agent knows, shared by its loops.
#[derive(Default)]
struct State {
    serving: Option<Served>,
    result: Option<ApplyResult>,
    problems: Vec<String>,
    watch: Option<Watch>,
    /// A version the watchdog reverted: not applied again until the desired version changes.
    vetoed: Option<VersionId>,
    /// The restart generation last seen (None before the first answer: a new agent adopts the
    /// current one without restarting).
    restart: Option<u64>,
    /// The credential this instance's registration got; reports carry it.
    credential: Option<String>,
    /// What this instance's synthetic probes got so far (the report sends differences).
    probes: Option<Arc<crate::prober::Tally>>,
}

type Shared = Arc<Mutex<Option<Gateway>>>;

const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Runs until `shutdown` resolves, then drains the gateway.
pub async fn run(
    mut opts: AgentOptions,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), AgentError> {
    let mut secret = [0u8; 16];
    if getrandom::fill(&mut secret).is_ok() {
        opts.gateway.probe_secret = Some(hex::encode(secret).into());
    }
    let client = ApiClient::new(&opts.control, opts.token.clone());
    let client = match &opts.ca {
        Some(pem) => client.with_ca(pem).map_err(AgentError::Ca)?,
        None => client,
    };
    let state = Arc::new(Mutex::new(State::default()));
    let gateway: Shared = Arc::new(Mutex::new(None));

    // Fail static: serve the last-known-good at once, whatever the control plane is doing.
    match lkg::load(&opts.state_dir).await {
        Ok(Some(config)) => {
            let version = config.version().clone();
            let document = rampart_model::canonical_json(config.document());
            tracing::info!(version = version.short(), "serving last-known-good");
            *gateway.lock().await = Some(Gateway::start(config, opts.gateway.clone()).await?);
            state.lock().await.serving = Some(Served { version, document });
        }
        Ok(None) => tracing::info!("no last-known-good yet; waiting for the control plane"),
        Err(problem) => {
            tracing::error!("{problem}; not serving it");
            state.lock().await.problems.push(problem);
        }
    }

    let reporter = tokio::spawn(report_loop(
        client.clone(),
        opts.clone(),
        state.clone(),
        gateway.clone(),
    ));
    let hangup = tokio::spawn(reopen_logs_on_hangup(gateway.clone()));
    tokio::pin!(shutdown);
    tokio::select! {
        _ = poll_loop(&client, &opts, &state, &gateway) => {}
        _ = &mut shutdown => {}
    }
    reporter.abort();
    hangup.abort();
    if let Some(g) = gateway.lock().await.take() {
        g.shutdown().await;
    }
    Ok(())
}

/// SIGHUP: the access log opens its file again (after log rotation).
async fn reopen_logs_on_hangup(gateway: Shared) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "no SIGHUP handler: the access log will not be reopened");
            return;
        }
    };
    while hup.recv().await.is_some() {
        tracing::info!("SIGHUP: reopening the access log");
        if let Some(g) = gateway.lock().await.as_ref() {
            g.reopen_logs();
        }
    }
}

async fn poll_loop(
    client: &ApiClient,
    opts: &AgentOptions,
    state: &Arc<Mutex<State>>,
    gateway: &Shared,
) {
    let registration = RegisterRequest {
        instance: opts.instance.clone(),
        environment: opts.environment.clone(),
        zone: opts.zone.clone(),
        build: env!("CARGO_PKG_VERSION").to_owned(),
    };
    let mut backoff = BACKOFF_MIN;
    let mut wait = Duration::from_secs(25);
    let mut registered = false;
    let mut instance = client.clone();
    let mut prober =
        crate::prober::Prober::new(opts.gateway.probe_secret.clone().unwrap_or_default());
    state.lock().await.probes = Some(prober.tally());
    loop {
        if !registered {
            match client.register(&registration).await {
                Ok(r) => {
                    registered = true;
                    state.lock().await.credential = Some(r.credential.clone());
                    instance = client.for_instance(&r.credential);
                    backoff = BACKOFF_MIN;
                    wait = Duration::from_millis(r.poll_wait_ms);
                    tracing::info!(control = %opts.control, env = %opts.environment, "registered");
                }
                Err(e) => {
                    tracing::warn!(error = %e, "control plane unreachable; serving what we have");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    continue;
                }
            }
        }
        // Wait for a change from what we serve, or from the version we vetoed.
        let (current, restart) = {
            let st = state.lock().await;
            let current = st
                .vetoed
                .clone()
                .or_else(|| st.serving.as_ref().map(|s| s.version.clone()));
            (current, st.restart)
        };
        match instance
            .desired(
                &opts.instance,
                current.as_ref().map(VersionId::as_str),
                restart,
                Some(prober.running()),
                wait,
            )
            .await
        {
            Ok(mut desired) => {
                backoff = BACKOFF_MIN;
                let generation = desired.restart;
                let target = match gateway.lock().await.as_ref() {
                    Some(g) => g.plain_listener_addr().await,
                    None => None,
                };
                prober.set(std::mem::take(&mut desired.probes), target);
                apply(opts, desired, state, gateway).await;
                let due = restart.is_some_and(|r| generation > r);
                if due {
                    restart_gateway(opts, state, gateway).await;
                }
                state.lock().await.restart = Some(generation);
            }
            Err(e) => {
                // An instance the control plane does not know (it restarted, or another
                // replica leads now) registers again; one that is busy or away is asked
                // again with the same registration.
                tracing::warn!(error = %e, "polling for the desired version failed");
                if matches!(
                    e,
                    rampart_api::ClientError::Api {
                        status: 403 | 404,
                        ..
                    }
                ) {
                    registered = false;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}

/// How long a restarting gateway says "draining" on `/readyz`, still serving, before it stops
/// accepting: long enough for load balancers polling readiness to send nothing new.
pub const DRAIN_NOTICE: Duration = Duration::from_secs(1);

/// A rolling restart's step on this instance: announce draining, wait for balancers to notice,
/// drain what is in flight, then start a fresh gateway from the config being served (listeners
/// rebound, pools and caches new — what a process restart gives, without losing the agent).
async fn restart_gateway(opts: &AgentOptions, state: &Arc<Mutex<State>>, gateway: &Shared) {
    let Some(serving) = state.lock().await.serving.clone() else {
        return;
    };
    let config = match rampart_model::load(&serving.document) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "restart: the served document no longer loads; not restarting");
            return;
        }
    };
    tracing::info!("restart: draining");
    if let Some(g) = gateway.lock().await.as_ref() {
        g.begin_drain();
    }
    tokio::time::sleep(DRAIN_NOTICE).await;
    let old = gateway.lock().await.take();
    if let Some(g) = old {
        g.shutdown().await;
    }
    match Gateway::start(config, opts.gateway.clone()).await {
        Ok(g) => {
            *gateway.lock().await = Some(g);
            tracing::info!(version = serving.version.short(), "restart: serving again");
        }
        Err(e) => {
            tracing::error!(error = %e, "restart: the gateway did not start again");
            state
                .lock()
                .await
                .problems
                .push(format!("restart failed: {e}"));
        }
    }
}

async fn apply(opts: &AgentOptions, desired: Desired, state: &Arc<Mutex<State>>, gateway: &Shared) {
    let Some(version) = desired.version else {
        return;
    };
    // A version meant for another environment is never applied, whoever sent it.
    if desired.environment != opts.environment {
        let problem = format!(
            "refused version {} addressed to {}: this gateway serves {}",
            version.short(),
            desired.environment,
            opts.environment
        );
        tracing::error!("{problem}");
        let mut st = state.lock().await;
        if !st.problems.contains(&problem) {
            st.problems.push(problem);
        }
        return;
    }
    {
        let mut st = state.lock().await;
        if st.serving.as_ref().is_some_and(|s| s.version == version) {
            st.vetoed = None;
            return;
        }
        if st.vetoed.as_ref() == Some(&version) {
            return;
        }
    }
    let Some(document) = desired.document else {
        return;
    };
    let result = match rampart_model::load(&document) {
        Err(e) => Err(format!("invalid document: {e}")),
        Ok(config) if *config.version() != version => Err(format!(
            "document does not match version {version} (it is {})",
            config.version()
        )),
        Ok(config) => install(gateway, config, &opts.gateway).await,
    };
    let at_apply = gateway
        .lock()
        .await
        .as_ref()
        .map(|g| g.metrics().totals())
        .unwrap_or_default();
    let mut st = state.lock().await;
    match result {
        Ok(()) => {
            tracing::info!(version = version.short(), "applied; watching it");
            let served = Served {
                version: version.clone(),
                document,
            };
            let previous = st.serving.replace(served.clone());
            st.vetoed = None;
            st.watch = Some(Watch {
                served,
                previous,
                started: Instant::now(),
                at_apply,
                baseline: Sample::default(),
            });
            st.result = Some(ApplyResult::Applied { version });
        }
        Err(error) => {
            tracing::error!(version = version.short(), %error, "rejected; still serving the previous version");
            st.result = Some(ApplyResult::Rejected { version, error });
        }
    }
}

/// Applies a config, starting the gateway if none runs yet.
async fn install(
    gateway: &Shared,
    config: rampart_model::Config,
    options: &Options,
) -> Result<(), String> {
    let mut slot = gateway.lock().await;
    match slot.as_ref() {
        Some(g) => g.apply(config).await.map_err(|e| e.to_string()),
        None => {
            *slot = Some(
                Gateway::start(config, options.clone())
                    .await
                    .map_err(|e| e.to_string())?,
            );
            Ok(())
        }
    }
}

fn errors_between(a: &TotalsReading, b: &TotalsReading) -> Sample {
    let requests: u64 = (0..5)
        .map(|i| b.requests[i].saturating_sub(a.requests[i]))
        .sum();
    Sample {
        requests,
        errors: b.requests[4].saturating_sub(a.requests[4]),
    }
}

/// Per-route requests since the last report, leaving out routes with none.
fn route_deltas(now: &TotalsReading, reported: &TotalsReading) -> BTreeMap<String, [u64; 5]> {
    now.routes
        .iter()
        .filter_map(|(route, counts)| {
            let before = reported.routes.get(route).copied().unwrap_or_default();
            let delta: [u64; 5] = std::array::from_fn(|i| counts[i].saturating_sub(before[i]));
            (delta.iter().sum::<u64>() > 0).then(|| (route.clone(), delta))
        })
        .collect()
}

/// Every second: the watchdog's verdict, then the report.
async fn report_loop(
    client: ApiClient,
    opts: AgentOptions,
    state: Arc<Mutex<State>>,
    gateway: Shared,
) {
    let mut reported = TotalsReading::default();
    let mut reported_probes = rampart_api::ProbeCounts::default();
    let mut previous_tick = TotalsReading::default();
    let window_secs = opts.watchdog.window.as_secs().max(1) as usize;
    let mut history = History::new(window_secs.max(30));
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let totals = gateway
            .lock()
            .await
            .as_ref()
            .map(|g| g.metrics().totals())
            .unwrap_or_default();
        // A restarted gateway counts from zero again.
        let sum = |t: &TotalsReading| t.requests.iter().sum::<u64>();
        if sum(&totals) < sum(&reported) {
            reported = TotalsReading::default();
        }
        if sum(&totals) < sum(&previous_tick) {
            previous_tick = TotalsReading::default();
        }
        watchdog(
            &opts,
            &state,
            &gateway,
            &mut history,
            &previous_tick,
            &totals,
        )
        .await;
        previous_tick = totals.clone();
        let (report, probes) = {
            let st = state.lock().await;
            let probes = st.probes.as_ref().map(|t| t.reading()).unwrap_or_default();
            let report = Report {
                applied: st.serving.as_ref().map(|s| s.version.clone()),
                result: st.result.clone(),
                requests: std::array::from_fn(|i| {
                    totals.requests[i].saturating_sub(reported.requests[i])
                }),
                inflight: totals.inflight,
                shed: totals.shed.saturating_sub(reported.shed),
                auth_failures: totals.auth_failures.saturating_sub(reported.auth_failures),
                problems: st.problems.clone(),
                latency: (0..13)
                    .map(|i| totals.latency[i].saturating_sub(reported.latency[i]))
                    .collect(),
                routes: route_deltas(&totals, &reported),
                restarts: st.restart.unwrap_or(0),
                probes: rampart_api::ProbeCounts {
                    sent: probes.sent.saturating_sub(reported_probes.sent),
                    unexpected: probes.unexpected.saturating_sub(reported_probes.unexpected),
                },
            };
            (report, probes)
        };
        // Counters only advance when the control plane has them; a failed report is resent.
        let Some(credential) = state.lock().await.credential.clone() else {
            continue;
        };
        let sent = client
            .for_instance(&credential)
            .report(&opts.instance, &report)
            .await;
        if sent.is_ok() {
            reported = totals;
            reported_probes = probes;
        }
    }
}

async fn watchdog(
    opts: &AgentOptions,
    state: &Arc<Mutex<State>>,
    gateway: &Shared,
    history: &mut History,
    previous_tick: &TotalsReading,
    totals: &TotalsReading,
) {
    let mut st = state.lock().await;
    let Some(watch) = st.watch.as_mut() else {
        // Nothing under watch: this second's traffic is the baseline for the next apply.
        history.push(errors_between(previous_tick, totals));
        return;
    };
    if watch.baseline == Sample::default() {
        watch.baseline = history.total();
    }
    let since = errors_between(&watch.at_apply, totals);
    if let (Verdict::Revert(reason), Some(previous)) = (
        judge(watch.baseline, since, &opts.watchdog),
        watch.previous.clone(),
    ) {
        let bad = watch.served.version.clone();
        tracing::error!(version = bad.short(), %reason, "watchdog: reverting to the previous version");
        st.watch = None;
        drop(st);
        let reverted = match rampart_model::load(&previous.document) {
            Ok(config) => install(gateway, config, &opts.gateway).await,
            Err(e) => Err(e.to_string()),
        };
        let mut st = state.lock().await;
        match reverted {
            Ok(()) => {
                st.serving = Some(previous.clone());
                st.vetoed = Some(bad.clone());
                st.result = Some(ApplyResult::Reverted {
                    from: bad,
                    to: previous.version,
                    reason,
                });
            }
            Err(e) => st.problems.push(format!("watchdog could not revert: {e}")),
        }
        history.clear();
        return;
    }
    if watch.started.elapsed() >= opts.watchdog.window {
        let served = watch.served.clone();
        st.watch = None;
        drop(st);
        match lkg::store(&opts.state_dir, &served.version, &served.document).await {
            Ok(()) => tracing::info!(
                version = served.version.short(),
                "survived the watch window; now the last-known-good"
            ),
            Err(e) => {
                tracing::error!("{e}");
                state.lock().await.problems.push(e);
            }
        }
        history.clear();
    }
}
