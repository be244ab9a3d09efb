//! Semantic checks on push, beyond what the model can know: every host a config names must
//! resolve within the config's own resolver deadline, and every auth endpoint must answer.
//!
//! Each check is bounded (`resolver.timeout × attempts` per name, the provider's `timeout` per
//! probe) and they run concurrently, so a push of a config pointing at a black hole fails in about
//! one deadline with the exact reason, instead of hanging or reaching a gateway.

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
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
        Err(e) => {
            return vec![Finding {
                path: "resolver".into(),
                message: e,
            }];
        }
    };
    let deadline = resolver.deadline();
    let servers = match &config.resolver.nameservers {
        Some(list) => list
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        None => "the system resolver".into(),
    };
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
        probes.push((path, uri, timeout));
    }
    let lookups = names.into_iter().map(|(path, name)| {
        let resolver = resolver.clone();
        let servers = servers.clone();
        async move {
            match resolver.lookup(name.as_str()).await {
                Err(ResolveError::Timeout { .. }) => Some(Finding {
                    path,
                    message: format!(
                        "host {name:?} did not resolve within {deadline:?} (asked {servers})"
                    ),
                }),
                Err(
                    ResolveError::Failed { reason, .. } | ResolveError::Negative { reason, .. },
                ) => Some(Finding {
                    path,
                    message: format!("host {name:?} does not resolve: {reason}"),
                }),
                Ok(_) => None,
            }
        }
    });
    let mut findings: Vec<Finding> = futures_util::future::join_all(lookups)
        .await
        .into_iter()
        .flatten()
        .collect();
    // Probe only auth endpoints whose host resolved: a DNS failure is already reported.
    let unresolved: Vec<String> = findings.iter().map(|f| f.path.clone()).collect();
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let checks = probes
        .into_iter()
        .filter(|(p, _, _)| !unresolved.contains(p))
        .map(|(path, uri, timeout)| {
            let client = client.clone();
            let resolver = resolver.clone();
            async move {
                // Connect by the resolved address, so the probe uses the config's resolver.
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
                        None => {
                            return Some(Finding {
                                path,
                                message: format!("host {host:?} does not resolve"),
                            });
                        }
                    },
                };
                if uri.scheme_str() == Some("https") {
                    // The probe speaks plain HTTP; for https it checks that the port accepts connections.
                    let port = uri.port_u16().unwrap_or(443);
                    return match tokio::time::timeout(
                        timeout,
                        tokio::net::TcpStream::connect((ip, port)),
                    )
                    .await
                    {
                        Ok(Ok(_)) => None,
                        Ok(Err(e)) => Some(Finding {
                            path,
                            message: format!("{uri} refused a connection: {e}"),
                        }),
                        Err(_) => Some(Finding {
                            path,
                            message: format!(
                                "{uri} did not accept a connection within {timeout:?}"
                            ),
                        }),
                    };
                }
                let port = uri.port_u16().unwrap_or(80);
                let target: http::Uri = match format!(
                    "http://{}{}",
                    std::net::SocketAddr::new(ip, port),
                    uri.path()
                )
                .parse()
                {
                    Ok(u) => u,
                    Err(e) => {
                        return Some(Finding {
                            path,
                            message: format!("{uri}: {e}"),
                        });
                    }
                };
                let req = match http::Request::get(target)
                    .header(http::header::HOST, host.as_str())
                    .body(Empty::new())
                {
                    Ok(r) => r,
                    Err(e) => {
                        return Some(Finding {
                            path,
                            message: e.to_string(),
                        });
                    }
                };
                match tokio::time::timeout(timeout, client.request(req)).await {
                    // Any HTTP answer means something is there; a GET on an introspection endpoint may be 405.
                    Ok(Ok(_)) => None,
                    Ok(Err(e)) => Some(Finding {
                        path,
                        message: format!("{uri} did not answer: {e}"),
                    }),
                    Err(_) => Some(Finding {
                        path,
                        message: format!("{uri} did not answer within {timeout:?}"),
                    }),
                }
            }
        });
    findings.extend(
        futures_util::future::join_all(checks)
            .await
            .into_iter()
            .flatten(),
    );
    findings.sort_by(|a, b| a.path.cmp(&b.path));
    findings
}
