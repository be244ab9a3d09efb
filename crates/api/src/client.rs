//! A typed client of the control-plane API. Every call has a deadline.
//!
//! It may be given several control-plane replicas (`URL1,URL2,…`). It sticks to the one that
//! answered last, and moves on to the next — with backoff, within the call's deadline — when
//! a replica cannot be reached (nothing was sent) or says no replica leads at the moment
//! (`503 no_leader`: nothing was done). A request that may have reached the control plane is
//! sent again only if it is a read.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::access::{NewToken, TokenInfo, TokenSpec};
use crate::operations::*;
use crate::types::*;

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_ANSWER: usize = 16 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("control plane at {url} unreachable: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("control plane at {url} did not answer within {after:?}")]
    Timeout { url: String, after: Duration },
    /// The API answered with an error.
    #[error("{message} ({status}, {code})")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    #[error("unreadable answer from {url}: {reason}")]
    Decode { url: String, reason: String },
}

/// The pause after every replica failed once, doubling up to the most.
const FAILOVER_PAUSE_MIN: Duration = Duration::from_millis(200);
const FAILOVER_PAUSE_MAX: Duration = Duration::from_secs(2);

/// How one exchange with one replica went wrong.
enum Attempt {
    /// The replica did not take the request (unreachable before sending, or no replica
    /// leads): another may.
    NotTaken(ClientError),
    /// It may have been taken: only a read is sent again.
    MaybeTaken(ClientError),
    /// An answer (an API error) or a deadline: the call's result.
    Final(ClientError),
}

#[derive(Clone)]
pub struct ApiClient {
    /// The replicas' base URLs, in the order given.
    bases: std::sync::Arc<[String]>,
    /// The one that answered last (shared by clones: an agent's loops stick together).
    current: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    token: Option<String>,
    /// An agent's instance credential, sent with its polls and reports.
    credential: Option<String>,
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl ApiClient {
    /// `base` like `http://127.0.0.1:7000`, or `https://…` (the server's certificate must chain
    /// to the web's roots; see [`ApiClient::with_ca`] for a private CA); several replicas'
    /// URLs separated by commas.
    pub fn new(base: &str, token: Option<String>) -> ApiClient {
        // Fails only for a crypto provider without TLS 1.2 and 1.3, which aws-lc-rs is not.
        let tls = rampart_net::tls::client_config(None)
            .unwrap_or_else(|e| panic!("TLS client configuration: {e}"));
        let mut bases: Vec<String> = base
            .split(',')
            .map(|b| b.trim().trim_end_matches('/').to_owned())
            .filter(|b| !b.is_empty())
            .collect();
        if bases.is_empty() {
            bases.push(String::new());
        }
        ApiClient {
            bases: bases.into(),
            current: Default::default(),
            token,
            credential: None,
            client: Self::client(tls),
        }
    }

    /// The same client, trusting servers whose certificates chain to `ca_pem` too.
    pub fn with_ca(self, ca_pem: &[u8]) -> Result<ApiClient, String> {
        let tls = rampart_net::tls::client_config(Some(ca_pem))?;
        Ok(ApiClient {
            client: Self::client(tls),
            ..self
        })
    }

    fn client(tls: rustls::ClientConfig) -> Client<HttpsConnector<HttpConnector>, Full<Bytes>> {
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(Duration::from_secs(2)));
        http.set_nodelay(true);
        http.enforce_http(false);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Client::builder(TokioExecutor::new()).build(https)
    }

    /// The same client, speaking for the instance a registration gave `credential` to: its
    /// polls and reports carry it (`X-Rampart-Instance-Credential`).
    pub fn for_instance(&self, credential: &str) -> ApiClient {
        ApiClient {
            credential: Some(credential.to_owned()),
            ..self.clone()
        }
    }

