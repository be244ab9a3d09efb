//! Releases in waves: list, picture, pause/resume/abort.

use std::sync::Arc;

use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};

use super::extract::{Caller, Path};
use super::{ApiResult, AppState};
use crate::tokens::Role;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/releases", get(releases))
        .route("/v1/releases/{id}/picture.svg", get(release_picture))
        .route("/v1/releases/{id}/{action}", post(release_action))
}

async fn releases(State(s): State<Arc<AppState>>, caller: Caller) -> ApiResult<impl IntoResponse> {
    caller.at_least(Role::Viewer)?;
    Ok(Json(s.control.releases().await?))
}

/// The release drawn as SVG (`rollout_picture`): waves, each instance's version over time, gates.
async fn release_picture(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<i64>,
) -> ApiResult<impl IntoResponse> {
    caller.at_least(Role::Viewer)?;
    let story = s.control.release_story(id).await?;
    Ok((
        [(http::header::CONTENT_TYPE, "image/svg+xml; charset=utf-8")],
        crate::rollout_picture::svg(&story),
    ))
}

async fn release_action(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    Path((id, action)): Path<(i64, String)>,
) -> ApiResult<impl IntoResponse> {
    let actor = caller.at_least(Role::Operator)?;
    Ok(Json(s.control.release_action(&actor, id, &action).await?))
}
