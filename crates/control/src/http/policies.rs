//! Rollout policies: read an environment's (anyone), its revisions, and set a new one
//! (operators; every revision is stored and audited as a `policy.set` event).

use std::sync::Arc;

use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use rampart_api::PolicySet;

use super::extract::{Body, Ctl, Operator, Path, Viewer};
use super::{ApiResult, AppState};

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/environments/{env}/policy", get(show).put(set))
        .route("/v1/environments/{env}/policy/history", get(history))
}

async fn show(State(s): Ctl, _: Viewer, Path(env): Path<String>) -> ApiResult<impl IntoResponse> {
    Ok(Json(s.control.policies.show(&env).await?))
}

async fn history(
    State(s): Ctl,
    _: Viewer,
    Path(env): Path<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(s.control.policies.history(&env).await?))
}

async fn set(
    State(s): Ctl,
    Operator(actor): Operator,
    Path(env): Path<String>,
    Body(req): Body<PolicySet>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(s.control.policies.set(&actor, &env, &req.text).await?))
}