    /// The replica this client talks to now.
    pub fn base(&self) -> &str {
        let n = self.current.load(std::sync::atomic::Ordering::Relaxed);
        self.bases
            .get(n % self.bases.len().max(1))
            .map(String::as_str)
            .unwrap_or("")
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        timeout: Duration,
    ) -> Result<T, ClientError> {
        let (status, bytes) = self.fetch(method, path, body, timeout).await?;
        let bytes = if status == StatusCode::NO_CONTENT || bytes.is_empty() {
            Bytes::from_static(b"null")
        } else {
            bytes
        };
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode {
            url: format!("{}{path}", self.base()),
            reason: e.to_string(),
        })
    }

    /// One call under `timeout`: a successful answer's status and body, or the API's error.
    /// A replica that cannot take the request hands it to the next (see the module's note).
    async fn fetch(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        timeout: Duration,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let n = self.bases.len();
        let read = method == Method::GET || method == Method::HEAD;
        let mut pause = FAILOVER_PAUSE_MIN;
        let mut tried = 0usize;
        loop {
            let at = self.current.load(std::sync::atomic::Ordering::Relaxed) % n;
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let outcome = self
                .exchange(&self.bases[at], method.clone(), path, body.clone(), left)
                .await;
            let attempt = match outcome {
                Ok(answer) => return Ok(answer),
                Err(attempt) => attempt,
            };
            // A replica that did not answer (or cannot lead us anywhere) is left for the next
            // one, by this call and the ones after it (unless another call already moved on).
            if !matches!(attempt, Attempt::Final(ClientError::Api { .. })) {
                let _ = self.current.compare_exchange(
                    at,
                    (at + 1) % n,
                    std::sync::atomic::Ordering::Relaxed,
                    std::sync::atomic::Ordering::Relaxed,
                );
            }
            let err = match attempt {
                Attempt::NotTaken(e) => e,
                Attempt::MaybeTaken(e) if read => e,
                Attempt::MaybeTaken(e) | Attempt::Final(e) => return Err(e),
            };
            tried += 1;
            // After a round of every replica, wait before the next one.
            if tried.is_multiple_of(n) {
                if tokio::time::Instant::now() + pause >= deadline {
                    return Err(err);
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(FAILOVER_PAUSE_MAX);
            }
        }
    }

    /// One exchange with the replica at `base`.
    async fn exchange(
        &self,
        base: &str,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        timeout: Duration,
    ) -> Result<(StatusCode, Bytes), Attempt> {
        let url = format!("{base}{path}");
        let uri: Uri = url.parse().map_err(|e| {
            Attempt::Final(ClientError::Unreachable {
                url: url.clone(),
                reason: format!("bad URL: {e}"),
            })
        })?;
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::ACCEPT, "application/json");
        if let Some(t) = &self.token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        if let Some(c) = &self.credential {
            req = req.header("x-rampart-instance-credential", c);
        }
        if body.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| {
                Attempt::Final(ClientError::Unreachable {
                    url: url.clone(),
                    reason: e.to_string(),
                })
            })?;
        let exchange = async {
            let resp = self.client.request(req).await.map_err(|e| {
                let err = ClientError::Unreachable {
                    url: url.clone(),
                    reason: format!("{e:?}"),
                };
                if e.is_connect() {
                    Attempt::NotTaken(err)
                } else {
                    Attempt::MaybeTaken(err)
                }
            })?;
            let status = resp.status();
            let bytes = Limited::new(resp.into_body(), MAX_ANSWER)
                .collect()
                .await
                .map_err(|e| {
                    Attempt::MaybeTaken(ClientError::Unreachable {
                        url: url.clone(),
                        reason: e.to_string(),
                    })
                })?
                .to_bytes();
            Ok::<_, Attempt>((status, bytes))
        };
        let (status, bytes) = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| {
                Attempt::Final(ClientError::Timeout {
                    url: url.clone(),
                    after: timeout,
                })
            })??;
        if !status.is_success() {
            let err: ErrorBody = serde_json::from_slice(&bytes).unwrap_or(ErrorBody {
                error: "http_error".into(),
                message: String::from_utf8_lossy(&bytes).into_owned(),
            });
            let no_leader = status == StatusCode::SERVICE_UNAVAILABLE && err.error == "no_leader";
            let err = ClientError::Api {
                status: status.as_u16(),
                code: err.error,
                message: err.message,
            };
            return Err(if no_leader {
                Attempt::NotTaken(err)
            } else {
                Attempt::Final(err)
            });
        }
        Ok((status, bytes))
    }

    fn json<B: Serialize>(body: &B) -> Option<Vec<u8>> {
        serde_json::to_vec(body).ok()
    }

    pub async fn push(&self, document: &str, message: &str) -> Result<PushResponse, ClientError> {
        self.push_with(document, message, None).await
    }

    /// Push with a break-glass reason overriding failed semantic checks (approver role).
    pub async fn push_with(
        &self,
        document: &str,
        message: &str,
        break_glass: Option<String>,
    ) -> Result<PushResponse, ClientError> {
        let body = PushRequest {
            document: document.to_owned(),
            message: message.to_owned(),
            break_glass,
        };
        self.call(
            Method::POST,
            "/v1/versions",
            Self::json(&body),
            DEFAULT_TIMEOUT,
        )
        .await
    }

    pub async fn versions(&self) -> Result<Vec<VersionInfo>, ClientError> {
        self.call(Method::GET, "/v1/versions", None, DEFAULT_TIMEOUT)
            .await
    }

    pub async fn version(&self, id: impl AsRef<str>) -> Result<VersionDocument, ClientError> {
        self.call(
            Method::GET,
            &format!("/v1/versions/{}", id.as_ref()),
            None,
            DEFAULT_TIMEOUT,
        )
        .await
    }

    pub async fn deploy(
        &self,
        env: &str,
        version: &VersionId,
        break_glass: Option<String>,
    ) -> Result<EnvironmentStatus, ClientError> {
        let body = DeployRequest {
            version: version.clone(),
            break_glass,
        };
        self.call(
            Method::POST,
            &format!("/v1/environments/{env}/deploy"),
            Self::json(&body),
            DEFAULT_TIMEOUT,
        )
        .await
    }

    pub async fn rollback(
        &self,
        env: &str,
        to: Option<VersionId>,
    ) -> Result<EnvironmentStatus, ClientError> {
        let body = RollbackRequest { to };
        self.call(
            Method::POST,
            &format!("/v1/environments/{env}/rollback"),
            Self::json(&body),
            DEFAULT_TIMEOUT,
        )
        .await
    }

    /// Who leads the control plane, and its replicas.
    pub async fn replicas(&self) -> Result<Replicas, ClientError> {
        self.call(Method::GET, "/v1/replicas", None, DEFAULT_TIMEOUT)
            .await
    }

    pub async fn releases(&self) -> Result<Vec<ReleaseStatus>, ClientError> {
        self.call(Method::GET, "/v1/releases", None, DEFAULT_TIMEOUT)
            .await
    }

    /// `action`: pause, resume or abort (abort rolls the release's instances back).
    /// The release drawn as SVG.
    pub async fn release_picture(&self, id: i64) -> Result<String, ClientError> {
        let path = format!("/v1/releases/{id}/picture.svg");
        let (_, bytes) = self
            .fetch(Method::GET, &path, None, DEFAULT_TIMEOUT)
            .await?;
        String::from_utf8(bytes.to_vec()).map_err(|e| ClientError::Decode {
            url: format!("{}{path}", self.base()),
            reason: e.to_string(),
        })
    }

    /// Promotes a release past a pause or an inconclusive hold, or skips its current wave
    /// (`action` is `promote` or `skip`), saying why.
    pub async fn release_judgement(
        &self,
        id: i64,
        action: &str,
        reason: &str,
    ) -> Result<ReleaseStatus, ClientError> {
        let reason: String = reason
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        self.call(
            Method::POST,
            &format!("/v1/releases/{id}/{action}?reason={reason}"),
            Some(b"{}".to_vec()),
            DEFAULT_TIMEOUT,
        )
        .await
    }

    pub async fn release_action(
        &self,
        id: i64,
        action: &str,
    ) -> Result<ReleaseStatus, ClientError> {
        self.call(
            Method::POST,
            &format!("/v1/releases/{id}/{action}"),
            Some(b"{}".to_vec()),
            DEFAULT_TIMEOUT,
        )
        .await
    }

    pub async fn approvals(&self) -> Result<Vec<Approval>, ClientError> {
        self.call(Method::GET, "/v1/approvals", None, DEFAULT_TIMEOUT)
            .await
    }

    /// Approves a pending deploy (approver role, not the requester); the deploy then happens.
    pub async fn approve(&self, id: i64) -> Result<EnvironmentStatus, ClientError> {
        self.call(
            Method::POST,
            &format!("/v1/approvals/{id}/approve"),
            Some(b"{}".to_vec()),
            DEFAULT_TIMEOUT,
        )
        .await
    }

    pub async fn environments(&self) -> Result<Vec<EnvironmentStatus>, ClientError> {
        self.call(Method::GET, "/v1/environments", None, DEFAULT_TIMEOUT)
            .await
    }

    pub async fn events(&self, after: i64) -> Result<Vec<Event>, ClientError> {
        self.call(
            Method::GET,
            &format!("/v1/events?after={after}"),
            None,
            DEFAULT_TIMEOUT,
        )
        .await
    }

    pub async fn register(&self, req: &RegisterRequest) -> Result<RegisterResponse, ClientError> {
        self.call(
            Method::POST,
            "/v1/agents/register",
            Self::json(req),
            DEFAULT_TIMEOUT,
        )
        .await
    }

    /// Long-polls for the desired version: held by the server up to `wait` (the client waits a
    /// little longer); answers early when it differs from `current`, the restart generation
    /// differs from `restart`, or the number of probes to send differs from `probing` (each
    /// when given).
    pub async fn desired(
        &self,
        instance: &str,
        current: Option<&str>,
        restart: Option<u64>,
        probing: Option<usize>,
        wait: Duration,
    ) -> Result<Desired, ClientError> {
        let mut path = format!(
            "/v1/agents/{instance}/desired?current={}&wait_ms={}",
            current.unwrap_or(""),
            wait.as_millis()
        );
        if let Some(r) = restart {
            path.push_str(&format!("&restart={r}"));
        }
        if let Some(n) = probing {
            path.push_str(&format!("&probing={n}"));
        }
        self.call(Method::GET, &path, None, wait + Duration::from_secs(2))
            .await
    }

    pub async fn report(&self, instance: &str, report: &Report) -> Result<(), ClientError> {
        self.call::<serde_json::Value>(
            Method::POST,
            &format!("/v1/agents/{instance}/report"),
            Self::json(report),
            DEFAULT_TIMEOUT,
        )
        .await
        .map(|_| ())
    }

    pub async fn tokens(&self) -> Result<Vec<TokenInfo>, ClientError> {
        self.call(Method::GET, "/v1/tokens", None, DEFAULT_TIMEOUT)
            .await
    }

    /// Creates a token; the answer carries its secret, this once.
    pub async fn create_token(&self, spec: &TokenSpec) -> Result<NewToken, ClientError> {
        self.call(
            Method::POST,
            "/v1/tokens",
            Self::json(spec),
            DEFAULT_TIMEOUT,
        )
        .await
    }

    pub async fn revoke_token(&self, name: &str) -> Result<(), ClientError> {
        self.call::<serde_json::Value>(
            Method::DELETE,
            &format!("/v1/tokens/{name}"),
            None,
            DEFAULT_TIMEOUT,
        )
        .await
        .map(|_| ())
    }

    pub async fn components(&self) -> Result<Vec<Component>, ClientError> {
        self.call(Method::GET, "/v1/components", None, DEFAULT_TIMEOUT)
            .await
    }

    pub async fn put_component(
        &self,
        name: &str,
        spec: &ComponentSpec,
    ) -> Result<Component, ClientError> {
        let path = format!("/v1/components/{}", encode(name));
        self.call(Method::PUT, &path, Self::json(spec), DEFAULT_TIMEOUT)
            .await
    }

    pub async fn channels(&self) -> Result<Vec<Channel>, ClientError> {
        self.call(Method::GET, "/v1/channels", None, DEFAULT_TIMEOUT)
            .await
    }

    pub async fn put_channel(
        &self,
        name: &str,
        spec: &ChannelSpec,
    ) -> Result<Channel, ClientError> {
        let path = format!("/v1/channels/{}", encode(name));
        self.call(Method::PUT, &path, Self::json(spec), DEFAULT_TIMEOUT)
            .await
    }

    pub async fn outbox(&self) -> Result<Vec<OutboxEntry>, ClientError> {
        self.call(Method::GET, "/v1/outbox", None, DEFAULT_TIMEOUT)
            .await
    }

    /// Alerts, newest first; `active` leaves out resolved ones.
    pub async fn alerts(&self, active: bool) -> Result<Vec<Alert>, ClientError> {
        let path = format!("/v1/alerts?active={active}");
        self.call(Method::GET, &path, None, DEFAULT_TIMEOUT).await
    }

    pub async fn incidents(&self) -> Result<Vec<Incident>, ClientError> {
        self.call(Method::GET, "/v1/incidents", None, DEFAULT_TIMEOUT)
            .await
    }

    pub async fn incident(&self, id: i64) -> Result<Incident, ClientError> {
        let path = format!("/v1/incidents/{id}");
        self.call(Method::GET, &path, None, DEFAULT_TIMEOUT).await
    }

    pub async fn open_incident(&self, new: &NewIncident) -> Result<Incident, ClientError> {
        self.call(
            Method::POST,
            "/v1/incidents",
            Self::json(new),
            DEFAULT_TIMEOUT,
        )
        .await
    }

    pub async fn update_incident(
        &self,
        id: i64,
        change: &IncidentChange,
    ) -> Result<Incident, ClientError> {
        let path = format!("/v1/incidents/{id}/updates");
        self.call(Method::POST, &path, Self::json(change), DEFAULT_TIMEOUT)
            .await
    }

    pub async fn add_action_item(
        &self,
        id: i64,
        item: &ActionItemSpec,
    ) -> Result<Incident, ClientError> {
        let path = format!("/v1/incidents/{id}/action-items");
        self.call(Method::POST, &path, Self::json(item), DEFAULT_TIMEOUT)
            .await
    }

    pub async fn set_action_item(
        &self,
        id: i64,
        item: i64,
        spec: &ActionItemSpec,
    ) -> Result<Incident, ClientError> {
        let path = format!("/v1/incidents/{id}/action-items/{item}");
        self.call(Method::PATCH, &path, Self::json(spec), DEFAULT_TIMEOUT)
            .await
    }

    /// `format`: md or html.
    pub async fn postmortem(&self, id: i64, format: &str) -> Result<PostmortemText, ClientError> {
        let path = format!("/v1/incidents/{id}/postmortem?format={format}");
        self.call(Method::GET, &path, None, DEFAULT_TIMEOUT).await
    }

    pub async fn maintenances(&self) -> Result<Vec<Maintenance>, ClientError> {
        self.call(Method::GET, "/v1/maintenances", None, DEFAULT_TIMEOUT)
            .await
    }

    pub async fn schedule_maintenance(
        &self,
        spec: &MaintenanceSpec,
    ) -> Result<Maintenance, ClientError> {
        self.call(
            Method::POST,
            "/v1/maintenances",
            Self::json(spec),
            DEFAULT_TIMEOUT,
        )
        .await
    }

    pub async fn cancel_maintenance(&self, id: i64) -> Result<(), ClientError> {
        let path = format!("/v1/maintenances/{id}");
        self.call(Method::DELETE, &path, None, DEFAULT_TIMEOUT)
            .await
    }

    pub async fn subscribers(&self) -> Result<Vec<Subscriber>, ClientError> {
        self.call(Method::GET, "/v1/subscribers", None, DEFAULT_TIMEOUT)
            .await
    }

    /// Adds a subscriber, confirmed at once (operator role).
    pub async fn add_subscriber(&self, spec: &SubscriberSpec) -> Result<Subscriber, ClientError> {
        self.call(
            Method::POST,
            "/v1/subscribers",
            Self::json(spec),
            DEFAULT_TIMEOUT,
        )
        .await
    }

    /// Starts a rolling restart of an environment's gateways.
    pub async fn restart(&self, env: &str, batch: &str) -> Result<RestartStatus, ClientError> {
        let body = RestartRequest {
            batch: batch.to_owned(),
        };
        let path = format!("/v1/environments/{env}/restart");
        self.call(Method::POST, &path, Self::json(&body), DEFAULT_TIMEOUT)
            .await
    }

    pub async fn restart_status(&self, env: &str) -> Result<RestartStatus, ClientError> {
        let path = format!("/v1/environments/{env}/restart");
        self.call(Method::GET, &path, None, DEFAULT_TIMEOUT).await
    }

    /// The rollout policy in force in `env`.
    pub async fn policy(&self, env: &str) -> Result<Policy, ClientError> {
        let path = format!("/v1/environments/{}/policy", encode(env));
        self.call(Method::GET, &path, None, DEFAULT_TIMEOUT).await
    }

    /// Every stored revision of `env`'s policy, newest first.
    pub async fn policy_history(&self, env: &str) -> Result<Vec<Policy>, ClientError> {
        let path = format!("/v1/environments/{}/policy/history", encode(env));
        self.call(Method::GET, &path, None, DEFAULT_TIMEOUT).await
    }

    /// Stores a new revision of `env`'s policy (operator).
    pub async fn set_policy(&self, env: &str, text: &str) -> Result<Policy, ClientError> {
        let path = format!("/v1/environments/{}/policy", encode(env));
        let body = PolicySet {
            text: text.to_owned(),
        };
        self.call(Method::PUT, &path, Self::json(&body), DEFAULT_TIMEOUT)
            .await
    }
}

/// Percent-encodes a path segment (component and channel names may hold spaces).
fn encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
