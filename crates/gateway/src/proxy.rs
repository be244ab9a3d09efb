//! The request path: admit, route, forward with retries under one deadline, answer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body::Body as _;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use rampart_model::{LimitsConfig, ListenerConfig};

use crate::access_log::{Entry, Pending};
use crate::admission::Permit;
use crate::auth;
use crate::body::{Limited, Tracked, empty};
use crate::cors;
use crate::error::ProxyError;
use crate::forward::{Client, X_REQUEST_ID, add_forwarding, request_id, strip_hop_by_hop};
use crate::grpc;
use crate::rate_limit::{RATELIMIT, RATELIMIT_POLICY, RouteLimiter, Verdict};
use crate::response::ResponseBody;
use crate::shared::Shared;
use crate::snapshot::{RouteState, Snapshot};
use crate::target::Target;
use crate::trace::{Kind, RequestTrace, Value};
use crate::trace_context::TRACEPARENT;
use crate::upstream::endpoint::InflightGuard;

/// Facts about the client connection a request arrived on.
#[derive(Debug)]
pub struct ConnInfo {
    pub remote: SocketAddr,
    /// The client as forwarding headers name it (trusted proxy or not).
    pub client: Client,
    pub proto: &'static str,
    /// The listener's settings when the connection was accepted.
    pub listener: Arc<ListenerConfig>,
    /// A WebSocket tunnel this connection became: the connection is served (and counted)
    /// until it ends.
    pub tunnel: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// Everything a request holds until its response body is done.
struct Held {
    _global: Permit,
    _route: Permit,
    _upstream: Permit,
    _endpoint: Option<InflightGuard>,
    _inflight: InflightGauge,
}

struct InflightGauge(prometheus_client::metrics::gauge::Gauge);

impl Drop for InflightGauge {
    fn drop(&mut self) {
        self.0.dec();
    }
}

pub async fn handle(
    shared: &Shared,
    conn: &ConnInfo,
    mut req: Request<Incoming>,
) -> Response<ResponseBody> {
    let start = Instant::now();
    // A synthetic probe of this process is counted apart from user traffic (not in the SLIs);
    // the header never reaches an upstream, whoever sent it.
    let probe = req
        .headers_mut()
        .remove(crate::prober::PROBE_HEADER)
        .is_some_and(|v| shared.is_probe(&v));
    let id = request_id(req.headers());
    let Some(snapshot) = shared.snapshot.load_full() else {
        return ProxyError::NoEndpoint {
            upstream: "(no config yet)".into(),
        }
        .into_response(None, &id);
    };
    // On the request's own future (boxed already); moved into a box of its own for the
    // response body only when sampled, the one case its end records anything.
    let mut trace = snapshot.tracer.as_ref().map(|t| t.begin(req.headers()));
    let mut log = snapshot.access_log.as_ref().map(|l| {
        // With tracing the trace is known (its traceparent already read); without, read it.
        let trace_id = match &trace {
            Some(t) => Some(t.trace_id),
            None => crate::trace_context::trace_id(req.headers()),
        };
        Box::new(Pending::new(l, entry(conn, &req, &id, trace_id, start)))
    });
    let method = trace
        .as_ref()
        .filter(|t| t.sampled())
        .map(|_| req.method().clone());
    let (resp, route) = respond(shared, &snapshot, conn, req, &id, &mut log, trace.as_ref()).await;
    let status = resp.status().as_u16();
    let to_headers = start.elapsed();
    let metrics = route.as_ref().map_or(&snapshot.unmatched, |r| &r.metrics);
    if probe {
        shared
            .metrics
            .probe(route.as_ref().map_or("", |r| &r.config.name), status);
    } else {
        metrics.observe(status, to_headers);
    }
    if let (Some(t), Some(method)) = (trace.as_mut(), method) {
        let route_name = route.as_ref().map_or("", |r| r.config.name.as_str());
        t.name = format!("{method} {route_name}");
        t.attributes = vec![
            ("http.request.method", Value::Str(method.to_string())),
            ("http.route", Value::Str(route_name.to_owned())),
            ("http.response.status_code", Value::Int(i64::from(status))),
            ("rampart.listener", Value::Str(conn.listener.name.clone())),
            ("client.address", Value::Str(conn.client.ip.to_string())),
        ];
        t.error = status >= 500;
    }
    if let Some(entry) = log.as_mut().and_then(|l| l.entry()) {
        entry.status = status;
        entry.duration_headers = to_headers;
        entry.route = route;
    }
    let trace = trace.filter(|t| t.sampled()).map(Box::new);
    resp.map(|body| body.observed(log, trace))
}

/// The access-log line as far as the request alone tells it.
fn entry(
    conn: &ConnInfo,
    req: &Request<Incoming>,
    id: &HeaderValue,
    trace_id: Option<[u8; 16]>,
    started: Instant,
) -> Entry {
    Entry {
        started,
        request_id: id.clone(),
        trace_id,
        listener: conn.listener.clone(),
        route: None,
        endpoint: None,
        method: req.method().clone(),
        version: req.version(),
        path: None,
        status: 0,
        bytes_in: 0,
        bytes_out: 0,
        duration_headers: Duration::ZERO,
        duration: Duration::ZERO,
        auth_subject: None,
        client: conn.client.ip,
        client_text: conn.client.ip_text().clone(),
        reason: None,
    }
}

/// Routes and forwards one request; the answer and the route that took it.
async fn respond(
    shared: &Shared,
    snapshot: &Snapshot,
    conn: &ConnInfo,
    req: Request<Incoming>,
    id: &HeaderValue,
    log: &mut Option<Box<Pending>>,
    trace: Option<&RequestTrace>,
) -> (Response<ResponseBody>, Option<Arc<RouteState>>) {
    let grpc = grpc::is_grpc(req.headers());
    let refuse = |e: ProxyError, route: Option<&str>, log: &mut Option<Box<Pending>>| {
        if let Some(entry) = log.as_mut().and_then(|l| l.entry()) {
            entry.reason = Some(e.code());
        }
        if grpc {
            e.into_grpc_response(route, id)
        } else {
            e.into_response(route, id)
        }
    };
    // The one path routed on, authenticated and forwarded, and the one authority.
    let target = match Target::read(req.uri(), req.headers(), conn.listener.escaped_slashes) {
        Ok(t) => t,
        Err(e) => return (refuse(e, None, log), None),
    };
    if let Some(entry) = log.as_mut().and_then(|l| l.entry()) {
        entry.path = Some(target.path_and_query.clone());
    }
    // A CORS preflight is routed by the method it asks about, and answered here.
    if let Some(method) = cors::preflight_method(req.method(), req.headers())
        && let Some(route) =
            snapshot
                .router
                .find_preflight(&method, target.host(), target.path(), req.headers())
        && let Some(policy) = &route.config.cors
    {
        let resp = cors::answer_preflight(policy, &method, req.headers(), &route.config.name, id);
        return (resp, Some(route.clone()));
    }
    // An HTTP/2 WebSocket (extended CONNECT) is routed as the GET it stands for.
    let method = if req.method() == Method::CONNECT
        && req.extensions().get::<hyper::ext::Protocol>().is_some()
    {
        &Method::GET
    } else {
        req.method()
    };
    let route = snapshot
        .router
        .find(method, target.host(), target.path(), req.headers())
        .cloned();
    let Some(route) = route else {
        return (refuse(ProxyError::NoRoute, None, log), None);
    };
    let origin = route
        .config
        .cors
        .as_ref()
        .and_then(|_| req.headers().get(header::ORIGIN).cloned());
    let limits = &snapshot.config.limits;
    let call = Call {
        shared,
        conn,
        id,
        limits,
        trace,
        grpc,
    };
    let mut resp = match forward(call, &route, req, target, log).await {
        Ok(resp) => resp,
        Err(e) => {
            if let ProxyError::Shed { scope } = &e {
                shared.metrics.shed(scope);
            } else {
                // Full detail (addresses, causes) goes to the log; the client gets the public message.
                tracing::debug!(route = %route.config.name, error = %e, "request failed");
            }
            refuse(e, Some(&route.config.name), log)
        }
    };
    if let Some(policy) = &route.config.cors {
        cors::decorate(policy, origin.as_ref(), resp.headers_mut());
    }
    (resp, Some(route))
}

fn idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

/// Retries on 5xx except those that say retrying cannot help.
fn retryable_status(status: StatusCode) -> bool {
    status.is_server_error()
        && status != StatusCode::NOT_IMPLEMENTED
        && status != StatusCode::HTTP_VERSION_NOT_SUPPORTED
}

/// What a request is served with, besides its route and its own parts.
#[derive(Clone, Copy)]
struct Call<'a> {
    shared: &'a Shared,
    conn: &'a ConnInfo,
    id: &'a HeaderValue,
    limits: &'a LimitsConfig,
    trace: Option<&'a RequestTrace>,
    /// Whether the request is gRPC (read once, by `respond`).
    grpc: bool,
}

