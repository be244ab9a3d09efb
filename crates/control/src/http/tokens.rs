//! API tokens (approver role): list, create (the secret is shown once), revoke.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{delete, get};
use axum::{Json, Router};
use rampart_api::TokenSpec;

use super::extract::{Approver, Body, Ctl, Path};
use super::{ApiResult, AppState};

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/tokens", get(list).post(create))
        .route("/v1/tokens/{name}", delete(revoke))
}

async fn list(State(s): Ctl, _: Approver) -> ApiResult<impl IntoResponse> {
    Ok(Json(s.tokens.list()))
}

async fn create(
    State(s): Ctl,
    Approver(actor): Approver,
    Body(spec): Body<TokenSpec>,
) -> ApiResult<impl IntoResponse> {
    let created = s.tokens.create(s.control.store(), &spec, &actor).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

async fn revoke(
    State(s): Ctl,
    Approver(actor): Approver,
    Path(name): Path<String>,
) -> ApiResult<impl IntoResponse> {
    s.tokens.revoke(s.control.store(), &name, &actor).await?;
    Ok(StatusCode::NO_CONTENT)
}
