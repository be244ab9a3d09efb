//! A route as requests use it: its compiled config with everything it holds across reloads
//! (limits, retry budget, rate limiter) and what it calls (auth provider, upstream pool).

use std::sync::Arc;

use rampart_model::RouteConfig;

use crate::admission::Limit;
use crate::auth::Provider;
use crate::metrics::RouteMetrics;
use crate::rate_limit::RouteLimiter;
use crate::retry::RetryBudget;
use crate::upstream::Upstream;

pub struct RouteState {
    pub config: RouteConfig,
    pub auth: Option<Arc<Provider>>,
    pub upstream: Arc<Upstream>,
    pub limit: Arc<Limit>,
    pub budget: Arc<RetryBudget>,
    pub metrics: RouteMetrics,
    pub rate_limit: Option<Arc<RouteLimiter>>,
}
