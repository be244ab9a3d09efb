//! `compile()`: raw [`Document`] -> validated [`Config`], collecting every problem with its path.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use http::{HeaderName, HeaderValue, Method, Uri};

use crate::config::*;
use crate::duration::DurationStr;
use crate::error::{CompileErrors, ConfigError};
use crate::raw::{self, Document};
use crate::version::VersionId;

mod features;

/// Longest timeout any field accepts.
const MAX_TIMEOUT: Duration = Duration::from_secs(3600);
const JWT_KNOWN_ALGORITHMS: [&str; 9] = [
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];

/// Validates a document. Collects every problem; returns them all or a [`Config`].
pub fn compile(document: Document) -> Result<Config, CompileErrors> {
    let mut cx = Cx::default();
    let listeners = listeners(&mut cx, &document.listeners);
    let admin = document
        .admin
        .as_ref()
        .and_then(|a| cx.socket_addr("admin.address", &a.address));
    if let (Some(admin), Some(listeners)) = (admin, listeners.as_ref())
        && admin.port() != 0
        && let Some(l) = listeners.iter().find(|l| l.address == admin)
    {
        cx.error(
            "admin.address",
            format!("{admin} is also the address of listener {:?}", l.name),
        );
    }
    let resolver = resolver(&mut cx, document.resolver.as_ref());
    let auth_providers = auth_providers(&mut cx, &document.auth_providers);
    let upstreams = upstreams(&mut cx, &document.upstreams);
    let routes = routes(&mut cx, &document);
    let limits = limits(&mut cx, document.limits.as_ref());
    let access_log = features::access_log(&mut cx, document.access_log.as_ref());
    let redis = features::redis(&mut cx, document.redis.as_ref());
    let tracing = features::tracing(&mut cx, document.tracing.as_ref());
    unused_warnings(&mut cx, &document);

    if !cx.errors.is_empty() {
        return Err(CompileErrors(cx.errors));
    }
    let (
        Some(listeners),
        Some(resolver),
        Some(auth_providers),
        Some(upstreams),
        Some(routes),
        Some(limits),
    ) = (
        listeners,
        resolver,
        auth_providers,
        upstreams,
        routes,
        limits,
    )
    else {
        // Every None above came with an error, so this is unreachable; report it rather than panic.
        return Err(CompileErrors(vec![ConfigError::new(
            "",
            "internal: incomplete compile",
        )]));
    };
    Ok(Config {
        version: VersionId::of(&document),
        document,
        listeners,
        admin,
        resolver,
        auth_providers,
        upstreams,
        routes,
        limits,
        access_log,
        redis,
        tracing,
        warnings: cx.warnings,
    })
}

/// Error collector. Each helper returns `None` after recording why.
#[derive(Default)]
struct Cx {
    errors: Vec<ConfigError>,
    warnings: Vec<String>,
}

