//! Non-blocking DNS with deadlines, caching and serve-stale.
//!
//! Every lookup is bounded by `timeout × attempts` (plus a small margin) through
//! `tokio::time::timeout`, whatever the resolver library does inside. Answers are cached up to
//! `cache_ttl`; failures are cached for `negative_ttl`, so a black-holed name costs one deadline
//! per `negative_ttl`, not one per request; when a refresh fails, an expired answer younger than
//! `serve_stale` is served instead.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfig, ResolverConfig as HickoryConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hyper_util::client::legacy::connect::dns::Name;
use rampart_model::ResolverConfig;

/// What one lookup came to, for whoever counts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnsOutcome {
    CacheHit,
    NegativeHit,
    Resolved,
    StaleServed,
    Timeout,
    Error,
}

impl DnsOutcome {
    /// The outcome's name as metrics label it.
    pub fn as_str(self) -> &'static str {
        match self {
            DnsOutcome::CacheHit => "cache_hit",
            DnsOutcome::NegativeHit => "negative_hit",
            DnsOutcome::Resolved => "resolved",
            DnsOutcome::StaleServed => "stale_served",
            DnsOutcome::Timeout => "timeout",
            DnsOutcome::Error => "error",
        }
    }
}

/// Told the outcome of every lookup; the gateway counts them in its metrics.
pub type DnsObserver = Arc<dyn Fn(DnsOutcome) + Send + Sync>;

/// Most names kept in the cache; beyond it the oldest entries are dropped.
const CACHE_CAPACITY: usize = 4096;
/// Added to `timeout × attempts` for the overall deadline of one lookup.
const DEADLINE_MARGIN: Duration = Duration::from_millis(50);

#[derive(Debug, Clone, thiserror::Error)]
pub enum ResolveError {
    #[error("DNS lookup of {name} timed out after {after:?}")]
    Timeout { name: String, after: Duration },
    #[error("DNS lookup of {name} failed: {reason}")]
    Failed { name: String, reason: String },
    #[error("DNS lookup of {name} failed recently (cached negative answer): {reason}")]
    Negative { name: String, reason: String },
    #[error("{name} resolves only to addresses that are not public ({})", addresses.join(", "))]
    NotPublic {
        name: String,
        addresses: Vec<String>,
    },
}

struct Entry {
    result: Result<Vec<IpAddr>, String>,
    fetched: Instant,
}

/// A shared resolver; cheap to clone.
#[derive(Clone)]
pub struct Resolver {
    inner: Arc<Inner>,
    /// As a connector's resolver: hand out only public addresses (see [`Resolver::public_only`]).
    public_only: bool,
}

struct Inner {
    hickory: TokioResolver,
    config: ResolverConfig,
    cache: Mutex<HashMap<String, Entry>>,
    observe: Option<DnsObserver>,
}

impl Resolver {
    /// A resolver whose lookups nobody counts.
    pub fn new(config: &ResolverConfig) -> Result<Resolver, String> {
        Resolver::build(config, None)
    }

    /// A resolver that tells `observe` the outcome of every lookup.
    pub fn observed(config: &ResolverConfig, observe: DnsObserver) -> Result<Resolver, String> {
        Resolver::build(config, Some(observe))
    }

    fn build(config: &ResolverConfig, observe: Option<DnsObserver>) -> Result<Resolver, String> {
        let mut opts = ResolverOpts::default();
        opts.timeout = config.timeout;
        opts.attempts = config.attempts as usize;
        // Our own cache decides freshness; keep hickory's from holding answers longer.
        opts.positive_max_ttl = Some(config.cache_ttl);
        opts.negative_max_ttl = Some(config.negative_ttl);
        let builder = match &config.nameservers {
            Some(servers) => {
                let name_servers = servers
                    .iter()
                    .map(|addr| {
                        let mut ns = NameServerConfig::udp_and_tcp(addr.ip());
                        for c in &mut ns.connections {
                            c.port = addr.port();
                        }
                        ns
                    })
                    .collect();
                TokioResolver::builder_with_config(
                    HickoryConfig::from_name_servers(name_servers),
                    TokioRuntimeProvider::default(),
                )
            }
            None => TokioResolver::builder_tokio()
                .map_err(|e| format!("reading system DNS configuration: {e}"))?,
        };
        let hickory = builder
            .with_options(opts)
            .build()
            .map_err(|e| format!("building DNS resolver: {e}"))?;
        Ok(Resolver {
            inner: Arc::new(Inner {
                hickory,
                config: config.clone(),
                cache: Mutex::new(HashMap::new()),
                observe,
            }),
            public_only: false,
        })
    }

