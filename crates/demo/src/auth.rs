//! An OAuth2-style auth server: token introspection (RFC 7662) and a JWKS, with tokens it mints
//! and behaviour switchable at run time (ok, slow, error, hang, close).
//!
//! - `POST /introspect` (form `token=…`): `{"active": …, "sub": …, "scope": …, "exp": …}`.
//! - `GET /.well-known/jwks.json`: the current signing keys (ES256).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use jsonwebtoken::{Algorithm, EncodingKey, Header};

use crate::serve::{Running, serve_with};

/// How the server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Ok,
    /// Answers after a delay.
    Slow(Duration),
    /// Answers 500.
    Error,
    /// Accepts and reads the request, then never answers.
    Hang,
    /// Closes each connection as soon as it is accepted.
    Close,
}

struct SigningKey {
    kid: String,
    encoding: EncodingKey,
    /// The public key as a JWK.
    jwk: serde_json::Value,
}

struct State {
    mode: Mutex<Mode>,
    jwks_mode: Mutex<Mode>,
    tokens: Mutex<HashMap<String, serde_json::Value>>,
    keys: Mutex<Vec<Arc<SigningKey>>>,
    introspections: AtomicU64,
    jwks_fetches: AtomicU64,
    key_counter: AtomicU64,
}

/// A running auth server; stops when dropped.
pub struct AuthServer {
    pub addr: SocketAddr,
    state: Arc<State>,
    _running: Running,
}

pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn b64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn new_key(n: u64) -> Result<SigningKey, String> {
    let pair =
        rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|e| e.to_string())?;
    let encoding = EncodingKey::from_ec_der(&pair.serialize_der());
    let raw = pair.public_key_raw();
    // Uncompressed point: 0x04 || x (32) || y (32).
    if raw.len() != 65 {
        return Err(format!("unexpected public key length {}", raw.len()));
    }
    let kid = format!("key-{n}");
    let jwk = serde_json::json!({
        "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": kid,
        "x": b64url(&raw[1..33]), "y": b64url(&raw[33..65]),
    });
    Ok(SigningKey { kid, encoding, jwk })
}

impl AuthServer {
    pub async fn start() -> std::io::Result<AuthServer> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    pub async fn start_on(addr: SocketAddr) -> std::io::Result<AuthServer> {
        let key = new_key(1).map_err(std::io::Error::other)?;
        let state = Arc::new(State {
            mode: Mutex::new(Mode::Ok),
            jwks_mode: Mutex::new(Mode::Ok),
            tokens: Mutex::new(HashMap::new()),
            keys: Mutex::new(vec![Arc::new(key)]),
            introspections: AtomicU64::new(0),
            jwks_fetches: AtomicU64::new(0),
            key_counter: AtomicU64::new(1),
        });
        let (admit_state, handler_state) = (state.clone(), state.clone());
        let running = serve_with(
            addr,
            move || *lock(&admit_state.mode) != Mode::Close,
            move |req| {
                let st = handler_state.clone();
                async move { handle(&st, req).await }
            },
        )
        .await?;
        let addr = running.addr;
        Ok(AuthServer {
            addr,
            state,
            _running: running,
        })
    }

    pub fn set_mode(&self, mode: Mode) {
        *lock(&self.state.mode) = mode;
    }

    /// Behaviour of the JWKS endpoint only (the introspection endpoint follows `set_mode`).
    pub fn set_jwks_mode(&self, mode: Mode) {
        *lock(&self.state.jwks_mode) = mode;
    }

    pub fn introspections(&self) -> u64 {
        self.state.introspections.load(Ordering::Relaxed)
    }

    pub fn jwks_fetches(&self) -> u64 {
        self.state.jwks_fetches.load(Ordering::Relaxed)
    }

    /// An opaque token that introspects as active for `ttl`, with the given subject and scope.
    pub fn mint_opaque(&self, sub: &str, scope: &str, ttl: Duration) -> String {
        let token = format!("opaque-{:032x}", fastrand::u128(..));
        let claims = serde_json::json!({
            "active": true, "sub": sub, "scope": scope, "client_id": "testkit",
            "exp": now_secs() + ttl.as_secs() as i64,
        });
        lock(&self.state.tokens).insert(token.clone(), claims);
        token
    }