impl Cx {
    fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ConfigError::new(path, message));
    }

    /// Tracks whether new errors were added since `mark`.
    fn mark(&self) -> usize {
        self.errors.len()
    }

    fn clean_since(&self, mark: usize) -> bool {
        self.errors.len() == mark
    }

    fn name(&mut self, path: &str, name: &str) {
        let ok = !name.is_empty()
            && name.len() <= 63
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !ok {
            self.error(
                path,
                format!("invalid name {name:?}: use 1 to 63 letters, digits, '-', '_' or '.'"),
            );
        }
    }

    fn unique<'a>(&mut self, kind: &str, items: impl Iterator<Item = &'a str>) {
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (i, name) in items.enumerate() {
            if let Some(first) = seen.insert(name, i) {
                self.error(
                    format!("{kind}[{i}].name"),
                    format!("duplicate name {name:?} (also {kind}[{first}])"),
                );
            }
        }
    }

    fn socket_addr(&mut self, path: &str, text: &str) -> Option<SocketAddr> {
        match text.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                self.error(
                    path,
                    format!("invalid socket address {text:?}: expected IP:PORT, e.g. \"127.0.0.1:8080\" or \"[::1]:8080\""),
                );
                None
            }
        }
    }

    /// A duration field: absent -> default; present -> parsed and checked to be in (min, MAX_TIMEOUT].
    fn duration(
        &mut self,
        path: &str,
        value: Option<&DurationStr>,
        default: Duration,
        allow_zero: bool,
    ) -> Duration {
        let Some(value) = value else { return default };
        match value.parse() {
            Ok(d) if d.is_zero() && !allow_zero => {
                self.error(path, "must be greater than zero");
                default
            }
            Ok(d) if d > MAX_TIMEOUT => {
                self.error(path, format!("{value} is longer than the maximum of 1h"));
                default
            }
            Ok(d) => d,
            Err(e) => {
                self.error(path, e);
                default
            }
        }
    }

    fn range(&mut self, path: &str, value: Option<u64>, default: u64, min: u64, max: u64) -> u64 {
        match value {
            None => default,
            Some(v) if v < min || v > max => {
                self.error(path, format!("{v} is out of range ({min} to {max})"));
                default
            }
            Some(v) => v,
        }
    }

    fn url(&mut self, path: &str, text: &str) -> Option<Uri> {
        let uri = match text.parse::<Uri>() {
            Ok(u) => u,
            Err(e) => {
                self.error(path, format!("invalid URL {text:?}: {e}"));
                return None;
            }
        };
        match uri.scheme_str() {
            Some("http" | "https") => {}
            _ => {
                self.error(
                    path,
                    format!("invalid URL {text:?}: scheme must be http or https"),
                );
                return None;
            }
        }
        let Some(host) = uri.host() else {
            self.error(path, format!("invalid URL {text:?}: no host"));
            return None;
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.parse::<IpAddr>().is_err() && !valid_dns_name(host) {
            self.error(
                path,
                format!("invalid URL {text:?}: {host:?} is not an IP address or DNS name"),
            );
            return None;
        }
        Some(uri)
    }
}

fn valid_dns_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// Parses "host:port" where host is an IPv4 address, a bracketed IPv6 address or a DNS name.
pub fn parse_endpoint(text: &str) -> Result<Endpoint, String> {
    if let Ok(sa) = text.parse::<SocketAddr>() {
        return Ok(Endpoint {
            host: Host::Ip(sa.ip()),
            port: sa.port(),
        });
    }
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err(format!("invalid endpoint {text:?}: expected HOST:PORT"));
    };
    let port: u16 = match port.parse() {
        Ok(p) if p > 0 => p,
        _ => {
            return Err(format!(
                "invalid endpoint {text:?}: port {port:?} is not a number from 1 to 65535"
            ));
        }
    };
    if host.contains(':') || host.starts_with('[') {
        return Err(format!(
            "invalid endpoint {text:?}: write IPv6 addresses in brackets, e.g. \"[::1]:8000\""
        ));
    }
    if !valid_dns_name(host) {
        return Err(format!(
            "invalid endpoint {text:?}: {host:?} is not an IP address or DNS name"
        ));
    }
    Ok(Endpoint {
        host: Host::Name(host.to_ascii_lowercase()),
        port,
    })
}

