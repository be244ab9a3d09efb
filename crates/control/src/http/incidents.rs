//! Incidents by hand (open, update, action items) and their postmortems.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use rampart_api::{ActionItemSpec, IncidentChange, NewIncident, PostmortemText};
use serde::Deserialize;

use super::extract::{Body, Ctl, Operator, Path, Query, Viewer};
use super::{ApiResult, AppState};
use crate::error::ControlError;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/incidents", get(incidents).post(open_incident))
        .route("/v1/incidents/{id}", get(incident))
        .route("/v1/incidents/{id}/updates", post(update_incident))
        .route("/v1/incidents/{id}/action-items", post(add_action_item))
        .route(
            "/v1/incidents/{id}/action-items/{item}",
            patch(set_action_item),
        )
        .route("/v1/incidents/{id}/postmortem", get(postmortem))
}

async fn incidents(State(s): Ctl, _: Viewer) -> ApiResult<impl IntoResponse> {
    Ok(Json(s.control.incidents.list().await?))
}

async fn incident(State(s): Ctl, _: Viewer, Path(id): Path<i64>) -> ApiResult<impl IntoResponse> {
    Ok(Json(s.control.incidents.get(id).await?))
}

async fn open_incident(
    State(s): Ctl,
    Operator(actor): Operator,
    Body(new): Body<NewIncident>,
) -> ApiResult<impl IntoResponse> {
    Ok((
        StatusCode::CREATED,
        Json(s.control.incidents.open(new, &actor.name).await?),
    ))
}

async fn update_incident(
    State(s): Ctl,
    Operator(actor): Operator,
    Path(id): Path<i64>,
    Body(change): Body<IncidentChange>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(
        s.control.incidents.change(id, change, &actor.name).await?,
    ))
}

async fn add_action_item(
    State(s): Ctl,
    Operator(actor): Operator,
    Path(id): Path<i64>,
    Body(item): Body<ActionItemSpec>,
) -> ApiResult<impl IntoResponse> {
    let incident = s
        .control
        .incidents
        .add_action_item(id, &item, &actor.name)
        .await?;
    Ok((StatusCode::CREATED, Json(incident)))
}

async fn set_action_item(
    State(s): Ctl,
    Operator(actor): Operator,
    Path((id, item)): Path<(i64, i64)>,
    Body(spec): Body<ActionItemSpec>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(
        s.control
            .incidents
            .set_action_item(id, item, &spec, &actor.name)
            .await?,
    ))
}

#[derive(Deserialize)]
struct PostmortemQuery {
    #[serde(default = "markdown")]
    format: String,
}

fn markdown() -> String {
    "md".into()
}

async fn postmortem(
    State(s): Ctl,
    _: Viewer,
    Path(id): Path<i64>,
    Query(q): Query<PostmortemQuery>,
) -> ApiResult<impl IntoResponse> {
    let facts = crate::postmortem::facts(&s.control.incidents, id).await?;
    let text = match q.format.as_str() {
        "md" => crate::postmortem::markdown(&facts),
        "html" => crate::postmortem::html(&facts),
        other => {
            return Err(ControlError::Invalid(format!(
                "format: expected md or html, got {other:?}"
            ))
            .into());
        }
    };
    Ok(Json(PostmortemText {
        incident: id,
        format: q.format,
        text,
    }))
}
