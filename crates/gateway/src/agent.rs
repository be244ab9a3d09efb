//! The agent: a gateway driven by the control plane, failing static without it.
//!
//! At start it serves its last-known-good (if any) before talking to anyone. It registers,
//! long-polls for the desired version, validates and applies it, writes it as the new
//! last-known-good once applied, and reports once a second (applied version, the last apply
//! result, counters since the previous report). When the control plane is unreachable it keeps
//! serving what it has and retries with backoff; nothing in the data plane waits on it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rampart_api::{ApiClient, ApplyResult, Desired, RegisterRequest, Report};
use tokio::sync::Mutex;

use crate::gateway::{Gateway, Options};
use crate::lkg;

#[derive(Debug, Clone)]
pub struct AgentOptions {
    pub control: String,
    pub token: Option<String>,
    pub environment: String,
    pub instance: String,
    pub zone: String,
    pub state_dir: PathBuf,
    pub gateway: Options,
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("starting the gateway: {0}")]
    Start(#[from] crate::ApplyError),
}

/// What the agent knows, shared by its loops.
#[derive(Default)]
struct State {
    applied: Option<String>,
    result: Option<ApplyResult>,
    problems: Vec<String>,
}

const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Runs until `shutdown` resolves, then drains the gateway.
pub async fn run(
    opts: AgentOptions,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), AgentError> {
    let client = ApiClient::new(&opts.control, opts.token.clone());
    let state = Arc::new(Mutex::new(State::default()));
    let gateway: Arc<Mutex<Option<Gateway>>> = Arc::new(Mutex::new(None));

    // Fail static: serve the last-known-good at once, whatever the control plane is doing.
    match lkg::load(&opts.state_dir).await {
        Ok(Some(config)) => {
            let version = config.version().to_string();
            tracing::info!(version = &version[..12], "serving last-known-good");
            *gateway.lock().await = Some(Gateway::start(config, opts.gateway.clone()).await?);
            state.lock().await.applied = Some(version);
        }
        Ok(None) => tracing::info!("no last-known-good yet; waiting for the control plane"),
        Err(problem) => {
            tracing::error!("{problem}; not serving it");
            state.lock().await.problems.push(problem);
        }
    }

    let reporter = tokio::spawn(report_loop(
        client.clone(),
        opts.instance.clone(),
        state.clone(),
        gateway.clone(),
    ));
    tokio::pin!(shutdown);
    tokio::select! {
        _ = poll_loop(&client, &opts, &state, &gateway) => {}
        _ = &mut shutdown => {}
    }
    reporter.abort();
    if let Some(g) = gateway.lock().await.take() {
        g.shutdown().await;
    }
    Ok(())
}

async fn poll_loop(
    client: &ApiClient,
    opts: &AgentOptions,
    state: &Arc<Mutex<State>>,
    gateway: &Arc<Mutex<Option<Gateway>>>,
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
    loop {
        if !registered {
            match client.register(&registration).await {
                Ok(r) => {
                    registered = true;
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
        let current = state.lock().await.applied.clone();
        match client
            .desired(&opts.instance, current.as_deref(), wait)
            .await
        {
            Ok(desired) => {
                backoff = BACKOFF_MIN;
                apply(opts, desired, current.as_deref(), state, gateway).await;
            }
            Err(e) => {
                // Unknown instance (control plane restarted) or unreachable: register again.
                tracing::warn!(error = %e, "polling for the desired version failed");
                registered = false;
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}

async fn apply(
    opts: &AgentOptions,
    desired: Desired,
    current: Option<&str>,
    state: &Arc<Mutex<State>>,
    gateway: &Arc<Mutex<Option<Gateway>>>,
) {
    let (Some(version), Some(document)) = (desired.version, desired.document) else {
        return;
    };
    if Some(version.as_str()) == current {
        return;
    }
    let result = match rampart_model::load(&document) {
        Err(e) => Err(format!("invalid document: {e}")),
        Ok(config) if config.version().as_str() != version => Err(format!(
            "document does not match version {version} (it is {})",
            config.version()
        )),
        Ok(config) => {
            let mut slot = gateway.lock().await;
            match slot.as_ref() {
                Some(g) => g.apply(config).await.map_err(|e| e.to_string()),
                None => match Gateway::start(config, opts.gateway.clone()).await {
                    Ok(g) => {
                        *slot = Some(g);
                        Ok(())
                    }
                    Err(e) => Err(e.to_string()),
                },
            }
        }
    };
    let mut st = state.lock().await;
    match result {
        Ok(()) => {
            tracing::info!(version = &version[..12], "applied");
            if let Err(e) = lkg::store(&opts.state_dir, &version_id(&version), &document).await {
                tracing::error!("{e}");
                st.problems.push(e);
            }
            st.applied = Some(version.clone());
            st.result = Some(ApplyResult::Applied { version });
        }
        Err(error) => {
            tracing::error!(version = &version[..version.len().min(12)], %error, "rejected; still serving the previous version");
            st.result = Some(ApplyResult::Rejected { version, error });
        }
    }
}

fn version_id(v: &str) -> rampart_model::VersionId {
    rampart_model::VersionId::parse(v)
        .unwrap_or_else(|_| rampart_model::VersionId::of(&rampart_model::Document::default()))
}

async fn report_loop(
    client: ApiClient,
    instance: String,
    state: Arc<Mutex<State>>,
    gateway: Arc<Mutex<Option<Gateway>>>,
) {
    let mut last = crate::metrics::TotalsReading::default();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let totals = gateway
            .lock()
            .await
            .as_ref()
            .map(|g| g.metrics().totals())
            .unwrap_or_default();
        let (applied, result, problems) = {
            let st = state.lock().await;
            (st.applied.clone(), st.result.clone(), st.problems.clone())
        };
        let report = Report {
            applied,
            result,
            requests: std::array::from_fn(|i| totals.requests[i].saturating_sub(last.requests[i])),
            inflight: totals.inflight,
            shed: totals.shed.saturating_sub(last.shed),
            auth_failures: totals.auth_failures.saturating_sub(last.auth_failures),
            problems,
        };
        // Counters only advance when the control plane has them; a failed report is resent.
        if client.report(&instance, &report).await.is_ok() {
            last = totals;
        }
    }
}
