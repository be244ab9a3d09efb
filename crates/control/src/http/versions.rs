//! Versions: push (validate and store), list, read one.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use rampart_api::{PushRequest, VersionDocument};

use super::extract::{Body, Ctl, Operator, Path, Viewer};
use super::{ApiResult, AppState};

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/versions", post(push).get(versions))
        .route("/v1/versions/{id}", get(version))
}

async fn push(
    State(s): Ctl,
    Operator(actor): Operator,
    Body(req): Body<PushRequest>,
) -> ApiResult<impl IntoResponse> {
    let pushed = s
        .control
        .pipeline
        .push(
            &actor,
            &req.document,
            &req.message,
            req.break_glass.as_deref(),
        )
        .await?;
    let status = if pushed.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(pushed)))
}

async fn versions(State(s): Ctl, _: Viewer) -> ApiResult<impl IntoResponse> {
    Ok(Json(s.control.pipeline.versions().await?))
}

async fn version(State(s): Ctl, _: Viewer, Path(id): Path<String>) -> ApiResult<impl IntoResponse> {
    let (version, document) = s.control.pipeline.version(&id).await?;
    Ok(Json(VersionDocument { version, document }))
}
