//! The one place an error becomes a response: `{"error": code, "message": what, where, why}`
//! with the status that fits, for everything the API answers, extractor rejections included.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rampart_api::ErrorBody;

use crate::error::ControlError;

/// An answer that is not a success: status, stable code, message.
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
            // A replica that led under a superseded epoch: nothing was written, and the
            // replica that leads now will take the request.
            ControlError::Store(e @ crate::store::StoreError::Fenced { .. }) => ApiError(
                StatusCode::SERVICE_UNAVAILABLE,
                "no_leader",
                format!("{e}; this replica no longer leads — retry"),
            ),
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

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        ControlError::from(e).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let unavailable = self.0 == StatusCode::SERVICE_UNAVAILABLE;
        let mut resp = (
            self.0,
            Json(ErrorBody {
                error: self.1.into(),
                message: self.2,
            }),
        )
            .into_response();
        // Nothing was done: the client may come back in a second.
        if unavailable {
            resp.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
        }
        resp
    }
}

impl ApiError {
    /// A request the API cannot read: bad JSON, a path or query value of the wrong type.
    pub(crate) fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError(StatusCode::BAD_REQUEST, "bad_request", message.into())
    }
}

pub(crate) type ApiResult<T> = std::result::Result<T, ApiError>;