fn listeners(cx: &mut Cx, raw: &[raw::Listener]) -> Option<Vec<ListenerConfig>> {
    let mark = cx.mark();
    if raw.is_empty() {
        cx.error("listeners", "at least one listener is required");
    }
    cx.unique("listeners", raw.iter().map(|l| l.name.as_str()));
    let mut by_addr: HashMap<SocketAddr, usize> = HashMap::new();
    let mut out = Vec::new();
    for (i, l) in raw.iter().enumerate() {
        cx.name(&format!("listeners[{i}].name"), &l.name);
        let Some(address) = cx.socket_addr(&format!("listeners[{i}].address"), &l.address) else {
            continue;
        };
        // Port 0 asks the OS for any free port: never a collision.
        if address.port() != 0
            && let Some(first) = by_addr.insert(address, i)
        {
            cx.error(
                format!("listeners[{i}].address"),
                format!("{address} is also the address of listeners[{first}]"),
            );
        }
        let tls = l.tls.as_ref().map(|t| {
            for (field, value) in [("cert_file", &t.cert_file), ("key_file", &t.key_file)] {
                if value.trim().is_empty() {
                    cx.error(
                        format!("listeners[{i}].tls.{field}"),
                        "must name a PEM file",
                    );
                }
            }
            TlsFiles {
                cert_file: t.cert_file.clone(),
                key_file: t.key_file.clone(),
            }
        });
        let mut trusted_proxies = Vec::new();
        for (j, text) in l.trusted_proxies.iter().flatten().enumerate() {
            let parsed = text
                .parse::<ipnet::IpNet>()
                .or_else(|_| text.parse::<IpAddr>().map(ipnet::IpNet::from));
            match parsed {
                Ok(net) => trusted_proxies.push(net.trunc()),
                Err(_) => cx.error(
                    format!("listeners[{i}].trusted_proxies[{j}]"),
                    format!("{text:?} is not a CIDR block (\"10.0.0.0/8\") or an IP address"),
                ),
            }
        }
        out.push(ListenerConfig {
            name: l.name.clone(),
            address,
            tls,
            trusted_proxies,
            escaped_slashes: match l.escaped_slashes {
                Some(raw::EscapedSlashes::Keep) => crate::path::EscapedSlashes::Keep,
                Some(raw::EscapedSlashes::Reject) | None => crate::path::EscapedSlashes::Reject,
            },
        });
    }
    cx.clean_since(mark).then_some(out)
}

fn resolver(cx: &mut Cx, raw: Option<&raw::Resolver>) -> Option<ResolverConfig> {
    use crate::defaults::*;
    let mark = cx.mark();
    let empty = raw::Resolver {
        nameservers: None,
        timeout: None,
        attempts: None,
        cache_ttl: None,
        negative_ttl: None,
        serve_stale: None,
    };
    let r = raw.unwrap_or(&empty);
    let nameservers = r.nameservers.as_ref().map(|list| {
        if list.is_empty() {
            cx.error(
                "resolver.nameservers",
                "empty list; omit the field to use the system's resolv.conf",
            );
        }
        list.iter()
            .enumerate()
            .filter_map(|(i, ns)| match ns.parse::<IpAddr>() {
                Ok(ip) => Some(SocketAddr::new(ip, 53)),
                Err(_) => cx.socket_addr(&format!("resolver.nameservers[{i}]"), ns),
            })
            .collect()
    });
    let config = ResolverConfig {
        nameservers,
        timeout: cx.duration(
            "resolver.timeout",
            r.timeout.as_ref(),
            RESOLVER_TIMEOUT,
            false,
        ),
        attempts: cx.range(
            "resolver.attempts",
            r.attempts.map(u64::from),
            RESOLVER_ATTEMPTS.into(),
            1,
            10,
        ) as u32,
        cache_ttl: cx.duration(
            "resolver.cache_ttl",
            r.cache_ttl.as_ref(),
            RESOLVER_CACHE_TTL,
            true,
        ),
        negative_ttl: cx.duration(
            "resolver.negative_ttl",
            r.negative_ttl.as_ref(),
            RESOLVER_NEGATIVE_TTL,
            true,
        ),
        serve_stale: cx.duration(
            "resolver.serve_stale",
            r.serve_stale.as_ref(),
            RESOLVER_SERVE_STALE,
            true,
        ),
    };
    cx.clean_since(mark).then_some(config)
}

