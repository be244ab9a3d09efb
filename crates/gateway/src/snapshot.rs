//! A config snapshot: the compiled, ready-to-serve form of one [`Config`].
//!
//! Requests load the current snapshot once (wait-free, `arc-swap`) and use it to the end, so a
//! reload never changes the rules under a request in flight. Building a snapshot from the
//! previous one keeps what did not change: the resolver, upstream pools with their
//! connections and health verdicts, and per-route limits and retry budgets.

use std::collections::HashMap;
use std::sync::Arc;

use rampart_model::Config;

use crate::access_log::AccessLog;
use crate::admission::Limit;
use crate::auth::Provider;
use crate::metrics::{Metrics, RouteMetrics};
use crate::rate_limit::RouteLimiter;
use crate::rate_limit::global::GlobalStore;
use crate::retry::RetryBudget;
pub use crate::route::RouteState;
use crate::router::Router;
use crate::trace::Tracer;
use crate::upstream::Upstream;
use crate::upstream::dial::TlsDial;
use rampart_net::Resolver;

pub struct Snapshot {
    pub config: Arc<Config>,
    pub router: Router<RouteState>,
    pub routes: HashMap<String, Arc<RouteState>>,
    pub upstreams: HashMap<String, Arc<Upstream>>,
    pub providers: HashMap<String, Arc<Provider>>,
    pub resolver: Resolver,
    /// Metrics for requests that matched no route.
    pub unmatched: RouteMetrics,
    pub access_log: Option<AccessLog>,
    /// The Redis of global rate limits.
    pub redis: Option<Arc<GlobalStore>>,
    pub tracer: Option<Tracer>,
}

impl Snapshot {
    /// `tls`: the TLS settings of each upstream that has them (their CA files read by the
    /// caller).
    pub fn build(
        config: Arc<Config>,
        previous: Option<&Snapshot>,
        metrics: &Metrics,
        tls: &HashMap<String, Arc<TlsDial>>,
    ) -> Result<Snapshot, String> {
        let resolver = match previous {
            Some(p) if p.config.resolver == config.resolver => p.resolver.clone(),
            _ => Resolver::observed(&config.resolver, metrics.dns_observer())?,
        };
        let same_resolver = previous.is_some_and(|p| p.config.resolver == config.resolver);
        let mut upstreams = HashMap::new();
        for u in &config.upstreams {
            let old = previous.and_then(|p| p.upstreams.get(&u.name));
            let pool = match old {
                Some(old) if same_resolver && old.config == *u => old.clone(),
                _ => Upstream::new(
                    u,
                    &resolver,
                    metrics,
                    old.map(|o| o.as_ref()),
                    tls.get(&u.name).cloned(),
                )?,
            };
            upstreams.insert(u.name.clone(), pool);
        }
        let mut providers = HashMap::new();
        for p in &config.auth_providers {
            let old = previous.and_then(|prev| prev.providers.get(p.name()));
            let provider = match old {
                // Same settings and resolver: keep its caches and key set.
                Some(old) if same_resolver && old.config == *p => old.clone(),
                _ => Provider::new(p, &resolver, metrics)?,
            };
            providers.insert(p.name().to_owned(), provider);
        }
        // The same log settings keep the same writer (and its open file).
        let access_log = match (
            &config.access_log,
            previous.and_then(|p| p.access_log.as_ref()),
        ) {
            (None, _) => None,
            (Some(c), Some(old)) if old.config() == c => Some(old.clone()),
            (Some(c), _) => Some(AccessLog::start(c, metrics).map_err(|e| e.to_string())?),
        };
        let redis = match (&config.redis, previous.and_then(|p| p.redis.as_ref())) {
            (None, _) => None,
            (Some(c), Some(old)) if same_resolver && old.config == *c => Some(old.clone()),
            (Some(c), _) => Some(Arc::new(GlobalStore::new(c, &resolver, metrics))),
        };
        let tracer = match (&config.tracing, previous.and_then(|p| p.tracer.as_ref())) {
            (None, _) => None,
            (Some(c), Some(old)) if same_resolver && old.config() == c => Some(old.clone()),
            (Some(c), _) => Some(Tracer::start(c, &resolver, metrics)),
        };
        let mut routes = HashMap::new();
        let mut table = Vec::new();
        for r in &config.routes {
            let upstream = upstreams
                .get(&r.upstream)
                .cloned()
                .ok_or_else(|| format!("route {}: no upstream {}", r.name, r.upstream))?;
            let max = r.max_concurrency.unwrap_or(u32::MAX);
            let old_route = previous.and_then(|p| p.routes.get(&r.name));
            // The same limit over the same store keeps its buckets.
            let rate_limit = match (&r.rate_limit, old_route.and_then(|o| o.rate_limit.as_ref())) {
                (None, _) => None,
                (Some(c), Some(old))
                    if old.config == *c
                        && previous.and_then(|p| p.redis.as_ref()).map(Arc::as_ptr)
                            == redis.as_ref().map(Arc::as_ptr) =>
                {
                    Some(old.clone())
                }
                (Some(c), _) => Some(Arc::new(RouteLimiter::new(
                    &r.name,
                    c,
                    redis.clone(),
                    metrics,
                ))),
            };
            let (limit, budget) = match old_route {
                Some(old) => {
                    old.limit.set_max(max);
                    old.budget.set_percent(r.retries.budget_percent);
                    (old.limit.clone(), old.budget.clone())
                }
                None => (
                    Limit::new(max),
                    Arc::new(RetryBudget::new(r.retries.budget_percent)),
                ),
            };
            let auth = match &r.auth {
                Some(name) => Some(
                    providers
                        .get(name)
                        .cloned()
                        .ok_or_else(|| format!("route {}: no auth provider {name}", r.name))?,
                ),
                None => None,
            };
            let state = Arc::new(RouteState {
                config: r.clone(),
                auth,
                upstream,
                limit,
                budget,
                metrics: metrics.route(&r.name),
                rate_limit,
            });
            routes.insert(r.name.clone(), state.clone());
            table.push((r.clone(), state));
        }
        Ok(Snapshot {
            router: Router::new(table),
            routes,
            upstreams,
            providers,
            resolver,
            unmatched: metrics.route("no_route"),
            access_log,
            redis,
            tracer,
            config,
        })
    }
}
