//! JWT validated locally against a JWKS fetched from a URL.
//!
//! The key set is fetched at start and every `refresh` in the background (each fetch bounded by
//! `timeout`); a failed refresh keeps the last good set. A token naming an unknown `kid`
//! triggers one early refresh (at most once a second), so key rotations are picked up at once.
//! Verified tokens are cached until their `exp` (at most 5 minutes) for the key set that
//! verified them, so the signature check is not paid on every request.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use rampart_model::JwtConfig;

use super::cache::{DecisionCache, key_of};
use super::{AuthError, Identity};
use rampart_net::Resolver;
use rampart_net::client::{HttpsClient, fetch, https_client};

const MAX_JWKS_BYTES: usize = 1024 * 1024;
const CACHE_CAPACITY: usize = 100_000;
const MAX_CACHE: Duration = Duration::from_secs(300);
const MIN_EARLY_REFRESH: Duration = Duration::from_secs(1);
const LEEWAY_SECS: u64 = 5;

struct Keys {
    set: JwkSet,
    generation: u64,
}

pub struct JwtVerifier {
    config: JwtConfig,
    client: HttpsClient,
    keys: ArcSwapOption<Keys>,
    generation: AtomicU64,
    /// Serialises fetches; holds the time of the last early (unknown-kid) refresh.
    fetching: tokio::sync::Mutex<Option<Instant>>,
    algorithms: Vec<Algorithm>,
    /// Token hash -> (identity, key-set generation that verified it).
    cache: DecisionCache<(Arc<Identity>, u64)>,
    name: Arc<str>,
}

