//! Compiling the access log, the Redis of global rate limits, and each route's rate limit
//! and CORS policy.

use std::path::PathBuf;
use std::time::Duration;

use http::{HeaderName, Method};

use super::{Cx, parse_endpoint};
use crate::config::*;
use crate::raw::{self, Document};

const ACCESS_LOG_BUFFER: u64 = 8192;
const REDIS_TIMEOUT: Duration = Duration::from_millis(25);
const RATE_LIMIT_MAX_KEYS: u64 = 100_000;
const CORS_MAX_AGE: Duration = Duration::from_secs(600);

pub(super) fn access_log(cx: &mut Cx, raw: Option<&raw::AccessLog>) -> Option<AccessLogConfig> {
    let raw = raw?;
    let target = match raw.path.as_str() {
        "stdout" | "-" => LogTarget::Stdout,
        "" => {
            cx.error("access_log.path", "empty: name a file, or \"stdout\"");
            LogTarget::Stdout
        }
        path => LogTarget::File(PathBuf::from(path)),
    };
    let format = raw.format.unwrap_or_default();
    let fields = match &raw.fields {
        None => LogField::ALL.to_vec(),
        Some(names) => {
            if names.is_empty() {
                cx.error("access_log.fields", "empty list; omit it for every field");
            }
            if format == LogFormat::Clf {
                cx.error(
                    "access_log.fields",
                    "the clf format has fixed fields; choose fields with format json",
                );
            }
            let mut out = Vec::new();
            for (i, name) in names.iter().enumerate() {
                match LogField::from_name(name) {
                    Some(f) if out.contains(&f) => cx.error(
                        format!("access_log.fields[{i}]"),
                        format!("{name:?} is listed twice"),
                    ),
                    Some(f) => out.push(f),
                    None => cx.error(
                        format!("access_log.fields[{i}]"),
                        format!(
                            "unknown field {name:?}; known: {}",
                            LogField::ALL.map(LogField::name).join(", ")
                        ),
                    ),
                }
            }
            out
        }
    };
    let buffer = cx.range(
        "access_log.buffer",
        raw.buffer.map(u64::from),
        ACCESS_LOG_BUFFER,
        1,
        1 << 20,
    ) as usize;
    Some(AccessLogConfig {
        target,
        format,
        fields,
        buffer,
    })
}

pub(super) fn redis(cx: &mut Cx, raw: Option<&raw::Redis>) -> Option<RedisConfig> {
    let raw = raw?;
    let endpoint = match parse_endpoint(&raw.address) {
        Ok(e) => Some(e),
        Err(e) => {
            cx.error("redis.address", e);
            None
        }
    };
    let timeout = cx.duration("redis.timeout", raw.timeout.as_ref(), REDIS_TIMEOUT, false);
    let key_prefix = raw.key_prefix.clone().unwrap_or_else(|| "rampart".into());
    if key_prefix.is_empty()
        || key_prefix.len() > 64
        || !key_prefix.bytes().all(|b| b.is_ascii_graphic())
    {
        cx.error(
            "redis.key_prefix",
            "use 1 to 64 printable characters without spaces",
        );
    }
    Some(RedisConfig {
        endpoint: endpoint?,
        timeout,
        key_prefix,
    })
}

/// "100/s", "600/m", "10000/h" → (count, period).
fn rate(text: &str) -> Result<(u32, Duration), String> {
    let err = || {
        format!("invalid rate {text:?}: expected COUNT/UNIT with unit s, m or h, e.g. \"100/s\"")
    };
    let (count, unit) = text.split_once('/').ok_or_else(err)?;
    let count: u32 = count.trim().parse().map_err(|_| err())?;
    let period = match unit.trim() {
        "s" => Duration::from_secs(1),
        "m" => Duration::from_secs(60),
        "h" => Duration::from_secs(3600),
        _ => return Err(err()),
    };
    if count == 0 || count > 1_000_000 {
        return Err(format!(
            "invalid rate {text:?}: the count must be from 1 to 1000000"
        ));
    }
    Ok((count, period))
}