fn auth_providers(cx: &mut Cx, raw: &[raw::AuthProvider]) -> Option<Vec<AuthProviderConfig>> {
    use crate::defaults::*;
    let mark = cx.mark();
    cx.unique("auth_providers", raw.iter().map(|p| p.name()));
    let mut out = Vec::new();
    for (i, p) in raw.iter().enumerate() {
        let at = |field: &str| format!("auth_providers[{i}].{field}");
        cx.name(&at("name"), p.name());
        match p {
            raw::AuthProvider::Introspection(p) => {
                let endpoint = cx.url(&at("endpoint"), &p.endpoint);
                let config = IntrospectionConfig {
                    name: p.name.clone(),
                    endpoint: endpoint.unwrap_or_default(),
                    timeout: cx.duration(
                        &at("timeout"),
                        p.timeout.as_ref(),
                        INTROSPECTION_TIMEOUT,
                        false,
                    ),
                    cache_ttl: cx.duration(
                        &at("cache_ttl"),
                        p.cache_ttl.as_ref(),
                        INTROSPECTION_CACHE_TTL,
                        true,
                    ),
                    on_failure: p.on_failure.unwrap_or_default(),
                    client_id: p.client_id.clone(),
                    client_secret: p.client_secret.clone(),
                };
                if config.client_id.is_some() != config.client_secret.is_some() {
                    cx.error(
                        at("client_secret"),
                        "client_id and client_secret go together",
                    );
                }
                out.push(AuthProviderConfig::Introspection(config));
            }
            raw::AuthProvider::Jwt(p) => {
                let jwks_url = cx.url(&at("jwks_url"), &p.jwks_url);
                let algorithms: Vec<String> = match &p.algorithms {
                    None => JWT_ALGORITHMS.iter().map(|s| s.to_string()).collect(),
                    Some(list) => {
                        if list.is_empty() {
                            cx.error(
                                at("algorithms"),
                                "empty list; omit it for the default (RS256, ES256)",
                            );
                        }
                        for (j, alg) in list.iter().enumerate() {
                            if !JWT_KNOWN_ALGORITHMS.contains(&alg.as_str()) {
                                cx.error(
                                    format!("auth_providers[{i}].algorithms[{j}]"),
                                    format!(
                                        "unsupported algorithm {alg:?} (supported: {})",
                                        JWT_KNOWN_ALGORITHMS.join(", ")
                                    ),
                                );
                            }
                        }
                        list.clone()
                    }
                };
                out.push(AuthProviderConfig::Jwt(JwtConfig {
                    name: p.name.clone(),
                    jwks_url: jwks_url.unwrap_or_default(),
                    issuer: p.issuer.clone(),
                    audience: p.audience.clone(),
                    algorithms,
                    refresh: cx.duration(&at("refresh"), p.refresh.as_ref(), JWKS_REFRESH, false),
                    timeout: cx.duration(&at("timeout"), p.timeout.as_ref(), JWKS_TIMEOUT, false),
                    on_failure: p.on_failure.unwrap_or_default(),
                }));
            }
            raw::AuthProvider::ApiKey(p) => {
                let header = match HeaderName::try_from(p.header.as_str()) {
                    Ok(h) => h,
                    Err(_) => {
                        cx.error(
                            at("header"),
                            format!("{:?} is not a valid header name", p.header),
                        );
                        HeaderName::from_static("x-api-key")
                    }
                };
                if p.keys_sha256.is_empty() {
                    cx.error(at("keys_sha256"), "at least one key hash is required");
                }
                let mut keys = Vec::new();
                for (j, k) in p.keys_sha256.iter().enumerate() {
                    let mut digest = [0u8; 32];
                    match hex::decode_to_slice(k, &mut digest) {
                        Ok(()) => keys.push(digest),
                        Err(_) => cx.error(
                            format!("auth_providers[{i}].keys_sha256[{j}]"),
                            "not a SHA-256 hash: expected 64 hex characters",
                        ),
                    }
                }
                out.push(AuthProviderConfig::ApiKey(ApiKeyConfig {
                    name: p.name.clone(),
                    header,
                    keys_sha256: keys,
                }));
            }
        }
    }
    cx.clean_since(mark).then_some(out)
}

