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

use super::extract::{Body, Ctl, Operator, Path, Query, Viewer};
use super::{ApiResult, AppState};
use crate::error::ControlError;

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

async fn environments(State(s): Ctl, _: Viewer) -> ApiResult<impl IntoResponse> {
    Ok(Json(s.control.pipeline.environments().await?))
}

async fn deploy(
    State(s): Ctl,
    Operator(actor): Operator,
    Path(env): Path<String>,
    Body(req): Body<DeployRequest>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(
        s.control
            .pipeline
            .deploy(&actor, &env, &req.version, req.break_glass.as_deref())
            .await?,
    ))
}

async fn rollback(
    State(s): Ctl,
    Operator(actor): Operator,
    Path(env): Path<String>,
    Body(req): Body<RollbackRequest>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(
        s.control
            .pipeline
            .rollback(&actor, &env, req.to.as_ref())
            .await?,
    ))
}

async fn start_restart(
    State(s): Ctl,
    Operator(actor): Operator,
    Path(env): Path<String>,
    Body(req): Body<rampart_api::RestartRequest>,
) -> ApiResult<impl IntoResponse> {
    Ok((
        StatusCode::ACCEPTED,
        Json(s.control.restarts.start(&actor, &env, &req.batch).await?),
    ))
}

async fn restart_status(
    State(s): Ctl,
    _: Viewer,
    Path(env): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let status = s.control.restarts.status(&env).ok_or_else(|| {
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
    State(s): Ctl,
    _: Viewer,
    Query(q): Query<EventsQuery>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(s.control.store().events(q.after).await?))
}

async fn approvals(State(s): Ctl, _: Viewer) -> ApiResult<impl IntoResponse> {
    Ok(Json(s.control.pipeline.approvals().await?))
}

async fn approve(
    State(s): Ctl,
    Viewer(actor): Viewer,
    Path(id): Path<i64>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(s.control.pipeline.approve(&actor, id).await?))
}
