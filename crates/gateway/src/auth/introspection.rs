//! OAuth2 token introspection (RFC 7662) with a decision cache.
//!
//! Active and inactive answers are cached for `cache_ttl`, an active one never beyond the
//! token's `exp`. Failures (timeout, refused, 5xx, garbage) are not cached, so recovery is
//! immediate, but concurrent requests with the same token share one call.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Method, Request, header};
use http_body_util::Full;
use rampart_model::IntrospectionConfig;
use serde::Deserialize;

use super::cache::{DecisionCache, key_of};
use super::{AuthError, Identity};
use rampart_net::Resolver;
use rampart_net::client::{HttpsClient, fetch, https_client};

const CACHE_CAPACITY: usize = 100_000;
const MAX_ANSWER_BYTES: usize = 64 * 1024;

pub struct Introspector {
    config: IntrospectionConfig,
    client: HttpsClient,
    cache: DecisionCache<Result<Arc<Identity>, AuthError>>,
    name: Arc<str>,
}

#[derive(Deserialize)]
struct Answer {
    active: bool,
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    exp: Option<i64>,
}

impl Introspector {
    pub fn new(
        config: &IntrospectionConfig,
        resolver: &Resolver,
        name: Arc<str>,
    ) -> Result<Introspector, String> {
        Ok(Introspector {
            config: config.clone(),
            client: https_client(resolver, config.timeout),
            cache: DecisionCache::new(CACHE_CAPACITY),
            name,
        })
    }

    pub async fn check(&self, token: &str) -> Result<Arc<Identity>, AuthError> {
        self.cache
            .get_or_fetch(key_of(token), || self.introspect(token))
            .await
    }

    /// One call to the introspection endpoint, bounded by the provider's timeout.
    async fn introspect(&self, token: &str) -> (Result<Arc<Identity>, AuthError>, Option<Instant>) {
        let timeout = self.config.timeout;
        let answer = match tokio::time::timeout(timeout, self.call(token)).await {
            Err(_) => {
                return (
                    Err(AuthError::Unavailable(format!(
                        "introspection at {} did not answer within {timeout:?}",
                        self.config.endpoint
                    ))),
                    None,
                );
            }
            Ok(Err(reason)) => return (Err(AuthError::Unavailable(reason)), None),
            Ok(Ok(answer)) => answer,
        };
        let now = Instant::now();
        let ttl = self.config.cache_ttl;
        if !answer.active {
            return (
                Err(AuthError::Invalid("token is not active".into())),
                Some(now + ttl),
            );
        }
        let unix_now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let ttl = match answer.exp {
            Some(exp) if exp <= unix_now => {
                return (
                    Err(AuthError::Invalid("token expired".into())),
                    Some(now + ttl),
                );
            }
            Some(exp) => ttl.min(Duration::from_secs((exp - unix_now) as u64)),
            None => ttl,
        };
        let identity = Identity::new(
            self.name.clone(),
            answer.sub,
            answer
                .scope
                .map(|s| s.split_whitespace().map(str::to_owned).collect())
                .unwrap_or_default(),
            answer.client_id,
            true,
        );
        (Ok(identity), Some(now + ttl))
    }

    async fn call(&self, token: &str) -> Result<Answer, String> {
        let body = format!("token={}&token_type_hint=access_token", form_encode(token));
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(self.config.endpoint.clone())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ACCEPT, "application/json");
        if let (Some(id), Some(secret)) = (&self.config.client_id, &self.config.client_secret) {
            use base64::Engine;
            let basic = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
            req = req.header(header::AUTHORIZATION, format!("Basic {basic}"));
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| format!("building request: {e}"))?;
        let (status, bytes) = fetch(&self.client, req, MAX_ANSWER_BYTES)
            .await
            .map_err(|e| format!("introspection at {}: {e}", self.config.endpoint))?;
        if !status.is_success() {
            return Err(format!(
                "introspection at {} answered {status}",
                self.config.endpoint
            ));
        }
        serde_json::from_slice(&bytes).map_err(|e| {
            format!(
                "introspection at {}: unreadable answer: {e}",
                self.config.endpoint
            )
        })
    }
}

/// application/x-www-form-urlencoded encoding of a token.
fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
