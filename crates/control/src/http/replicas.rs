//! The control plane's replicas: who leads and who announced itself (anyone may read).

use std::sync::Arc;

use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use rampart_api::{ReplicaStatus, Replicas};

use super::extract::{Ctl, Viewer};
use super::{ApiResult, AppState};

pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/v1/replicas", get(list))
}

async fn list(State(s): Ctl, _: Viewer) -> ApiResult<impl IntoResponse> {
    let store = s.control.store();
    let lease = store.lease().await?;
    let replicas = store
        .replicas()
        .await?
        .into_iter()
        .map(|r| ReplicaStatus {
            name: r.name,
            address: r.address,
            seen_ago_ms: r.seen_ago_ms,
        })
        .collect();
    Ok(Json(Replicas {
        leader: lease.current.then_some(lease.holder),
        epoch: lease.epoch,
        replicas,
    }))
}
