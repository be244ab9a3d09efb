//! The HTTP/JSON API (axum). Errors are one enum turned into `{"error", "message"}` without
//! side effects; every write is done by a named token and recorded as an event.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rampart_api::{
    DeployRequest, ErrorBody, PushRequest, RegisterRequest, Report, RollbackRequest,
    VersionDocument,
};
use serde::Deserialize;

use crate::service::{Actor, ControlError, ControlPlane};
use crate::tokens::{Role, Tokens};

pub struct AppState {
    pub control: Arc<ControlPlane>,
    pub tokens: Tokens,
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/openapi.json",
            get(|| async { Json(crate::openapi::document()) }),
        )
        .route("/v1/versions", post(push).get(versions))
        .route("/v1/versions/{id}", get(version))
        .route("/v1/environments", get(environments))
        .route("/v1/environments/{env}/deploy", post(deploy))
        .route("/v1/environments/{env}/rollback", post(rollback))
        .route(
            "/v1/environments/{env}/restart",
            post(start_restart).get(restart_status),
        )
        .route("/v1/events", get(events))
        .route("/v1/releases", get(releases))
        .route("/v1/releases/{id}/picture.svg", get(release_picture))
        .route("/v1/releases/{id}/{action}", post(release_action))
        .route("/v1/approvals", get(approvals))
        .route("/v1/approvals/{id}/approve", post(approve))
        .route("/v1/agents/register", post(register))
        .route("/v1/agents/{id}/desired", get(desired))
        .route("/v1/agents/{id}/report", post(report))
        .merge(crate::ops_api::routes())
        .merge(crate::status_api::routes())
        .with_state(state)
}

pub struct ApiError(
    pub(crate) StatusCode,
    pub(crate) &'static str,
    pub(crate) String,
);

impl From<ControlError> for ApiError {
    fn from(e: ControlError) -> Self {
        match e {
            ControlError::Invalid(m) => ApiError(StatusCode::UNPROCESSABLE_ENTITY, "invalid", m),
            ControlError::NotFound(m) => ApiError(StatusCode::NOT_FOUND, "not_found", m),
            ControlError::Conflict(m) => ApiError(StatusCode::CONFLICT, "pipeline", m),
            ControlError::Forbidden(m) => ApiError(StatusCode::FORBIDDEN, "forbidden", m),
            e @ ControlError::ApprovalRequired(_) => {
                ApiError(StatusCode::CONFLICT, "approval_required", e.to_string())
            }
            ControlError::Store(e) => {
                tracing::error!(error = %e, "store error");
                ApiError(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error; see the control plane's log".into(),
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.0,
            Json(ErrorBody {
                error: self.1.into(),
                message: self.2,
            }),
        )
            .into_response()
    }
}

/// The caller, from its bearer token.
pub struct Caller(Actor);

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| {
                ApiError(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "missing bearer token".into(),
                )
            })?;
        let (name, role) = state.tokens.check(token.trim()).ok_or_else(|| {
            ApiError(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "unknown token".into(),
            )
        })?;
        Ok(Caller(Actor { name, role }))
    }
}

impl Caller {
    pub(crate) fn at_least(self, role: Role) -> Result<Actor, ApiError> {
        if self.0.role >= role {
            Ok(self.0)
        } else {
            Err(ApiError(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "this needs the {role:?} role; {} is {:?}",
                    self.0.name, self.0.role
                )
                .to_lowercase(),
            ))
        }
    }
}

/// JSON bodies with errors in our format (what was wrong, where).
pub struct Body<T>(pub(crate) T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> axum::extract::FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Body(v)),
            Err(e) => Err(ApiError(
                StatusCode::BAD_REQUEST,
                "bad_request",
                e.body_text(),
            )),
        }
    }
}

pub(crate) type ApiResult<T> = std::result::Result<T, ApiError>;