fn upstreams(cx: &mut Cx, raw: &[raw::Upstream]) -> Option<Vec<UpstreamConfig>> {
    use crate::defaults::*;
    let mark = cx.mark();
    cx.unique("upstreams", raw.iter().map(|u| u.name.as_str()));
    let mut out = Vec::new();
    for (i, u) in raw.iter().enumerate() {
        let at = |field: &str| format!("upstreams[{i}].{field}");
        cx.name(&at("name"), &u.name);
        if u.endpoints.is_empty() {
            cx.error(at("endpoints"), "at least one endpoint is required");
        }
        let mut endpoints: Vec<Endpoint> = Vec::new();
        for (j, e) in u.endpoints.iter().enumerate() {
            match parse_endpoint(e) {
                Ok(ep) if endpoints.contains(&ep) => cx.error(
                    format!("upstreams[{i}].endpoints[{j}]"),
                    format!("duplicate endpoint {e:?}"),
                ),
                Ok(ep) => endpoints.push(ep),
                Err(msg) => cx.error(format!("upstreams[{i}].endpoints[{j}]"), msg),
            }
        }
        let protocol = u.protocol.unwrap_or_default();
        let speaks_h2 = protocol == UpstreamProtocol::H2
            || (protocol == UpstreamProtocol::Auto && u.tls.is_some());
        if protocol == UpstreamProtocol::Auto && u.tls.is_none() {
            cx.warnings.push(format!(
                "upstreams[{i}].protocol: auto without tls speaks HTTP/1.1 (the protocol is chosen by ALPN, in the TLS handshake)"
            ));
        }
        let tls = u
            .tls
            .as_ref()
            .map(|t| features::upstream_tls(cx, &at("tls"), t));
        let health_check = u.health_check.as_ref().map(|h| {
            let path = match (&h.path, &h.grpc_service) {
                (Some(_), Some(_)) => {
                    cx.error(at("health_check"), "path and grpc_service are exclusive; use one");
                    String::new()
                }
                (None, None) => {
                    cx.error(at("health_check"), "name a path to GET, or a grpc_service to check");
                    String::new()
                }
                (Some(path), None) => {
                    if !path.starts_with('/') {
                        cx.error(at("health_check.path"), format!("{path:?} must start with '/'"));
                    }
                    path.clone()
                }
                (None, Some(_)) => {
                    if !speaks_h2 {
                        cx.error(
                            at("health_check.grpc_service"),
                            "gRPC health checks need HTTP/2: set `protocol: h2` (or `auto` with `tls`)",
                        );
                    }
                    String::new()
                }
            };
            if let Some(host) = &h.host
                && (host.is_empty()
                    || host.contains(['/', ' ', '@'])
                    || http::uri::Authority::try_from(host.as_str()).is_err())
            {
                cx.error(at("health_check.host"), format!("{host:?} is not a host (name or name:port)"));
            }
            let hc = HealthCheckConfig {
                path,
                grpc_service: h.grpc_service.clone(),
                host: h.host.clone(),
                interval: cx.duration(&at("health_check.interval"), h.interval.as_ref(), HEALTH_INTERVAL, false),
                timeout: cx.duration(&at("health_check.timeout"), h.timeout.as_ref(), HEALTH_TIMEOUT, false),
                healthy_after: cx.range(&at("health_check.healthy_after"), h.healthy_after.map(u64::from), HEALTHY_AFTER.into(), 1, 100) as u32,
                unhealthy_after: cx.range(&at("health_check.unhealthy_after"), h.unhealthy_after.map(u64::from), UNHEALTHY_AFTER.into(), 1, 100) as u32,
            };
            if hc.timeout > hc.interval {
                cx.warnings.push(format!(
                    "upstreams[{i}].health_check.timeout: {:?} is longer than the interval {:?}; probes will overlap",
                    hc.timeout, hc.interval
                ));
            }
            hc
        });
        let outlier = OutlierConfig {
            consecutive_5xx: cx.range(
                &at("outlier.consecutive_5xx"),
                u.outlier
                    .as_ref()
                    .and_then(|o| o.consecutive_5xx)
                    .map(u64::from),
                OUTLIER_CONSECUTIVE_5XX.into(),
                1,
                1000,
            ) as u32,
            ejection: cx.duration(
                &at("outlier.ejection"),
                u.outlier.as_ref().and_then(|o| o.ejection.as_ref()),
                OUTLIER_EJECTION,
                false,
            ),
        };
        out.push(UpstreamConfig {
            name: u.name.clone(),
            endpoints,
            balance: u.balance.unwrap_or_default(),
            connect_timeout: cx.duration(
                &at("connect_timeout"),
                u.connect_timeout.as_ref(),
                CONNECT_TIMEOUT,
                false,
            ),
            health_check,
            outlier,
            slow_start: cx.duration(
                &at("slow_start"),
                u.slow_start.as_ref(),
                Duration::ZERO,
                true,
            ),
            max_concurrency: u
                .max_concurrency
                .map(|v| cx.range(&at("max_concurrency"), Some(v.into()), 1, 1, 1_000_000) as u32),
            protocol,
            tls,
        });
    }
    cx.clean_since(mark).then_some(out)
}