pub(super) fn rate_limit(
    cx: &mut Cx,
    at: &str,
    doc: &Document,
    route: &raw::Route,
) -> Option<RateLimitConfig> {
    let raw = route.rate_limit.as_ref()?;
    let mark = cx.mark();
    let provider = route
        .auth
        .as_ref()
        .and_then(|name| doc.auth_providers.iter().find(|p| p.name() == name));
    let key = match raw.key.as_str() {
        "client_ip" => Some(RateLimitKey::ClientIp),
        "auth_subject" => {
            if route.auth.is_none() {
                cx.error(
                    format!("{at}.key"),
                    "auth_subject needs an auth provider on the route (set `auth`)",
                );
            }
            Some(RateLimitKey::AuthSubject)
        }
        "api_key" => match provider {
            Some(raw::AuthProvider::ApiKey(p)) => match HeaderName::try_from(p.header.as_str()) {
                Ok(h) => Some(RateLimitKey::ApiKey(h)),
                Err(_) => None, // the provider's own check reports its header
            },
            _ => {
                cx.error(
                    format!("{at}.key"),
                    "api_key needs an api_key provider as the route's `auth`",
                );
                None
            }
        },
        other => match other.strip_prefix("header:") {
            Some(name) => match HeaderName::try_from(name) {
                Ok(h) => Some(RateLimitKey::Header(h)),
                Err(_) => {
                    cx.error(
                        format!("{at}.key"),
                        format!("{name:?} is not a valid header name"),
                    );
                    None
                }
            },
            None => {
                cx.error(
                    format!("{at}.key"),
                    format!(
                        "unknown key {other:?}: use client_ip, auth_subject, api_key or header:NAME"
                    ),
                );
                None
            }
        },
    };
    let (count, period) = match rate(&raw.rate) {
        Ok(r) => r,
        Err(e) => {
            cx.error(format!("{at}.rate"), e);
            (1, Duration::from_secs(1))
        }
    };
    let burst = cx.range(
        &format!("{at}.burst"),
        raw.burst.map(u64::from),
        count.into(),
        1,
        1_000_000,
    ) as u32;
    let global = raw.global.unwrap_or(false);
    if global && doc.redis.is_none() {
        cx.error(
            format!("{at}.global"),
            "a global limit shares its counters through Redis: set the top-level `redis`",
        );
    }
    if raw.on_unavailable.is_some() && !global {
        cx.error(
            format!("{at}.on_unavailable"),
            "only a global limit can be unavailable (set `global: true`)",
        );
    }
    let max_keys = cx.range(
        &format!("{at}.max_keys"),
        raw.max_keys.map(u64::from),
        RATE_LIMIT_MAX_KEYS,
        1,
        10_000_000,
    ) as usize;
    if !cx.clean_since(mark) {
        return None;
    }
    Some(RateLimitConfig {
        key: key?,
        count,
        period,
        burst,
        global,
        on_unavailable: raw.on_unavailable.unwrap_or_default(),
        max_keys,
    })
}

fn origin(cx: &mut Cx, at: &str, text: &str) -> Option<OriginMatch> {
    if text == "*" {
        return Some(OriginMatch::Any);
    }
    let bad = |why: &str| format!("invalid origin {text:?}: {why}");
    let Some((scheme, host)) = text.split_once("://") else {
        cx.error(
            at,
            bad("expected SCHEME://HOST[:PORT], e.g. \"https://app.example.com\""),
        );
        return None;
    };
    if !matches!(scheme, "http" | "https") {
        cx.error(at, bad("the scheme must be http or https"));
        return None;
    }
    if host.is_empty() || host.contains('/') || host.ends_with('.') {
        cx.error(at, bad("an origin is a scheme and a host, without a path"));
        return None;
    }
    let lower = text.to_ascii_lowercase();
    match host.strip_prefix("*.") {
        Some(suffix) if !suffix.is_empty() && !suffix.contains('*') => {
            Some(OriginMatch::Subdomains {
                scheme: format!("{}://", scheme.to_ascii_lowercase()),
                suffix: format!(".{}", suffix.to_ascii_lowercase()),
            })
        }
        _ if host.contains('*') => {
            cx.error(
                at,
                bad("a wildcard may only open the host: \"https://*.example.com\""),
            );
            None
        }
        _ => Some(OriginMatch::Exact(lower)),
    }
}

fn header_names(cx: &mut Cx, at: &str, names: &[String]) -> Vec<HeaderName> {
    names
        .iter()
        .enumerate()
        .filter_map(|(i, n)| match HeaderName::try_from(n.as_str()) {
            Ok(h) => Some(h),
            Err(_) => {
                cx.error(
                    format!("{at}[{i}]"),
                    format!("{n:?} is not a valid header name"),
                );
                None
            }
        })
        .collect()
}