impl JwtVerifier {
    pub fn start(
        config: &JwtConfig,
        resolver: &Resolver,
        name: Arc<str>,
    ) -> Result<Arc<JwtVerifier>, String> {
        let algorithms = config
            .algorithms
            .iter()
            .map(|a| {
                a.parse::<Algorithm>()
                    .map_err(|_| format!("unsupported algorithm {a}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let verifier = Arc::new(JwtVerifier {
            config: config.clone(),
            client: https_client(resolver, config.timeout),
            keys: ArcSwapOption::empty(),
            generation: AtomicU64::new(0),
            fetching: tokio::sync::Mutex::new(None),
            algorithms,
            cache: DecisionCache::new(CACHE_CAPACITY),
            name,
        });
        tokio::spawn(refresh_loop(Arc::downgrade(&verifier)));
        Ok(verifier)
    }

    /// Fetches the key set once (bounded by `timeout`); keeps the old set on failure.
    async fn refresh(&self, early: bool) {
        let mut last_early = self.fetching.lock().await;
        if early {
            // Unknown kids are attacker-controlled: at most one early refresh a second.
            if last_early.is_some_and(|t| t.elapsed() < MIN_EARLY_REFRESH) {
                return;
            }
            *last_early = Some(Instant::now());
        }
        let timeout = self.config.timeout;
        let url = &self.config.jwks_url;
        let result = match tokio::time::timeout(timeout, self.fetch()).await {
            Err(_) => Err(format!("JWKS at {url} did not answer within {timeout:?}")),
            Ok(r) => r,
        };
        match result {
            Ok(set) => {
                let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
                self.keys.store(Some(Arc::new(Keys { set, generation })));
            }
            Err(e) => {
                tracing::warn!(provider = %self.name, error = %e, "JWKS refresh failed; keeping the last good key set")
            }
        }
    }

    async fn fetch(&self) -> Result<JwkSet, String> {
        let req = Request::get(self.config.jwks_url.clone())
            .header(http::header::ACCEPT, "application/json")
            .body(Full::new(Bytes::new()))
            .map_err(|e| e.to_string())?;
        let (status, body) = fetch(&self.client, req, MAX_JWKS_BYTES).await?;
        if !status.is_success() {
            return Err(format!(
                "JWKS at {} answered {status}",
                self.config.jwks_url
            ));
        }
        serde_json::from_slice(&body)
            .map_err(|e| format!("JWKS at {}: unreadable: {e}", self.config.jwks_url))
    }

    pub async fn check(&self, token: &str) -> Result<Arc<Identity>, AuthError> {
        let key = key_of(token);
        let current = self.keys.load_full();
        if let (Some((id, generation)), Some(keys)) = (self.cache.get(&key), current.as_ref())
            && generation == keys.generation
        {
            return Ok(id);
        }
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| AuthError::Invalid(format!("malformed token: {e}")))?;
        if !self.algorithms.contains(&header.alg) {
            return Err(AuthError::Invalid(format!(
                "algorithm {:?} is not allowed",
                header.alg
            )));
        }
        let kid = header
            .kid
            .clone()
            .ok_or_else(|| AuthError::Invalid("token has no kid".into()))?;
        let mut keys = current;
        if keys.as_ref().is_none_or(|k| k.set.find(&kid).is_none()) {
            // Unknown key (or none yet): one early refresh, bounded by the fetch timeout.
            self.refresh(true).await;
            keys = self.keys.load_full();
        }
        let Some(keys) = keys else {
            return Err(AuthError::Unavailable(format!(
                "no key set from {} yet",
                self.config.jwks_url
            )));
        };
        let jwk = keys
            .set
            .find(&kid)
            .ok_or_else(|| AuthError::Invalid(format!("unknown key id {kid:?}")))?;
        let decoding = DecodingKey::from_jwk(jwk)
            .map_err(|e| AuthError::Invalid(format!("key {kid:?} unusable: {e}")))?;
        let mut validation = Validation::new(header.alg);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        // A configured issuer or audience is a required claim: a token without it is refused,
        // not waved through.
        let mut required = vec!["exp"];
        if self.config.issuer.is_some() {
            required.push("iss");
        }
        if self.config.audience.is_some() {
            required.push("aud");
        }
        validation.set_required_spec_claims(&required);
        match &self.config.issuer {
            Some(iss) => validation.set_issuer(&[iss]),
            None => validation.iss = None,
        }
        match &self.config.audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        let data = jsonwebtoken::decode::<serde_json::Value>(token, &decoding, &validation)
            .map_err(|e| AuthError::Invalid(describe(&e)))?;
        let claims = data.claims;
        let scopes = match claims.get("scope").or_else(|| claims.get("scp")) {
            Some(serde_json::Value::String(s)) => s.split_whitespace().map(str::to_owned).collect(),
            Some(serde_json::Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            _ => vec![],
        };
        let identity = Identity::new(
            self.name.clone(),
            claims
                .get("sub")
                .and_then(|v| v.as_str())
                .map(str::to_owned),
            scopes,
            claims
                .get("client_id")
                .or_else(|| claims.get("azp"))
                .and_then(|v| v.as_str())
                .map(str::to_owned),
            true,
        );
        let exp = claims.get("exp").and_then(|v| v.as_i64()).unwrap_or(0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let left = Duration::from_secs((exp - now).max(0) as u64).min(MAX_CACHE);
        self.cache.insert(
            key,
            (identity.clone(), keys.generation),
            Instant::now() + left,
        );
        Ok(identity)
    }
}

fn describe(e: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind;
    match e.kind() {
        ErrorKind::ExpiredSignature => "token expired".into(),
        ErrorKind::ImmatureSignature => "token not valid yet (nbf)".into(),
        ErrorKind::InvalidIssuer => "wrong issuer".into(),
        ErrorKind::InvalidAudience => "wrong audience".into(),
        ErrorKind::InvalidSignature => "bad signature".into(),
        ErrorKind::InvalidAlgorithm => "algorithm does not match the key".into(),
        ErrorKind::MissingRequiredClaim(c) => format!("missing claim {c}"),
        other => format!("invalid token: {other:?}"),
    }
}

async fn refresh_loop(verifier: Weak<JwtVerifier>) {
    loop {
        let Some(v) = verifier.upgrade() else { return };
        v.refresh(false).await;
        let every = v.config.refresh;
        drop(v);
        tokio::time::sleep(every).await;
    }
}