fn routes(cx: &mut Cx, doc: &Document) -> Option<Vec<RouteConfig>> {
    use crate::defaults::*;
    let mark = cx.mark();
    cx.unique("routes", doc.routes.iter().map(|r| r.name.as_str()));
    let mut out = Vec::new();
    let mut seen_matches: Vec<(&raw::RouteMatch, usize)> = Vec::new();
    for (i, r) in doc.routes.iter().enumerate() {
        let at = |field: &str| format!("routes[{i}].{field}");
        cx.name(&at("name"), &r.name);
        if !doc.upstreams.iter().any(|u| u.name == r.upstream) {
            cx.error(
                at("upstream"),
                format!(
                    "no upstream named {:?}{}",
                    r.upstream,
                    did_you_mean(&r.upstream, doc.upstreams.iter().map(|u| u.name.as_str()))
                ),
            );
        }
        if let Some(auth) = &r.auth
            && !doc.auth_providers.iter().any(|p| p.name() == auth)
        {
            cx.error(
                at("auth"),
                format!(
                    "no auth provider named {auth:?}{}",
                    did_you_mean(auth, doc.auth_providers.iter().map(|p| p.name()))
                ),
            );
        }
        if r.scopes.is_some() && r.auth.is_none() {
            cx.error(at("scopes"), "scopes need an auth provider (set `auth`)");
        }
        let m = &r.matches;
        if let Some((_, first)) = seen_matches.iter().find(|(other, _)| *other == m) {
            cx.error(
                at("match"),
                format!(
                    "same match as routes[{first}] ({:?}); this route could never be chosen",
                    doc.routes[*first].name
                ),
            );
        }
        seen_matches.push((m, i));
        let host = m
            .host
            .as_ref()
            .and_then(|h| host_match(cx, &at("match.host"), h));
        let path = match (&m.path_prefix, &m.path_exact) {
            (Some(_), Some(_)) => {
                cx.error(
                    at("match"),
                    "path_prefix and path_exact are exclusive; use one",
                );
                PathMatch::Prefix("/".into())
            }
            (Some(p), None) => PathMatch::Prefix(path_field(cx, &at("match.path_prefix"), p)),
            (None, Some(p)) => PathMatch::Exact(path_field(cx, &at("match.path_exact"), p)),
            (None, None) => PathMatch::Prefix("/".into()),
        };
        let methods = m.methods.as_ref().map(|list| {
            if list.is_empty() {
                cx.error(
                    at("match.methods"),
                    "empty list; omit it to match any method",
                );
            }
            list.iter()
                .enumerate()
                .filter_map(|(j, name)| {
                    let upper = name.to_ascii_uppercase();
                    match Method::from_bytes(upper.as_bytes()) {
                        Ok(method) if upper == *name => Some(method),
                        Ok(_) => {
                            cx.error(
                                format!("routes[{i}].match.methods[{j}]"),
                                format!("write methods in upper case: {upper:?}"),
                            );
                            None
                        }
                        Err(_) => {
                            cx.error(
                                format!("routes[{i}].match.methods[{j}]"),
                                format!("{name:?} is not an HTTP method"),
                            );
                            None
                        }
                    }
                })
                .collect()
        });
        let headers = headers(cx, &at("match.headers"), m.headers.as_ref());
        let rate_limit = features::rate_limit(cx, &at("rate_limit"), doc, r);
        let cors = features::cors(cx, &at("cors"), r.cors.as_ref(), methods.as_deref());
        let retries = match &r.retries {
            None => RetryConfig {
                attempts: 0,
                budget_percent: RETRY_BUDGET_PERCENT,
            },
            Some(rt) => RetryConfig {
                attempts: cx.range(&at("retries.attempts"), Some(rt.attempts.into()), 0, 0, 10)
                    as u32,
                budget_percent: cx.range(
                    &at("retries.budget_percent"),
                    rt.budget_percent.map(u64::from),
                    RETRY_BUDGET_PERCENT.into(),
                    0,
                    100,
                ) as u32,
            },
        };
        out.push(RouteConfig {
            name: r.name.clone(),
            host,
            path,
            methods,
            headers,
            upstream: r.upstream.clone(),
            auth: r.auth.clone(),
            scopes: r.scopes.clone().unwrap_or_default(),
            timeout: cx.duration(&at("timeout"), r.timeout.as_ref(), ROUTE_TIMEOUT, false),
            retries,
            max_concurrency: r
                .max_concurrency
                .map(|v| cx.range(&at("max_concurrency"), Some(v.into()), 1, 1, 1_000_000) as u32),
            rate_limit,
            cors,
            websocket: r.websocket.unwrap_or(false),
        });
    }
    cx.clean_since(mark).then_some(out)
}