pub(super) fn cors(
    cx: &mut Cx,
    at: &str,
    raw: Option<&raw::Cors>,
    route_methods: Option<&[Method]>,
) -> Option<CorsConfig> {
    let raw = raw?;
    let mark = cx.mark();
    if raw.origins.is_empty() {
        cx.error(
            format!("{at}.origins"),
            "empty: name at least one origin, or \"*\"",
        );
    }
    let origins: Vec<OriginMatch> = raw
        .origins
        .iter()
        .enumerate()
        .filter_map(|(i, o)| origin(cx, &format!("{at}.origins[{i}]"), o))
        .collect();
    let credentials = raw.credentials.unwrap_or(false);
    if credentials && origins.contains(&OriginMatch::Any) {
        cx.error(
            format!("{at}.credentials"),
            "browsers refuse credentials with origin \"*\": list the origins",
        );
    }
    let methods = match &raw.methods {
        Some(list) => list
            .iter()
            .enumerate()
            .filter_map(|(i, m)| match Method::from_bytes(m.as_bytes()) {
                Ok(method) if m.bytes().all(|b| !b.is_ascii_lowercase()) => Some(method),
                _ => {
                    cx.error(
                        format!("{at}.methods[{i}]"),
                        format!("{m:?} is not an HTTP method in upper case"),
                    );
                    None
                }
            })
            .collect(),
        None => route_methods
            .map(<[Method]>::to_vec)
            .unwrap_or_else(|| vec![Method::GET, Method::HEAD, Method::POST]),
    };
    let headers = match &raw.headers {
        Some(list) if list.iter().any(|h| h == "*") => None,
        Some(list) => Some(header_names(cx, &format!("{at}.headers"), list)),
        None => Some(Vec::new()),
    };
    let expose_headers = header_names(
        cx,
        &format!("{at}.expose_headers"),
        raw.expose_headers.as_deref().unwrap_or_default(),
    );
    let max_age = cx.duration(
        &format!("{at}.max_age"),
        raw.max_age.as_ref(),
        CORS_MAX_AGE,
        true,
    );
    cx.clean_since(mark).then_some(CorsConfig {
        origins,
        methods,
        headers,
        expose_headers,
        max_age,
        credentials,
    })
}

pub(super) fn upstream_tls(cx: &mut Cx, at: &str, raw: &raw::UpstreamTls) -> UpstreamTlsConfig {
    if let Some(name) = &raw.server_name
        && name.parse::<std::net::IpAddr>().is_err()
        && !super::valid_dns_name(name)
    {
        cx.error(
            format!("{at}.server_name"),
            format!("{name:?} is not a DNS name or an IP address"),
        );
    }
    if raw.ca_file.as_deref() == Some("") {
        cx.error(
            format!("{at}.ca_file"),
            "empty: name a PEM file, or omit it",
        );
    }
    UpstreamTlsConfig {
        server_name: raw.server_name.as_ref().map(|n| n.to_ascii_lowercase()),
        ca_file: raw.ca_file.as_ref().map(PathBuf::from),
    }
}

pub(super) fn tracing(cx: &mut Cx, raw: Option<&raw::Tracing>) -> Option<TracingConfig> {
    let raw = raw?;
    let mark = cx.mark();
    let endpoint = cx.url("tracing.otlp_endpoint", &raw.otlp_endpoint);
    let sample = raw.sample.unwrap_or(0.01);
    if !(0.0..=1.0).contains(&sample) {
        cx.error(
            "tracing.sample",
            format!("{sample} is not a share from 0 to 1"),
        );
    }
    let service_name = raw.service_name.clone().unwrap_or_else(|| "rampart".into());
    if service_name.is_empty() || service_name.len() > 128 {
        cx.error("tracing.service_name", "use 1 to 128 characters");
    }
    let timeout = cx.duration(
        "tracing.timeout",
        raw.timeout.as_ref(),
        Duration::from_secs(2),
        false,
    );
    let buffer = cx.range(
        "tracing.buffer",
        raw.buffer.map(u64::from),
        4096,
        1,
        1 << 20,
    ) as usize;
    if !cx.clean_since(mark) {
        return None;
    }
    Some(TracingConfig {
        endpoint: endpoint?,
        sample,
        service_name,
        timeout,
        buffer,
    })
}