async fn forward(
    call: Call<'_>,
    route: &Arc<RouteState>,
    req: Request<Incoming>,
    target: Target,
    log: &mut Option<Box<Pending>>,
) -> Result<Response<ResponseBody>, ProxyError> {
    let Call {
        shared,
        conn,
        id,
        limits,
        trace,
        grpc: is_grpc,
    } = call;
    let max_body = limits.max_body_bytes;
    // A limit keyed by who the client is (not by its subject) is checked before it takes
    // any permit or reaches the auth provider.
    let mut rate_state = None;
    if let Some(limiter) = route.rate_limit.as_ref().filter(|l| !l.after_auth()) {
        let key = limiter.key(req.headers(), conn.client.ip, None);
        rate_state = Some(Box::pin(rate_limit(limiter, &key)).await?);
    }
    let global = shared
        .global
        .try_acquire()
        .ok_or(ProxyError::Shed { scope: "global" })?;
    let route_permit = route
        .limit
        .try_acquire()
        .ok_or(ProxyError::Shed { scope: "route" })?;
    let up = &route.upstream;
    let up_permit = up
        .limit
        .try_acquire()
        .ok_or(ProxyError::Shed { scope: "upstream" })?;
    let gauge = shared.metrics.inflight().clone();
    gauge.inc();
    let inflight = InflightGauge(gauge);
    route.budget.deposit();

    let (mut parts, body) = req.into_parts();
    let upgrade = route
        .config
        .websocket
        .then(|| {
            crate::websocket::handshake(
                &parts.method,
                parts.version,
                &parts.headers,
                &parts.extensions,
            )
        })
        .flatten();
    // gRPC: `TE: trailers` survives the hop-by-hop strip, and `grpc-timeout` bounds the call.
    let te_trailers = is_grpc && crate::forward::has_token(&parts.headers, header::TE, "trailers");
    let grpc_deadline = is_grpc
        .then(|| grpc::timeout(&parts.headers))
        .flatten()
        .map(|g| (g, tokio::time::Instant::now()));
    if let Some(len) = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        && len > max_body
    {
        return Err(ProxyError::BodyTooLarge { limit: max_body });
    }
    strip_hop_by_hop(&mut parts.headers);
    if te_trailers {
        parts
            .headers
            .insert(header::TE, HeaderValue::from_static("trailers"));
    }
    auth::strip_identity(&mut parts.headers);
    if let Some(provider) = &route.auth {
        let child = trace.map(RequestTrace::child);
        // Boxed (like the rate limit and WebSocket paths): only routes that use it carry
        // its state, not every request's future.
        let outcome = Box::pin(provider.authenticate(&parts.headers, &route.config.scopes)).await;
        if let (Some(t), Some(child)) = (trace, child)
            && t.sampled()
        {
            let result = match &outcome {
                Ok(_) => "ok",
                Err(e) => ProxyError::code(&ProxyError::Auth(e.clone())),
            };
            t.end(
                child,
                format!("auth {}", provider.name()),
                Kind::Internal,
                vec![
                    (
                        "rampart.auth.provider",
                        Value::Str(provider.name().to_owned()),
                    ),
                    ("rampart.auth.result", Value::Str(result.to_owned())),
                ],
                matches!(outcome, Err(crate::auth::AuthError::Unavailable(_))),
            );
        }
        let identity = outcome?;
        auth::add_identity(&mut parts.headers, &identity);
        if let Some(entry) = log.as_mut().and_then(|l| l.entry()) {
            entry.auth_subject = identity.subject.clone();
        }
        if let Some(limiter) = route.rate_limit.as_ref().filter(|l| l.after_auth()) {
            let key = limiter.key(&parts.headers, conn.client.ip, identity.subject.as_deref());
            rate_state = Some(Box::pin(rate_limit(limiter, &key)).await?);
        }
    }
    // The upstream sees the Host the route was chosen by (absent: the endpoint's authority,
    // set per attempt below).
    match &target.host_header {
        Some(v) => {
            parts.headers.insert(header::HOST, v.clone());
        }
        None => {
            parts.headers.remove(header::HOST);
        }
    }
    add_forwarding(
        &mut parts.headers,
        &conn.client,
        conn.proto,
        target.host_header.as_ref(),
    );
    parts.headers.insert(X_REQUEST_ID.clone(), id.clone());
    // Origin form: the normalized path and the query, nothing else.
    let path_and_query = target.path_and_query;
    if let Some(handshake) = upgrade {
        let client = parts
            .extensions
            .remove::<hyper::upgrade::OnUpgrade>()
            .ok_or_else(|| ProxyError::BadRequest("this connection cannot be upgraded".into()))?;
        let mut request = Request::new(empty());
        *request.method_mut() = parts.method;
        *request.uri_mut() = Uri::from(path_and_query);
        *request.version_mut() = Version::HTTP_11;
        *request.headers_mut() = parts.headers;
        let held = Box::new(Held {
            _global: global,
            _route: route_permit,
            _upstream: up_permit,
            _endpoint: None,
            _inflight: inflight,
        });
        return Box::pin(crate::websocket::forward(
            up,
            handshake,
            request,
            client,
            route.config.timeout,
            limits.idle_timeout,
            held,
            &conn.tunnel,
            &shared.metrics,
        ))
        .await;
    }
    let retries = route.config.retries.attempts;
    let retryable = retries > 0 && idempotent(&parts.method) && body.is_end_stream();
    let counted = log
        .as_mut()
        .filter(|_| !body.is_end_stream())
        .map(|l| l.count_bytes_in());
    let mut body = Some(
        Limited::new(body, max_body, limits.body_timeout)
            .counting(counted)
            .boxed(),
    );
    let deadline = grpc_deadline.map_or(route.config.timeout, |(g, _)| g.min(route.config.timeout));

    let mut last_endpoint: Option<usize> = None;
    let attempts = async {
        let mut attempt = 0;
        loop {
            let index = up
                .pick(last_endpoint)
                .ok_or_else(|| ProxyError::NoEndpoint {
                    upstream: up.config.name.clone(),
                })?;
            last_endpoint = Some(index);
            let endpoint = up.endpoints[index].clone();
            let guard = endpoint.start_request();
            let uri = Uri::from(path_and_query.clone());
            let mut request = Request::new(if retryable {
                empty()
            } else {
                body.take().unwrap_or_else(empty)
            });
            *request.method_mut() = parts.method.clone();
            *request.uri_mut() = uri;
            *request.version_mut() = Version::HTTP_11;
            *request.headers_mut() = if retryable {
                parts.headers.clone()
            } else {
                std::mem::take(&mut parts.headers)
            };
            if !request.headers().contains_key(header::HOST) {
                request
                    .headers_mut()
                    .insert(header::HOST, endpoint.host_header.clone());
            }
            let child = trace.map(|t| {
                let child = t.child();
                request
                    .headers_mut()
                    .insert(TRACEPARENT.clone(), t.traceparent(&child));
                child
            });
            let outcome = up.send(index, request).await;
            if let (Some(t), Some(child)) = (trace, child)
                && t.sampled()
            {
                let mut attributes = vec![
                    ("server.address", Value::Str(endpoint.label.clone())),
                    ("rampart.upstream", Value::Str(up.config.name.clone())),
                    ("rampart.attempt", Value::Int(i64::from(attempt) + 1)),
                ];
                let failed = match &outcome {
                    Ok(resp) => {
                        attributes.push((
                            "http.response.status_code",
                            Value::Int(i64::from(resp.status().as_u16())),
                        ));
                        resp.status().is_server_error()
                    }
                    Err(e) => {
                        attributes.push(("error.type", Value::Str(e.to_string())));
                        true
                    }
                };
                t.end(
                    child,
                    format!("upstream {}", up.config.name),
                    Kind::Client,
                    attributes,
                    failed,
                );
            }
            let more = retryable && attempt < retries;
            match outcome {
                Ok(resp) => {
                    let failed = resp.status().is_server_error();
                    up.record(index, !failed);
                    if failed && more && retryable_status(resp.status()) {
                        if route.budget.withdraw() {
                            route.metrics.retries.inc();
                            attempt += 1;
                            continue;
                        }
                        route.metrics.retry_budget_exhausted.inc();
                    }
                    return Ok((resp, guard));
                }
                Err(e) => {
                    up.record(index, false);
                    let err = ProxyError::from_send(&up.config.name, &endpoint.label, &e);
                    if let ProxyError::BodyTimeout { .. } = err {
                        shared.metrics.request_body_stalled().inc();
                        return Err(err);
                    }
                    if more {
                        if route.budget.withdraw() {
                            route.metrics.retries.inc();
                            attempt += 1;
                            continue;
                        }
                        route.metrics.retry_budget_exhausted.inc();
                    }
                    return Err(err);
                }
            }
        }
    };
    let outcome = tokio::time::timeout(deadline, attempts).await;
    if let (Some(entry), Some(index)) = (log.as_mut().and_then(|l| l.entry()), last_endpoint) {
        entry.endpoint = up.endpoints.get(index).cloned();
    }
    let (resp, endpoint_guard) = match outcome {
        Ok(result) => result?,
        Err(_) => {
            if let Some(index) = last_endpoint {
                up.record(index, false);
            }
            return Err(ProxyError::Timeout {
                upstream: up.config.name.clone(),
                after: deadline,
            });
        }
    };
    let (mut rparts, rbody) = resp.into_parts();
    strip_hop_by_hop(&mut rparts.headers);
    rparts
        .headers
        .entry(X_REQUEST_ID.clone())
        .or_insert_with(|| id.clone());
    if let (Some(limiter), Some(state)) = (&route.rate_limit, rate_state) {
        rparts
            .headers
            .insert(RATELIMIT_POLICY.clone(), limiter.policy().clone());
        rparts.headers.insert(RATELIMIT.clone(), state);
    }
    let held = Held {
        _global: global,
        _route: route_permit,
        _upstream: up_permit,
        _endpoint: Some(endpoint_guard),
        _inflight: inflight,
    };
    let mut body = Tracked::new(
        rbody,
        Box::new(held),
        limits.body_timeout,
        shared.metrics.upstream_body_stalled().clone(),
    );
    if let Some((g, started)) = grpc_deadline {
        // The client's deadline covers the whole call, streamed answers included.
        let mut trailers = http::HeaderMap::new();
        trailers.insert(
            "grpc-status",
            HeaderValue::from(grpc::Code::DeadlineExceeded as u16),
        );
        trailers.insert(
            "grpc-message",
            grpc::message_value("rampart: grpc-timeout reached"),
        );
        body = body.with_deadline(started + g, trailers);
    }
    Ok(Response::from_parts(rparts, ResponseBody::streamed(body)))
}

/// The route's limit on one request: the `RateLimit` header for its answer, or why not.
async fn rate_limit(limiter: &RouteLimiter, key: &[u8]) -> Result<HeaderValue, ProxyError> {
    match limiter.check(key).await {
        Verdict::Allowed(state) => Ok(state),
        Verdict::Limited { retry_after, state } => Err(ProxyError::RateLimited {
            retry_after,
            policy: limiter.policy().clone(),
            state,
        }),
        Verdict::Unavailable => Err(ProxyError::RateLimitUnavailable),
    }
}
