//! Semantic checks on push, beyond what the model can know: every host a config names must
//! resolve within the config's own resolver deadline, and every auth endpoint must answer.
//!
//! Each check is bounded (`resolver.timeout × attempts` per name, the provider's `timeout` per
//! probe) and they run concurrently, so a push of a config pointing at a black hole fails in about
//! one deadline with the exact reason, instead of hanging or reaching a gateway.

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rampart_model::{AuthProviderConfig, Config, Host};
use rampart_net::{ResolveError, Resolver};

/// One finding: where in the document, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Runs every check; returns the failures (empty when the config is sound).
pub async fn check(config: &Config) -> Vec<Finding> {
    // A resolver of the config's own settings, fresh for each push: nothing is answered from cache.
    let resolver = match Resolver::new(&config.resolver) {
        Ok(r) => r,
        Err(e) => return vec![finding("resolver".into(), e)],
    };
    let servers = match &config.resolver.nameservers {
        Some(list) => list
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        None => "the system resolver".into(),
    };
    let (names, probes) = targets(config);
    let lookups = names
        .into_iter()
        .map(|(path, name)| lookup(&resolver, &servers, path, name));
    let mut findings: Vec<Finding> = futures_util::future::join_all(lookups)
        .await
        .into_iter()
        .flatten()
        .collect();
    // Probe only auth endpoints whose host resolved: a DNS failure is already reported.
    let unresolved: Vec<String> = findings.iter().map(|f| f.path.clone()).collect();
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let probes = probes
        .into_iter()
        .filter(|p| !unresolved.contains(&p.path))
        .map(|p| probe(&client, &resolver, p));
    findings.extend(
        futures_util::future::join_all(probes)
            .await
            .into_iter()
            .flatten(),
    );
    findings.sort_by(|a, b| a.path.cmp(&b.path));
    findings
}

fn finding(path: String, message: String) -> Finding {
    Finding { path, message }
}

/// An auth endpoint to call: where the config names it, its URL, and the provider's deadline.
struct Probe {
    path: String,
    uri: http::Uri,
    timeout: std::time::Duration,
}

/// The host names the config uses (with where), and the auth endpoints to probe.
fn targets(config: &Config) -> (Vec<(String, String)>, Vec<Probe>) {
    let mut names: Vec<(String, String)> = Vec::new();
    for (i, u) in config.upstreams.iter().enumerate() {
        for (j, e) in u.endpoints.iter().enumerate() {
            if let Host::Name(n) = &e.host {
                names.push((format!("upstreams[{i}].endpoints[{j}]"), n.clone()));
            }
        }
    }
    let mut probes = Vec::new();
    for (i, p) in config.auth_providers.iter().enumerate() {
        let (field, uri, timeout) = match p {
            AuthProviderConfig::Introspection(c) => ("endpoint", c.endpoint.clone(), c.timeout),
            AuthProviderConfig::Jwt(c) => ("jwks_url", c.jwks_url.clone(), c.timeout),
            AuthProviderConfig::ApiKey(_) => continue,
        };
        let path = format!("auth_providers[{i}].{field}");
        if let Some(host) = uri.host()
            && host.parse::<std::net::IpAddr>().is_err()
            && !host.starts_with('[')
        {
            names.push((path.clone(), host.to_owned()));
        }
        probes.push(Probe { path, uri, timeout });
    }
    (names, probes)
}

/// A name that does not resolve within the resolver's deadline, as a finding.
async fn lookup(resolver: &Resolver, servers: &str, path: String, name: String) -> Option<Finding> {
    let deadline = resolver.deadline();
    match resolver.lookup(name.as_str()).await {
        Err(ResolveError::Timeout { .. }) => Some(finding(
            path,
            format!("host {name:?} did not resolve within {deadline:?} (asked {servers})"),
        )),
        Err(ResolveError::Failed { reason, .. } | ResolveError::Negative { reason, .. }) => Some(
            finding(path, format!("host {name:?} does not resolve: {reason}")),
        ),
        // Not asked of this lookup: upstreams may well be private.
        Err(e @ ResolveError::NotPublic { .. }) => Some(finding(path, e.to_string())),
        Ok(_) => None,
    }
}

/// Calls an auth endpoint by the address the config's resolver gives: any HTTP answer means
/// something is there (a GET on an introspection endpoint may be 405). For `https` the probe,
/// which speaks plain HTTP, checks that the port accepts connections.
async fn probe(
    client: &Client<HttpConnector, Empty<Bytes>>,
    resolver: &Resolver,
    p: Probe,
) -> Option<Finding> {
    let Probe { path, uri, timeout } = p;
    let host = uri
        .host()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let ip = match host.parse::<std::net::IpAddr>() {
        Ok(ip) => ip,
        Err(_) => match resolver
            .lookup(host.as_str())
            .await
            .ok()
            .and_then(|ips| ips.first().copied())
        {
            Some(ip) => ip,
            None => return Some(finding(path, format!("host {host:?} does not resolve"))),
        },
    };
    if uri.scheme_str() == Some("https") {
        let port = uri.port_u16().unwrap_or(443);
        return match tokio::time::timeout(timeout, tokio::net::TcpStream::connect((ip, port))).await
        {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(finding(path, format!("{uri} refused a connection: {e}"))),
            Err(_) => Some(finding(
                path,
                format!("{uri} did not accept a connection within {timeout:?}"),
            )),
        };
    }
    let port = uri.port_u16().unwrap_or(80);
    let target = format!(
        "http://{}{}",
        std::net::SocketAddr::new(ip, port),
        uri.path()
    );
    let req = match target
        .parse::<http::Uri>()
        .map_err(|e| e.to_string())
        .and_then(|t| {
            http::Request::get(t)
                .header(http::header::HOST, host.as_str())
                .body(Empty::new())
                .map_err(|e| e.to_string())
        }) {
        Ok(r) => r,
        Err(e) => return Some(finding(path, format!("{uri}: {e}"))),
    };
    match tokio::time::timeout(timeout, client.request(req)).await {
        Ok(Ok(_)) => None,
        Ok(Err(e)) => Some(finding(path, format!("{uri} did not answer: {e}"))),
        Err(_) => Some(finding(
            path,
            format!("{uri} did not answer within {timeout:?}"),
        )),
    }
}