    /// The same resolver (cache included) that, as an HTTP connector's resolver, hands out only
    /// public addresses: a name that resolves to nothing else fails, so a client built on it
    /// never connects to loopback, private or link-local addresses however the name is answered
    /// (the check is on the very addresses it connects to). IP literals in URLs bypass any
    /// resolver: check those with [`crate::is_public`] first.
    pub fn public_only(&self) -> Resolver {
        Resolver {
            inner: self.inner.clone(),
            public_only: true,
        }
    }

    /// The addresses of `name` that are public; an error if it has none.
    pub async fn lookup_public(&self, name: &str) -> Result<Vec<IpAddr>, ResolveError> {
        let all = self.lookup(name).await?;
        let public: Vec<IpAddr> = all
            .iter()
            .copied()
            .filter(|ip| crate::is_public(*ip))
            .collect();
        if public.is_empty() {
            return Err(ResolveError::NotPublic {
                name: name.to_owned(),
                addresses: all.iter().map(ToString::to_string).collect(),
            });
        }
        Ok(public)
    }

    /// The overall deadline of one lookup.
    pub fn deadline(&self) -> Duration {
        self.inner.config.timeout * self.inner.config.attempts + DEADLINE_MARGIN
    }

    /// Resolves a name to addresses, from cache when fresh; never waits past [`Self::deadline`].
    pub async fn lookup(&self, name: &str) -> Result<Vec<IpAddr>, ResolveError> {
        if let Ok(ip) = name.parse::<IpAddr>() {
            return Ok(vec![ip]);
        }
        let cfg = &self.inner.config;
        let stale = {
            let cache = self.cache();
            match cache.get(name) {
                Some(Entry {
                    result: Ok(ips),
                    fetched,
                }) if fetched.elapsed() < cfg.cache_ttl => {
                    self.observe(DnsOutcome::CacheHit);
                    return Ok(ips.clone());
                }
                Some(Entry {
                    result: Err(reason),
                    fetched,
                }) if fetched.elapsed() < cfg.negative_ttl => {
                    self.observe(DnsOutcome::NegativeHit);
                    return Err(ResolveError::Negative {
                        name: name.into(),
                        reason: reason.clone(),
                    });
                }
                Some(Entry {
                    result: Ok(ips),
                    fetched,
                }) if fetched.elapsed() < cfg.cache_ttl + cfg.serve_stale => Some(ips.clone()),
                _ => None,
            }
        };
        let deadline = self.deadline();
        let outcome = match tokio::time::timeout(deadline, self.inner.hickory.lookup_ip(name)).await
        {
            Err(_) => Err(ResolveError::Timeout {
                name: name.into(),
                after: deadline,
            }),
            Ok(Err(e)) => Err(ResolveError::Failed {
                name: name.into(),
                reason: e.to_string(),
            }),
            Ok(Ok(lookup)) => {
                let ips: Vec<IpAddr> = lookup.iter().collect();
                if ips.is_empty() {
                    Err(ResolveError::Failed {
                        name: name.into(),
                        reason: "no addresses".into(),
                    })
                } else {
                    Ok(ips)
                }
            }
        };
        match outcome {
            Ok(ips) => {
                self.observe(DnsOutcome::Resolved);
                self.store(name, Ok(ips.clone()));
                Ok(ips)
            }
            Err(e) => {
                if let Some(ips) = stale {
                    self.observe(DnsOutcome::StaleServed);
                    return Ok(ips);
                }
                self.observe(if matches!(e, ResolveError::Timeout { .. }) {
                    DnsOutcome::Timeout
                } else {
                    DnsOutcome::Error
                });
                self.store(name, Err(e.to_string()));
                Err(e)
            }
        }
    }

    fn observe(&self, outcome: DnsOutcome) {
        if let Some(observe) = &self.inner.observe {
            observe(outcome);
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // A panic while holding this lock cannot leave the map inconsistent; keep using it.
        self.inner.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn store(&self, name: &str, result: Result<Vec<IpAddr>, String>) {
        let mut cache = self.cache();
        if cache.len() >= CACHE_CAPACITY && !cache.contains_key(name) {
            let oldest = cache
                .iter()
                .min_by_key(|(_, e)| e.fetched)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                cache.remove(&k);
            }
        }
        cache.insert(
            name.to_owned(),
            Entry {
                result,
                fetched: Instant::now(),
            },
        );
    }
}

/// The resolver as hyper-util's connector wants it.
impl tower_service::Service<Name> for Resolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = ResolveError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, ResolveError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ResolveError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let ips = if this.public_only {
                this.lookup_public(name.as_str()).await?
            } else {
                this.lookup(name.as_str()).await?
            };
            Ok(ips
                .into_iter()
                .map(|ip| SocketAddr::new(ip, 0))
                .collect::<Vec<_>>()
                .into_iter())
        })
    }
}
