//! Environments and what moves versions through them: deploy, rollback, approvals, rolling
//! restarts, and the event log that records it all.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use rampart_api::{DeployRequest, RollbackRequest};
use serde::Deserialize;

use super::extract::{Body, Caller, Path, Query};
use super::{ApiResult, AppState};
use crate::service::ControlError;
use crate::tokens::Role;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/environments", get(environments))
        .route("/v1/environments/{env}/deploy", post(deploy))
        .route("/v1/environments/{env}/rollback", post(rollback))
        .route(
            "/v1/environments/{env}/restart",
            post(start_restart).get(restart_status),
        )
        .route("/v1/approvals", get(approvals))
        .route("/v1/approvals/{id}/approve", post(approve))
        .route("/v1/events", get(events))
}

async fn environments(
    State(s): State<Arc<AppState>>,
    caller: Caller,
) -> ApiResult<impl IntoResponse> {
    caller.at_least(Role::Viewer)?;
    Ok(Json(s.control.environments().await?))
}

async fn deploy(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    Path(env): Path<String>,
    Body(req): Body<DeployRequest>,
) -> ApiResult<impl IntoResponse> {
    let actor = caller.at_least(Role::Operator)?;
    Ok(Json(
        s.control
            .deploy(&actor, &env, &req.version, req.break_glass.as_deref())
            .await?,
    ))
}

async fn rollback(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    Path(env): Path<String>,
    Body(req): Body<RollbackRequest>,
) -> ApiResult<impl IntoResponse> {
    let actor = caller.at_least(Role::Operator)?;
    Ok(Json(
        s.control.rollback(&actor, &env, req.to.as_ref()).await?,
    ))
}

async fn start_restart(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    Path(env): Path<String>,
    Body(req): Body<rampart_api::RestartRequest>,
) -> ApiResult<impl IntoResponse> {
    let actor = caller.at_least(Role::Operator)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(s.control.start_restart(&actor, &env, &req.batch).await?),
    ))
}

async fn restart_status(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    Path(env): Path<String>,
) -> ApiResult<impl IntoResponse> {
    caller.at_least(Role::Viewer)?;
    let status = s.control.restart_status(&env).ok_or_else(|| {
        ControlError::NotFound(format!(
            "no restart of {env:?} since the control plane started"
        ))
    })?;
    Ok(Json(status))
}

#[derive(Deserialize)]
struct EventsQuery {
    #[serde(default)]
    after: i64,
}

async fn events(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    Query(q): Query<EventsQuery>,
) -> ApiResult<impl IntoResponse> {
    caller.at_least(Role::Viewer)?;
    Ok(Json(
        s.control
            .store()
            .events(q.after)
            .await
            .map_err(ControlError::from)?,
    ))
}

async fn approvals(State(s): State<Arc<AppState>>, caller: Caller) -> ApiResult<impl IntoResponse> {
    caller.at_least(Role::Viewer)?;
    Ok(Json(s.control.approvals().await?))
}

async fn approve(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<i64>,
) -> ApiResult<impl IntoResponse> {
    let actor = caller.at_least(Role::Viewer)?;
    Ok(Json(s.control.approve(&actor, id).await?))
}
