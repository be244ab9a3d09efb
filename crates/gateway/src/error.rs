//! Proxy errors and the one place they become HTTP responses.
//!
//! Each error says where it came from (the phase) and maps to a status: 400 bad request (a
//! path refused by normalization, a bad Host), 404 no route, 408 request body stalled,
//! 413 body too large, 429 rate limited, 403 CORS preflight refused, 502 upstream connect or protocol failure, 503 shed or no endpoint,
//! 504 upstream timeout. The body is a small JSON document; internals never leak to clients.
//! A gRPC client gets the same error as a gRPC status instead (`into_grpc_response`).

use std::time::Duration;

use http::{HeaderValue, Response, StatusCode, header};

use crate::auth::AuthError;
use crate::grpc;
use crate::response::{ResponseBody, full};
use crate::upstream::conn::SendError;

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("no route matches this request")]
    NoRoute,
    #[error("{scope} concurrency limit reached")]
    Shed { scope: &'static str },
    #[error("request body exceeds the limit of {limit} bytes")]
    BodyTooLarge { limit: u64 },
    #[error("upstream {upstream} has no endpoints")]
    NoEndpoint { upstream: String },
    #[error("could not connect to upstream {upstream} ({endpoint}): {reason}")]
    Connect {
        upstream: String,
        endpoint: String,
        reason: String,
    },
    #[error("upstream {upstream} did not answer within {after:?}")]
    Timeout { upstream: String, after: Duration },
    #[error("upstream {upstream} ({endpoint}) failed: {reason}")]
    Upstream {
        upstream: String,
        endpoint: String,
        reason: String,
    },
    #[error("invalid request: {0}")]
    BadRequest(String),
    #[error("the request body made no progress for {after:?}")]
    BodyTimeout { after: Duration },
    #[error("{0}")]
    Auth(#[from] AuthError),
    #[error("rate limit reached; retry after {retry_after}s")]
    RateLimited {
        retry_after: u64,
        policy: HeaderValue,
        state: HeaderValue,
    },
    #[error("the shared rate-limit counters are unavailable")]
    RateLimitUnavailable,
    #[error("CORS preflight refused: {0}")]
    CorsRefused(String),
}

impl ProxyError {
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::NoRoute => StatusCode::NOT_FOUND,
            ProxyError::Shed { .. } | ProxyError::NoEndpoint { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ProxyError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::Connect { .. } | ProxyError::Upstream { .. } => StatusCode::BAD_GATEWAY,
            ProxyError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ProxyError::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            ProxyError::Auth(AuthError::Missing(_) | AuthError::Invalid(_)) => {
                StatusCode::UNAUTHORIZED
            }
            ProxyError::Auth(AuthError::Forbidden(_)) => StatusCode::FORBIDDEN,
            ProxyError::Auth(AuthError::Unavailable(_)) => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ProxyError::RateLimitUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::CorsRefused(_) => StatusCode::FORBIDDEN,
        }
    }

    /// Where the request failed.
    pub fn phase(&self) -> &'static str {
        match self {
            ProxyError::NoRoute => "routing",
            ProxyError::Shed { .. } => "admission",
            ProxyError::BodyTooLarge { .. }
            | ProxyError::BadRequest(_)
            | ProxyError::BodyTimeout { .. } => "request",
            ProxyError::NoEndpoint { .. } => "upstream_selection",
            ProxyError::Connect { .. } => "upstream_connect",
            ProxyError::Timeout { .. } => "upstream_timeout",
            ProxyError::Upstream { .. } => "upstream_response",
            ProxyError::Auth(_) => "auth",
            ProxyError::RateLimited { .. } | ProxyError::RateLimitUnavailable => "rate_limit",
            ProxyError::CorsRefused(_) => "cors",
        }
    }

    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ProxyError::NoRoute => "no_route",
            ProxyError::Shed { .. } => "overloaded",
            ProxyError::BodyTooLarge { .. } => "body_too_large",
            ProxyError::BadRequest(_) => "bad_request",
            ProxyError::BodyTimeout { .. } => "request_body_timeout",
            ProxyError::NoEndpoint { .. } => "no_endpoint",
            ProxyError::Connect { .. } => "upstream_connect_failed",
            ProxyError::Timeout { .. } => "upstream_timeout",
            ProxyError::Upstream { .. } => "upstream_failed",
            ProxyError::Auth(AuthError::Missing(_) | AuthError::Invalid(_)) => "unauthorized",
            ProxyError::Auth(AuthError::Forbidden(_)) => "forbidden",
            ProxyError::Auth(AuthError::Unavailable(_)) => "auth_unavailable",
            ProxyError::RateLimited { .. } => "rate_limited",
            ProxyError::RateLimitUnavailable => "rate_limit_unavailable",
            ProxyError::CorsRefused(_) => "cors_refused",
        }
    }

    /// What the client is told: enough to act on, nothing about internal addresses.
    pub fn public_message(&self) -> String {
        match self {
            ProxyError::Connect { upstream, .. } => {
                format!("could not connect to upstream {upstream}")
            }
            ProxyError::Upstream { upstream, .. } => {
                format!("upstream {upstream} failed before answering")
            }
            ProxyError::Auth(AuthError::Unavailable(_)) => {
                "authentication is unavailable; try again later".into()
            }
            other => other.to_string(),
        }
    }

    /// True when the request never reached the upstream application, so any method may be retried.
    pub fn before_upstream(&self) -> bool {
        matches!(self, ProxyError::Connect { .. })
    }

    /// Classifies a failed upstream exchange: connect failures (DNS, refused, connect timeout)
    /// versus failures after the request was sent, and the body limits behind either.
    pub fn from_send(upstream: &str, endpoint: &str, e: &SendError) -> ProxyError {
        use std::error::Error as _;
        let http = match e {
            SendError::Connect(reason) => {
                return ProxyError::Connect {
                    upstream: upstream.into(),
                    endpoint: endpoint.into(),
                    reason: reason.clone(),
                };
            }
            SendError::Http(h) => h,
        };
        let mut reason = http.to_string();
        let mut source = http.source();
        while let Some(s) = source {
            if let Some(too_large) = s.downcast_ref::<crate::body::BodyTooLarge>() {
                return ProxyError::BodyTooLarge {
                    limit: too_large.limit,
                };
            }
            if let Some(stalled) = s.downcast_ref::<crate::body::BodyStalled>() {
                return ProxyError::BodyTimeout {
                    after: stalled.after,
                };
            }
            reason.push_str(": ");
            reason.push_str(&s.to_string());
            source = s.source();
        }
        ProxyError::Upstream {
            upstream: upstream.into(),
            endpoint: endpoint.into(),
            reason,
        }
    }

    /// The gRPC status a gRPC client is answered with.
    pub fn grpc_code(&self) -> grpc::Code {
        match self {
            ProxyError::NoRoute => grpc::Code::Unimplemented,
            ProxyError::Timeout { .. } | ProxyError::BodyTimeout { .. } => {
                grpc::Code::DeadlineExceeded
            }
            ProxyError::Auth(AuthError::Missing(_) | AuthError::Invalid(_)) => {
                grpc::Code::Unauthenticated
            }
            ProxyError::Auth(AuthError::Forbidden(_)) | ProxyError::CorsRefused(_) => {
                grpc::Code::PermissionDenied
            }
            ProxyError::RateLimited { .. } | ProxyError::BodyTooLarge { .. } => {
                grpc::Code::ResourceExhausted
            }
            ProxyError::BadRequest(_) => grpc::Code::Internal,
            ProxyError::Shed { .. }
            | ProxyError::NoEndpoint { .. }
            | ProxyError::Connect { .. }
            | ProxyError::Upstream { .. }
            | ProxyError::Auth(AuthError::Unavailable(_))
            | ProxyError::RateLimitUnavailable => grpc::Code::Unavailable,
        }
    }

    /// The answer to a gRPC client: trailers-only (HTTP 200, `grpc-status`, `grpc-message`),
    /// with the same `Retry-After`, rate-limit and request-id headers as the HTTP form.
    pub fn into_grpc_response(
        self,
        route: Option<&str>,
        request_id: &HeaderValue,
    ) -> Response<ResponseBody> {
        let code = self.grpc_code();
        let message = format!("rampart: {} ({})", self.public_message(), self.code());
        let mut resp = self.into_response(route, request_id);
        *resp.status_mut() = StatusCode::OK;
        *resp.body_mut() = full(bytes::Bytes::new());
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
        h.remove(header::WWW_AUTHENTICATE);
        h.insert("grpc-status", HeaderValue::from(code as u16));
        h.insert("grpc-message", grpc::message_value(&message));
        resp
    }

    pub fn into_response(
        self,
        route: Option<&str>,
        request_id: &HeaderValue,
    ) -> Response<ResponseBody> {
        let body = serde_json::json!({
            "error": self.code(),
            "phase": self.phase(),
            "message": self.public_message(),
            "route": route,
            "request_id": request_id.to_str().unwrap_or_default(),
        });
        let mut resp = Response::new(full(body.to_string()));
        *resp.status_mut() = self.status();
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if matches!(
            self,
            ProxyError::Shed { .. }
                | ProxyError::NoEndpoint { .. }
                | ProxyError::Auth(AuthError::Unavailable(_))
                | ProxyError::RateLimitUnavailable
        ) {
            h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if let ProxyError::RateLimited {
            retry_after,
            policy,
            state,
        } = &self
        {
            h.insert(header::RETRY_AFTER, (*retry_after).into());
            h.insert(crate::rate_limit::RATELIMIT_POLICY.clone(), policy.clone());
            h.insert(crate::rate_limit::RATELIMIT.clone(), state.clone());
        }
        if let ProxyError::Auth(AuthError::Missing(_) | AuthError::Invalid(_)) = &self {
            h.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer error=\"invalid_token\""),
            );
        }
        h.insert("x-request-id", request_id.clone());
        resp
    }
}