fn host_match(cx: &mut Cx, path: &str, host: &str) -> Option<HostMatch> {
    let lower = host.to_ascii_lowercase();
    if let Some(rest) = lower.strip_prefix("*.") {
        if valid_dns_name(rest) {
            return Some(HostMatch::Suffix(format!(".{rest}")));
        }
    } else if valid_dns_name(&lower) || lower.parse::<IpAddr>().is_ok() {
        return Some(HostMatch::Exact(lower));
    }
    cx.error(
        path,
        format!("{host:?} is not a host name (without port) or \"*.domain\" wildcard"),
    );
    None
}

/// A route's path: absolute, without query, and already in the normal form requests are
/// routed on (so a route can never name a path no request can have).
fn path_field(cx: &mut Cx, at: &str, p: &str) -> String {
    if !p.starts_with('/') {
        cx.error(at, format!("{p:?} must start with '/'"));
    } else if p.contains(['?', '#']) {
        cx.error(
            at,
            format!("{p:?} must be a path without query or fragment"),
        );
    } else {
        match crate::path::normalize(p, crate::path::EscapedSlashes::Keep) {
            Ok(n) if n != p => cx.error(
                at,
                format!("{p:?} is not in normal form; requests are routed on normalized paths: write {n:?}"),
            ),
            Ok(_) => {}
            Err(e) => cx.error(at, format!("{p:?}: {e}")),
        }
    }
    p.to_owned()
}

