//! The HTTP/JSON API (axum): one module per group of resources, the extractors they share
//! (`extract.rs`) and the one error-to-response mapping (`error.rs`). Every answer that is not a
//! success has the same JSON shape, for unknown paths, wrong methods and unreadable requests too;
//! every write is done by a named token and recorded as an event.

pub mod admission;
pub(crate) mod agents;
mod environments;
mod error;
pub(crate) mod extract;
mod incidents;
pub mod openapi;
mod ops;
mod policies;
pub mod public_rate;
mod releases;
mod replicas;
mod status_page;
mod tokens;
mod versions;

use std::sync::Arc;

use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};

pub use error::ApiError;
pub(crate) use error::ApiResult;

use crate::control_plane::ControlPlane;
use crate::tokens::Tokens;

pub struct AppState {
    pub control: Arc<ControlPlane>,
    pub tokens: Tokens,
    /// How often the public may subscribe, confirm and unsubscribe.
    pub public_rate: public_rate::PublicRate,
    /// How much agent traffic is let in at once (operators' requests are not counted).
    pub admission: admission::AgentAdmission,
}

pub fn router(state: Arc<AppState>) -> Router {
    with_fallbacks(
        Router::new()
            .route("/healthz", get(|| async { "ok\n" }))
            .route("/openapi.json", get(|| async { Json(openapi::document()) }))
            .merge(versions::routes())
            .merge(environments::routes())
            .merge(policies::routes())
            .merge(replicas::routes())
            .merge(releases::routes())
            .merge(agents::routes())
            .merge(ops::routes())
            .merge(incidents::routes())
            .merge(status_page::routes())
            .merge(tokens::routes()),
    )
    .with_state(state)
}

/// Only the public status page (its page, JSON, feeds and forms): what a listener facing the
/// internet serves while the API stays on a private one.
pub fn public_router(state: Arc<AppState>) -> Router {
    with_fallbacks(
        Router::new()
            .route("/healthz", get(|| async { "ok\n" }))
            .merge(status_page::public_routes()),
    )
    .with_state(state)
}

/// Unknown paths and wrong methods answer in the one error shape.
fn with_fallbacks(routes: Router<Arc<AppState>>) -> Router<Arc<AppState>> {
    routes
        .fallback(|| async {
            ApiError(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such path; the API is described at /openapi.json".into(),
            )
        })
        .method_not_allowed_fallback(|| async {
            ApiError(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this path does not take that method; see /openapi.json".into(),
            )
        })
}
