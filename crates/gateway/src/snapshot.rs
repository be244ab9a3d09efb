//! A config snapshot: the compiled, ready-to-serve form of one [`Config`].
//!
//! Requests load the current snapshot once (wait-free, `arc-swap`) and use it to the end, so a
//! reload never changes the rules under a request in flight. Building a snapshot from the
//! previous one keeps what did not change: the resolver, upstream pools with their
//! connections and health verdicts, and per-route limits and retry budgets.

use std::collections::HashMap;
use std::sync::Arc;

use rampart_model::{Config, RouteConfig};

use crate::admission::Limit;
use crate::auth::Provider;
use crate::metrics::{Metrics, RouteMetrics};
use crate::retry::RetryBudget;
use crate::router::Router;
use crate::upstream::Upstream;
use rampart_net::Resolver;

pub struct RouteState {
    pub config: RouteConfig,
    pub auth: Option<Arc<Provider>>,
    pub upstream: Arc<Upstream>,
    pub limit: Arc<Limit>,
    pub budget: Arc<RetryBudget>,
    pub metrics: RouteMetrics,
}

pub struct Snapshot {
    pub config: Arc<Config>,
    pub router: Router<RouteState>,
    pub routes: HashMap<String, Arc<RouteState>>,
    pub upstreams: HashMap<String, Arc<Upstream>>,
    pub providers: HashMap<String, Arc<Provider>>,
    pub resolver: Resolver,
    /// Metrics for requests that matched no route.
    pub unmatched: RouteMetrics,
}

impl Snapshot {
    pub fn build(
        config: Arc<Config>,
        previous: Option<&Snapshot>,
        metrics: &Metrics,
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
                _ => Upstream::new(u, &resolver, metrics, old.map(|o| o.as_ref()))?,
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
        let mut routes = HashMap::new();
        let mut table = Vec::new();
        for r in &config.routes {
            let upstream = upstreams
                .get(&r.upstream)
                .cloned()
                .ok_or_else(|| format!("route {}: no upstream {}", r.name, r.upstream))?;
            let max = r.max_concurrency.unwrap_or(u32::MAX);
            let (limit, budget) = match previous.and_then(|p| p.routes.get(&r.name)) {
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
            config,
        })
    }
}
