//! The rampart control plane: versioned, immutable configs; environments in a pipeline that
//! production cannot skip; rollback that nothing blocks; the fleet of agents.
//!
//! Owns: the store (SQLite), the pipeline rule, the agent protocol's server side, the HTTP API.
//! Must not: be needed by a gateway to keep serving (gateways fail static on their own
//! last-known-good).
#![forbid(unsafe_code)]

pub mod api;
pub mod fleet;
pub mod openapi;
pub mod semantic;
pub mod service;
pub mod store;
pub mod tokens;

pub use service::{ControlError, ControlPlane};

/// Serves the API on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    control: std::sync::Arc<ControlPlane>,
    tokens: tokens::Tokens,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let state = std::sync::Arc::new(api::AppState { control, tokens });
    axum::serve(listener, api::router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