async fn push(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    Body(req): Body<PushRequest>,
) -> ApiResult<impl IntoResponse> {
    let actor = caller.at_least(Role::Operator)?;
    let pushed = s
        .control
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

async fn versions(State(s): State<Arc<AppState>>, caller: Caller) -> ApiResult<impl IntoResponse> {
    caller.at_least(Role::Viewer)?;
    Ok(Json(s.control.versions().await?))
}

async fn version(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    caller.at_least(Role::Viewer)?;
    let (version, document) = s.control.version(&id).await?;
    Ok(Json(VersionDocument { version, document }))
}

async fn environments(
    State(s): State<Arc<AppState>>,
    caller: Caller,
) -> ApiResult<impl IntoResponse> {
    caller.at_least(Role::Viewer)?;
    Ok(Json(s.control.environments().await?))
}

async fn deploy(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    Path(env): Path<String>,
    Body(req): Body<DeployRequest>,
) -> ApiResult<impl IntoResponse> {
    let actor = caller.at_least(Role::Operator)?;
    Ok(Json(
        s.control
            .deploy(&actor, &env, &req.version, req.break_glass.as_deref())
            .await?,
    ))
}

async fn rollback(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    Path(env): Path<String>,
    Body(req): Body<RollbackRequest>,
) -> ApiResult<impl IntoResponse> {
    let actor = caller.at_least(Role::Operator)?;
    Ok(Json(
        s.control.rollback(&actor, &env, req.to.as_ref()).await?,
    ))
}

async fn start_restart(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    Path(env): Path<String>,
    Body(req): Body<rampart_api::RestartRequest>,
) -> ApiResult<impl IntoResponse> {
    let actor = caller.at_least(Role::Operator)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(s.control.start_restart(&actor, &env, &req.batch).await?),
    ))
}

async fn restart_status(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    Path(env): Path<String>,
) -> ApiResult<impl IntoResponse> {
    caller.at_least(Role::Viewer)?;
    let status = s.control.restart_status(&env).ok_or_else(|| {
        ControlError::NotFound(format!(
            "no restart of {env:?} since the control plane started"
        ))
    })?;
    Ok(Json(status))
}

#[derive(Deserialize)]
struct EventsQuery {
    #[serde(default)]
    after: i64,
}

async fn events(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    Query(q): Query<EventsQuery>,
) -> ApiResult<impl IntoResponse> {
    caller.at_least(Role::Viewer)?;
    Ok(Json(
        s.control
            .store()
            .events(q.after)
            .await
            .map_err(ControlError::from)?,
    ))
}

async fn register(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    Body(req): Body<RegisterRequest>,
) -> ApiResult<impl IntoResponse> {
    let actor = caller.at_least(Role::Viewer)?;
    Ok(Json(s.control.register(&actor, req).await?))
}

#[derive(Deserialize)]
struct DesiredQuery {
    #[serde(default)]
    current: String,
    #[serde(default)]
    wait_ms: u64,
    #[serde(default)]
    restart: Option<u64>,
}

async fn desired(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<DesiredQuery>,
) -> ApiResult<impl IntoResponse> {
    caller.at_least(Role::Viewer)?;
    let current = (!q.current.is_empty()).then_some(q.current.as_str());
    Ok(Json(
        s.control
            .desired(&id, current, q.restart, Duration::from_millis(q.wait_ms))
            .await?,
    ))
}

async fn report(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    Body(r): Body<Report>,
) -> ApiResult<impl IntoResponse> {
    caller.at_least(Role::Viewer)?;
    s.control.report(&id, r).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn approvals(State(s): State<Arc<AppState>>, caller: Caller) -> ApiResult<impl IntoResponse> {
    caller.at_least(Role::Viewer)?;
    Ok(Json(s.control.approvals().await?))
}

async fn approve(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<i64>,
) -> ApiResult<impl IntoResponse> {
    let actor = caller.at_least(Role::Viewer)?;
    Ok(Json(s.control.approve(&actor, id).await?))
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
