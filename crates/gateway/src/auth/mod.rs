//! Authentication per route: OAuth2 introspection, JWT against a JWKS, API keys.
//!
//! Every call a provider makes (introspection, JWKS fetch) is bounded by the provider's
//! `timeout`, which covers DNS resolution, connect, request and reading the answer together.
//! Outcomes: an [`Identity`] passed upstream in `x-auth-*` headers, or an [`AuthError`]:
//! 401 (missing or invalid credentials), 403 (valid but lacking a scope), 503 (provider
//! unreachable and `on_failure: deny`).

mod api_key;
mod cache;
mod introspection;
mod jwt;

use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue};
use rampart_model::{AuthProviderConfig, OnFailure};

use crate::metrics::{AuthOutcomes, Metrics};
use rampart_net::Resolver;

pub use cache::DecisionCache;

/// Who a request is, as established by a provider. Shared (`Arc`) between cache and requests;
/// the headers that carry it upstream are built once, when the identity is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub provider: Arc<str>,
    pub subject: Option<String>,
    pub scopes: Vec<String>,
    pub client_id: Option<String>,
    /// False when the provider could not be reached and `on_failure: allow` let the request in.
    pub verified: bool,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl Identity {
    pub fn new(
        provider: Arc<str>,
        subject: Option<String>,
        scopes: Vec<String>,
        client_id: Option<String>,
        verified: bool,
    ) -> Arc<Identity> {
        let mut headers = Vec::with_capacity(5);
        let mut add = |name: &HeaderName, value: &str| {
            if let Ok(v) = HeaderValue::try_from(value) {
                headers.push((name.clone(), v));
            }
        };
        add(&X_AUTH_PROVIDER, &provider);
        add(&X_AUTH_VERIFIED, if verified { "true" } else { "false" });
        if let Some(s) = &subject {
            add(&X_AUTH_SUBJECT, s);
        }
        if !scopes.is_empty() {
            add(&X_AUTH_SCOPES, &scopes.join(" "));
        }
        if let Some(c) = &client_id {
            add(&X_AUTH_CLIENT_ID, c);
        }
        Arc::new(Identity {
            provider,
            subject,
            scopes,
            client_id,
            verified,
            headers,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing credentials: {0}")]
    Missing(String),
    #[error("invalid credentials: {0}")]
    Invalid(String),
    #[error("not allowed: {0}")]
    Forbidden(String),
    #[error("authentication unavailable: {0}")]
    Unavailable(String),
}

enum Kind {
    Introspection(Box<introspection::Introspector>),
    Jwt(Arc<jwt::JwtVerifier>),
    ApiKey(api_key::ApiKeys),
}

pub struct Provider {
    pub config: AuthProviderConfig,
    name: Arc<str>,
    kind: Kind,
    on_failure: OnFailure,
    outcomes: AuthOutcomes,
}

impl Provider {
    pub fn new(
        config: &AuthProviderConfig,
        resolver: &Resolver,
        metrics: &Metrics,
    ) -> Result<Arc<Provider>, String> {
        let name: Arc<str> = config.name().into();
        let (kind, on_failure) = match config {
            AuthProviderConfig::Introspection(c) => (
                Kind::Introspection(Box::new(introspection::Introspector::new(
                    c,
                    resolver,
                    name.clone(),
                )?)),
                c.on_failure,
            ),
            AuthProviderConfig::Jwt(c) => (
                Kind::Jwt(jwt::JwtVerifier::start(c, resolver, name.clone())?),
                c.on_failure,
            ),
            AuthProviderConfig::ApiKey(c) => (
                Kind::ApiKey(api_key::ApiKeys::new(c, name.clone())),
                OnFailure::Deny,
            ),
        };
        Ok(Arc::new(Provider {
            config: config.clone(),
            name,
            kind,
            on_failure,
            outcomes: metrics.auth_outcomes(config.name()),
        }))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Authenticates a request and checks the route's required scopes.
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
        scopes: &[String],
    ) -> Result<Arc<Identity>, AuthError> {
        let result = match &self.kind {
            Kind::Introspection(i) => match bearer(headers) {
                Ok(token) => i.check(token).await,
                Err(e) => Err(e),
            },
            Kind::Jwt(j) => match bearer(headers) {
                Ok(token) => j.check(token).await,
                Err(e) => Err(e),
            },
            Kind::ApiKey(k) => k.check(headers),
        };
        let result = match result {
            // A route that requires scopes never lets an unverified request in: nobody can
            // say it has them.
            Err(AuthError::Unavailable(reason))
                if self.on_failure == OnFailure::Allow && scopes.is_empty() =>
            {
                tracing::warn!(provider = %self.name, %reason, "auth unavailable; letting request in unverified (on_failure: allow)");
                Ok(Identity::new(self.name.clone(), None, vec![], None, false))
            }
            other => other,
        };
        let result = result.and_then(|id| match scopes.iter().find(|s| !id.scopes.contains(s)) {
            Some(missing) => Err(AuthError::Forbidden(format!("scope {missing:?} required"))),
            None => Ok(id),
        });
        let outcomes = &self.outcomes;
        let counter = match &result {
            Ok(id) if id.verified => &outcomes.ok,
            Ok(_) => &outcomes.unverified,
            Err(AuthError::Missing(_)) => &outcomes.missing,
            Err(AuthError::Invalid(_)) => &outcomes.invalid,
            Err(AuthError::Forbidden(_)) => &outcomes.forbidden,
            Err(AuthError::Unavailable(_)) => &outcomes.unavailable,
        };
        counter.inc();
        if result.is_err() {
            outcomes
                .totals
                .auth_failures
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        result
    }
}

/// The bearer token of an `Authorization` header.
fn bearer(headers: &HeaderMap) -> Result<&str, AuthError> {
    let value = headers
        .get(http::header::AUTHORIZATION)
        .ok_or_else(|| AuthError::Missing("no Authorization header".into()))?;
    let text = value
        .to_str()
        .map_err(|_| AuthError::Invalid("Authorization header is not ASCII".into()))?;
    let (scheme, token) = text.split_once(' ').ok_or_else(|| {
        AuthError::Invalid("Authorization header is not \"Bearer <token>\"".into())
    })?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(AuthError::Invalid(
            "Authorization header is not \"Bearer <token>\"".into(),
        ));
    }
    Ok(token.trim())
}

static X_AUTH_PROVIDER: HeaderName = HeaderName::from_static("x-auth-provider");
static X_AUTH_SUBJECT: HeaderName = HeaderName::from_static("x-auth-subject");
static X_AUTH_SCOPES: HeaderName = HeaderName::from_static("x-auth-scopes");
static X_AUTH_CLIENT_ID: HeaderName = HeaderName::from_static("x-auth-client-id");
static X_AUTH_VERIFIED: HeaderName = HeaderName::from_static("x-auth-verified");

/// Removes identity headers a client may have sent: only the gateway sets them.
pub fn strip_identity(headers: &mut HeaderMap) {
    for name in [
        &X_AUTH_PROVIDER,
        &X_AUTH_SUBJECT,
        &X_AUTH_SCOPES,
        &X_AUTH_CLIENT_ID,
        &X_AUTH_VERIFIED,
    ] {
        if headers.contains_key(name) {
            headers.remove(name);
        }
    }
}

/// Passes an identity upstream.
pub fn add_identity(headers: &mut HeaderMap, id: &Identity) {
    for (name, value) in &id.headers {
        headers.insert(name.clone(), value.clone());
    }
}
