//! What handlers take from a request, each refusing in the API's JSON error shape (never
//! axum's plain-text rejections): the caller from its bearer token, and the body, path and query
//! parsed into types.

use std::sync::Arc;

use axum::Json;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::AppState;
use super::error::ApiError;
use crate::tokens::Actor;
use crate::tokens::Role;

/// The caller, from its bearer token.
pub struct Caller(Actor);

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        bearer_actor(&parts.headers, &state.tokens).map(Caller)
    }
}

/// Who the bearer token of a request's `headers` belongs to.
pub(crate) fn bearer_actor(
    headers: &axum::http::HeaderMap,
    tokens: &crate::tokens::Tokens,
) -> Result<Actor, ApiError> {
    let token = headers
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
    tokens.check(token.trim()).ok_or_else(|| {
        ApiError(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "unknown token".into(),
        )
    })
}

/// `actor`, if its token is an agent's: the agent protocol takes nothing else.
pub(crate) fn agent_only(actor: Actor) -> Result<Actor, ApiError> {
    if actor.role != Role::Agent {
        return Err(ApiError(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "the agent protocol takes an agent token; {} is {:?}",
                actor.name, actor.role
            ),
        ));
    }
    Ok(actor)
}

/// The instance credential a poll or report carries in its `headers`.
pub(crate) fn instance_credential(headers: &axum::http::HeaderMap) -> Result<String, ApiError> {
    headers
        .get(INSTANCE_CREDENTIAL)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_owned())
        .ok_or_else(|| {
            ApiError(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                format!("missing {INSTANCE_CREDENTIAL}: register first, then send the credential it returned"),
            )
        })
}

/// An extractor for a caller with at least `$role`: the handler's signature says who may call it.
macro_rules! role_extractor {
    ($(#[$doc:meta])* $name:ident, $role:expr) => {
        $(#[$doc])*
        pub struct $name(pub(crate) Actor);

        impl FromRequestParts<Arc<AppState>> for $name {
            type Rejection = ApiError;

            async fn from_request_parts(
                parts: &mut Parts,
                state: &Arc<AppState>,
            ) -> Result<Self, ApiError> {
                let caller = Caller::from_request_parts(parts, state).await?;
                caller.at_least($role).map($name)
            }
        }
    };
}

role_extractor!(
    /// A caller with at least the viewer role (dashboards, people; not agents).
    Viewer,
    Role::Viewer
);

/// A gateway's agent: a token with the agent role, and no other (an operator's token is not a
/// gateway's).
pub struct AgentCaller(pub(crate) Actor);

impl FromRequestParts<Arc<AppState>> for AgentCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        let Caller(actor) = Caller::from_request_parts(parts, state).await?;
        agent_only(actor).map(AgentCaller)
    }
}

/// The header an agent proves which instance it is with: the credential its registration got.
pub const INSTANCE_CREDENTIAL: &str = "x-rampart-instance-credential";

/// The instance credential a poll or report carries.
pub struct InstanceCredential(pub(crate) String);

impl<S: Send + Sync> FromRequestParts<S> for InstanceCredential {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        instance_credential(&parts.headers).map(InstanceCredential)
    }
}
role_extractor!(
    /// A caller with at least the operator role.
    Operator,
    Role::Operator
);
role_extractor!(
    /// A caller with the approver role.
    Approver,
    Role::Approver
);

/// The application state, as handlers take it.
pub type Ctl = axum::extract::State<Arc<AppState>>;

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

/// A JSON body, parsed into `T`; what cannot be read is refused with what was wrong and where
/// (`alerts[2].status: unknown variant ...`).
///
/// A number with no fractional part is an integer wherever it is written (`5.0` is `5`), as JSON
/// Schema counts it: the body is read as JSON first and such numbers made integers before `T`
/// is built from it.
pub struct Body<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let Json(value) = Json::<Value>::from_request(req, state)
            .await
            .map_err(|e| ApiError::bad_request(e.body_text()))?;
        // Every body this API takes is an object; serde would also build a struct from an array.
        if !value.is_object() {
            return Err(ApiError::bad_request("the body must be a JSON object"));
        }
        serde_path_to_error::deserialize(integral(value))
            .map(Body)
            .map_err(|e| match e.path().to_string().as_str() {
                "." => ApiError::bad_request(e.inner().to_string()),
                path => ApiError::bad_request(format!("{path}: {}", e.inner())),
            })
    }
}

/// `value` with every float that has no fractional part (and fits) made an integer.
fn integral(value: Value) -> Value {
    match value {
        Value::Number(n) if n.is_f64() => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f >= 0.0 && f < u64::MAX as f64 => Value::from(f as u64),
            Some(f) if f.fract() == 0.0 && f < 0.0 && f >= i64::MIN as f64 => Value::from(f as i64),
            _ => Value::Number(n),
        },
        Value::Array(items) => Value::Array(items.into_iter().map(integral).collect()),
        Value::Object(map) => {
            Value::Object(map.into_iter().map(|(k, v)| (k, integral(v))).collect())
        }
        other => other,
    }
}

/// Path parameters.
pub struct Path<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| Path(v))
            .map_err(|e| ApiError::bad_request(e.body_text()))
    }
}

/// The query string.
pub struct Query<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| Query(v))
            .map_err(|e| ApiError::bad_request(e.body_text()))
    }
}

/// An `application/x-www-form-urlencoded` body (the status page's forms).
pub struct Form<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Form<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        axum::extract::Form::<T>::from_request(req, state)
            .await
            .map(|axum::extract::Form(v)| Form(v))
            .map_err(|e| ApiError::bad_request(e.body_text()))
    }
}

#[cfg(test)]
mod tests {
    use super::integral;
    use serde_json::json;

    #[test]
    fn integral_floats_become_integers_and_others_stay() {
        let v = integral(json!({ "a": [5.0, -3.0, 2.5, 1e300], "b": { "c": 0.0 }, "d": "5.0" }));
        assert_eq!(
            v,
            json!({ "a": [5, -3, 2.5, 1e300], "b": { "c": 0 }, "d": "5.0" })
        );
    }
}