fn headers(
    cx: &mut Cx,
    at: &str,
    raw: Option<&BTreeMap<String, String>>,
) -> Vec<(HeaderName, HeaderValue)> {
    let mut out = Vec::new();
    for (name, value) in raw.into_iter().flatten() {
        let n = HeaderName::try_from(name.as_str());
        let v = HeaderValue::try_from(value.as_str());
        match (n, v) {
            (Ok(n), Ok(v)) => out.push((n, v)),
            (Err(_), _) => cx.error(
                format!("{at}.{name}"),
                format!("{name:?} is not a valid header name"),
            ),
            (_, Err(_)) => cx.error(
                format!("{at}.{name}"),
                format!("{value:?} is not a valid header value"),
            ),
        }
    }
    out
}

fn limits(cx: &mut Cx, raw: Option<&raw::Limits>) -> Option<LimitsConfig> {
    use crate::defaults::*;
    let mark = cx.mark();
    let l = raw.cloned().unwrap_or(raw::Limits {
        max_connections: None,
        max_inflight: None,
        max_header_bytes: None,
        max_body_bytes: None,
        header_timeout: None,
        idle_timeout: None,
        park_after: None,
        send_timeout: None,
        body_timeout: None,
    });
    let config = LimitsConfig {
        max_connections: cx.range(
            "limits.max_connections",
            l.max_connections.map(u64::from),
            MAX_CONNECTIONS.into(),
            1,
            10_000_000,
        ) as u32,
        max_inflight: cx.range(
            "limits.max_inflight",
            l.max_inflight.map(u64::from),
            MAX_INFLIGHT.into(),
            1,
            10_000_000,
        ) as u32,
        max_header_bytes: cx.range(
            "limits.max_header_bytes",
            l.max_header_bytes.map(u64::from),
            MAX_HEADER_BYTES.into(),
            8192,
            1 << 24,
        ) as u32,
        max_body_bytes: cx.range(
            "limits.max_body_bytes",
            l.max_body_bytes,
            MAX_BODY_BYTES,
            0,
            1 << 40,
        ),
        header_timeout: cx.duration(
            "limits.header_timeout",
            l.header_timeout.as_ref(),
            HEADER_TIMEOUT,
            false,
        ),
        idle_timeout: cx.duration(
            "limits.idle_timeout",
            l.idle_timeout.as_ref(),
            IDLE_TIMEOUT,
            false,
        ),
        park_after: cx.duration(
            "limits.park_after",
            l.park_after.as_ref(),
            PARK_AFTER,
            false,
        ),
        send_timeout: cx.duration(
            "limits.send_timeout",
            l.send_timeout.as_ref(),
            SEND_TIMEOUT,
            false,
        ),
        body_timeout: cx.duration(
            "limits.body_timeout",
            l.body_timeout.as_ref(),
            BODY_TIMEOUT,
            false,
        ),
    };
    cx.clean_since(mark).then_some(config)
}

fn unused_warnings(cx: &mut Cx, doc: &Document) {
    for (i, u) in doc.upstreams.iter().enumerate() {
        if !doc.routes.iter().any(|r| r.upstream == u.name) {
            cx.warnings.push(format!(
                "upstreams[{i}]: upstream {:?} is not used by any route",
                u.name
            ));
        }
    }
    for (i, p) in doc.auth_providers.iter().enumerate() {
        if !doc
            .routes
            .iter()
            .any(|r| r.auth.as_deref() == Some(p.name()))
        {
            cx.warnings.push(format!(
                "auth_providers[{i}]: provider {:?} is not used by any route",
                p.name()
            ));
        }
    }
}

/// ` (did you mean "users"?)` when a known name is one or two edits away.
fn did_you_mean<'a>(wanted: &str, known: impl Iterator<Item = &'a str>) -> String {
    known
        .map(|k| (edit_distance(wanted, k), k))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, k)| format!(" (did you mean {k:?}?)"))
        .unwrap_or_default()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}
