//! CORS (the Fetch standard's cross-origin protocol) for routes that set `cors`: the gateway
//! answers preflights itself (no auth, no upstream), and adds the response headers a browser
//! needs to hand a cross-origin answer to the page. CORS is a browser's rule, not access
//! control: a request from an origin not allowed is still forwarded, only without the headers.

use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE,
    ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD, ORIGIN, VARY,
};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};
use rampart_model::{CorsConfig, OriginMatch};

use crate::error::ProxyError;
use crate::response::{ResponseBody, full};

/// The method a preflight asks about, when the request is one (OPTIONS with an Origin and
/// `Access-Control-Request-Method`).
pub fn preflight_method(method: &Method, headers: &HeaderMap) -> Option<Method> {
    if method != Method::OPTIONS || !headers.contains_key(ORIGIN) {
        return None;
    }
    Method::from_bytes(headers.get(ACCESS_CONTROL_REQUEST_METHOD)?.as_bytes()).ok()
}

fn allowed_origin<'a>(
    cors: &CorsConfig,
    origin: Option<&'a HeaderValue>,
) -> Option<&'a HeaderValue> {
    let origin = origin?;
    let text = origin.to_str().ok()?;
    cors.origins
        .iter()
        .any(|o| o.matches(text))
        .then_some(origin)
}

/// The value of `Access-Control-Allow-Origin`: "*" for any origin without credentials,
/// else the origin itself.
fn allow_origin(cors: &CorsConfig, origin: &HeaderValue) -> HeaderValue {
    if !cors.credentials && cors.origins.contains(&OriginMatch::Any) {
        HeaderValue::from_static("*")
    } else {
        origin.clone()
    }
}

fn join<'a>(items: impl Iterator<Item = &'a str>) -> Option<HeaderValue> {
    let text = items.collect::<Vec<_>>().join(", ");
    HeaderValue::from_str(&text).ok()
}

/// The gateway's answer to a preflight: 204 with what is allowed, or 403 saying what is not.
pub fn answer_preflight(
    cors: &CorsConfig,
    method: &Method,
    headers: &HeaderMap,
    route: &str,
    request_id: &HeaderValue,
) -> Response<ResponseBody> {
    let refuse = |why: String| ProxyError::CorsRefused(why).into_response(Some(route), request_id);
    let Some(origin) = allowed_origin(cors, headers.get(ORIGIN)) else {
        return refuse("origin not allowed".into());
    };
    if !cors.methods.contains(method) {
        return refuse(format!("method {method} not allowed"));
    }
    let requested: Vec<&str> = headers
        .get_all(ACCESS_CONTROL_REQUEST_HEADERS)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .collect();
    if let Some(allowed) = &cors.headers
        && let Some(h) = requested
            .iter()
            .find(|h| !allowed.iter().any(|a| a.as_str().eq_ignore_ascii_case(h)))
    {
        return refuse(format!("header {h} not allowed"));
    }
    let mut resp = Response::new(full(""));
    *resp.status_mut() = StatusCode::NO_CONTENT;
    let h = resp.headers_mut();
    h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, allow_origin(cors, origin));
    if let Some(v) = join(cors.methods.iter().map(Method::as_str)) {
        h.insert(ACCESS_CONTROL_ALLOW_METHODS, v);
    }
    let allow_headers = match &cors.headers {
        Some(list) => join(list.iter().map(|n| n.as_str())),
        None => join(requested.iter().copied()),
    };
    if let Some(v) = allow_headers.filter(|v| !v.is_empty()) {
        h.insert(ACCESS_CONTROL_ALLOW_HEADERS, v);
    }
    h.insert(ACCESS_CONTROL_MAX_AGE, cors.max_age.as_secs().into());
    if cors.credentials {
        h.insert(
            ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
    h.insert(
        VARY,
        HeaderValue::from_static(
            "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
        ),
    );
    h.insert("x-request-id", request_id.clone());
    resp
}

/// Adds the CORS headers to an answer for an allowed origin (the upstream's or the
/// gateway's own, errors included, so a page can read a 429 or a 503).
pub fn decorate(cors: &CorsConfig, origin: Option<&HeaderValue>, response: &mut HeaderMap) {
    let Some(origin) = allowed_origin(cors, origin) else {
        return;
    };
    response.insert(ACCESS_CONTROL_ALLOW_ORIGIN, allow_origin(cors, origin));
    if cors.credentials {
        response.insert(
            ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
    if let Some(v) = join(cors.expose_headers.iter().map(|n| n.as_str())).filter(|v| !v.is_empty())
    {
        response.insert(ACCESS_CONTROL_EXPOSE_HEADERS, v);
    }
    response.append(VARY, HeaderValue::from_static("Origin"));
}
