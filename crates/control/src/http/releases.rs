//! Releases in waves: list, picture, pause/resume/abort.

use std::sync::Arc;

use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};

use super::extract::{Ctl, Operator, Path, Query, Viewer};
use super::{ApiResult, AppState};

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/releases", get(releases))
        .route("/v1/releases/{id}/picture.svg", get(release_picture))
        .route("/v1/releases/{id}/{action}", post(release_action))
}

async fn releases(State(s): Ctl, _: Viewer) -> ApiResult<impl IntoResponse> {
    Ok(Json(s.control.releases.list().await?))
}

/// The release drawn as SVG (`rollout_picture`): waves, each instance's version over time, gates.
async fn release_picture(
    State(s): Ctl,
    _: Viewer,
    Path(id): Path<i64>,
) -> ApiResult<impl IntoResponse> {
    let story = s.control.releases.story(id).await?;
    Ok((
        [(http::header::CONTENT_TYPE, "image/svg+xml; charset=utf-8")],
        crate::rollout_picture::svg(&story),
    ))
}

#[derive(serde::Deserialize)]
struct Judgement {
    /// Why (required to promote or skip; recorded).
    #[serde(default)]
    reason: String,
}

async fn release_action(
    State(s): Ctl,
    Operator(actor): Operator,
    Path((id, action)): Path<(i64, String)>,
    Query(j): Query<Judgement>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(
        s.control
            .releases
            .action(&actor, id, &action, &j.reason)
            .await?,
    ))
}