    /// Marks a token inactive (revoked).
    pub fn revoke(&self, token: &str) {
        if let Some(c) = lock(&self.state.tokens).get_mut(token) {
            c["active"] = serde_json::Value::Bool(false);
        }
    }

    /// A JWT signed with the newest key, with these claims (add `exp`, `iss`, `aud` yourself).
    pub fn mint_jwt(&self, claims: &serde_json::Value) -> String {
        let key = lock(&self.state.keys).last().cloned();
        let Some(key) = key else { return String::new() };
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(key.kid.clone());
        jsonwebtoken::encode(&header, claims, &key.encoding).unwrap_or_default()
    }

    /// A JWT with a header of your choosing, signed with the newest key.
    pub fn mint_jwt_with_header(&self, header: Header, claims: &serde_json::Value) -> String {
        let key = lock(&self.state.keys).last().cloned();
        let Some(key) = key else { return String::new() };
        jsonwebtoken::encode(&header, claims, &key.encoding).unwrap_or_default()
    }

    /// The kid of the newest key.
    pub fn current_kid(&self) -> String {
        lock(&self.state.keys)
            .last()
            .map(|k| k.kid.clone())
            .unwrap_or_default()
    }

    /// Adds a new signing key; with `retire_old`, the JWKS then lists only the new one.
    pub fn rotate_key(&self, retire_old: bool) -> Result<String, String> {
        let n = self.state.key_counter.fetch_add(1, Ordering::Relaxed) + 1;
        let key = Arc::new(new_key(n)?);
        let kid = key.kid.clone();
        let mut keys = lock(&self.state.keys);
        if retire_old {
            keys.clear();
        }
        keys.push(key);
        Ok(kid)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn json(status: StatusCode, v: serde_json::Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(v.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    r
}

async fn behave(mode: Mode) -> Option<Response<Full<Bytes>>> {
    match mode {
        Mode::Ok | Mode::Close => None,
        Mode::Slow(d) => {
            tokio::time::sleep(d).await;
            None
        }
        Mode::Error => Some(json(
            StatusCode::INTERNAL_SERVER_ERROR,
            serde_json::json!({"error": "injected"}),
        )),
        Mode::Hang => {
            std::future::pending::<()>().await;
            None
        }
    }
}

async fn handle(st: &State, req: Request<Incoming>) -> Option<Response<Full<Bytes>>> {
    if *lock(&st.mode) == Mode::Close {
        return None;
    }
    Some(answer(st, req).await)
}

async fn answer(st: &State, req: Request<Incoming>) -> Response<Full<Bytes>> {
    match req.uri().path() {
        "/introspect" => {
            st.introspections.fetch_add(1, Ordering::Relaxed);
            let mode = *lock(&st.mode);
            let body = req
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            if let Some(r) = behave(mode).await {
                return r;
            }
            let form = String::from_utf8_lossy(&body).into_owned();
            let token = form
                .split('&')
                .filter_map(|kv| kv.split_once('='))
                .find(|(k, _)| *k == "token")
                .map(|(_, v)| v.to_owned())
                .unwrap_or_default();
            let claims = lock(&st.tokens).get(&token).cloned();
            match claims {
                Some(c) if c["exp"].as_i64().is_some_and(|exp| exp > now_secs()) => {
                    json(StatusCode::OK, c)
                }
                _ => json(StatusCode::OK, serde_json::json!({ "active": false })),
            }
        }
        "/.well-known/jwks.json" => {
            st.jwks_fetches.fetch_add(1, Ordering::Relaxed);
            let mode = *lock(&st.jwks_mode);
            if let Some(r) = behave(mode).await {
                return r;
            }
            let keys: Vec<serde_json::Value> =
                lock(&st.keys).iter().map(|k| k.jwk.clone()).collect();
            json(StatusCode::OK, serde_json::json!({ "keys": keys }))
        }
        _ => json(
            StatusCode::NOT_FOUND,
            serde_json::json!({"error": "not found"}),
        ),
    }
}
