//! The agent protocol: register, long-poll for the desired version, report.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use std::time::Duration;

use rampart_api::{RegisterRequest, Report};
use serde::Deserialize;

use super::extract::{AgentCaller, Body, Ctl, InstanceCredential, Path, Query};
use super::{ApiResult, AppState};

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/agents/register", post(register))
        .route("/v1/agents/{id}/desired", get(desired))
        .route("/v1/agents/{id}/report", post(report))
}

async fn register(
    State(s): Ctl,
    AgentCaller(actor): AgentCaller,
    Body(req): Body<RegisterRequest>,
) -> ApiResult<impl IntoResponse> {
    let _admitted = s.admission.request()?;
    Ok(Json(s.control.agent_protocol.register(&actor, req).await?))
}

/// The long-poll's query (a follower replica reads it too, answering polls itself).
#[derive(Deserialize)]
pub(crate) struct DesiredQuery {
    #[serde(default)]
    pub(crate) current: String,
    #[serde(default)]
    pub(crate) wait_ms: u64,
    #[serde(default)]
    pub(crate) restart: Option<u64>,
    /// How many probes the agent sends now.
    #[serde(default)]
    pub(crate) probing: Option<usize>,
}

async fn desired(
    State(s): Ctl,
    _: AgentCaller,
    InstanceCredential(credential): InstanceCredential,
    Path(id): Path<String>,
    Query(q): Query<DesiredQuery>,
) -> ApiResult<impl IntoResponse> {
    let _admitted = s.admission.poll()?;
    let current = (!q.current.is_empty()).then_some(q.current.as_str());
    Ok(Json(
        s.control
            .agent_protocol
            .desired(
                &id,
                &credential,
                current,
                q.restart,
                q.probing,
                Duration::from_millis(q.wait_ms),
            )
            .await?,
    ))
}

async fn report(
    State(s): Ctl,
    _: AgentCaller,
    InstanceCredential(credential): InstanceCredential,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
    Body(r): Body<Report>,
) -> ApiResult<impl IntoResponse> {
    let _admitted = s.admission.request()?;
    let via = crate::listener::replica_of(&headers);
    s.control
        .agent_protocol
        .report(&id, &credential, r, via)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
