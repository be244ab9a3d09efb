//! Operations: status-page components and their SLOs, notification channels, the outbox,
//! alerts, and the Alertmanager receiver. Reading needs a viewer token, changing an operator's.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use rampart_api::{ChannelSpec, ComponentSpec};
use serde::Deserialize;

use super::extract::{Body, Ctl, Operator, Path, Query, Viewer};
use super::{ApiResult, AppState};

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/components", get(components))
        .route(
            "/v1/components/{name}",
            put(put_component).delete(delete_component),
        )
        .route("/v1/channels", get(channels))
        .route("/v1/channels/{name}", put(put_channel))
        .route("/v1/outbox", get(outbox))
        .route("/v1/alerts", get(alerts))
        .route("/v1/alertmanager", post(alertmanager))
}

async fn components(State(s): Ctl, _: Viewer) -> ApiResult<impl IntoResponse> {
    Ok(Json(s.control.catalogue.components().await?))
}

async fn put_component(
    State(s): Ctl,
    _: Operator,
    Path(name): Path<String>,
    Body(spec): Body<ComponentSpec>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(s.control.catalogue.put_component(&name, spec).await?))
}

async fn delete_component(
    State(s): Ctl,
    Operator(actor): Operator,
    Path(name): Path<String>,
) -> ApiResult<impl IntoResponse> {
    s.control
        .catalogue
        .delete_component(&name, &actor.name)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn channels(State(s): Ctl, _: Viewer) -> ApiResult<impl IntoResponse> {
    Ok(Json(s.control.catalogue.channels().await?))
}

async fn put_channel(
    State(s): Ctl,
    Operator(actor): Operator,
    Path(name): Path<String>,
    Body(spec): Body<ChannelSpec>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(
        s.control
            .catalogue
            .put_channel(&name, spec, &actor.name)
            .await?,
    ))
}

async fn outbox(State(s): Ctl, _: Viewer) -> ApiResult<impl IntoResponse> {
    Ok(Json(s.control.store().outbox().await?))
}

#[derive(Deserialize)]
struct AlertsQuery {
    #[serde(default)]
    active: bool,
}

async fn alerts(
    State(s): Ctl,
    _: Viewer,
    Query(q): Query<AlertsQuery>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(s.control.store().alerts(q.active).await?))
}

async fn alertmanager(
    State(s): Ctl,
    _: Operator,
    Body(payload): Body<serde_json::Value>,
) -> ApiResult<impl IntoResponse> {
    let changed = s.control.alerting.alertmanager(payload).await?;
    Ok(Json(serde_json::json!({ "changed": changed })))
}
