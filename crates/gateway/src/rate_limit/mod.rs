//! Per-route rate limits: a local GCRA bucket per key on every gateway, and optionally the
//! same bucket shared by all gateways through Redis (with the local one as the floor).
//!
//! Answers carry the IETF headers (draft-ietf-httpapi-ratelimit-headers):
//! `RateLimit-Policy: "ROUTE";q=COUNT;w=SECONDS` (the rate as configured) and
//! `RateLimit: "ROUTE";r=REMAINING;t=SECONDS` (what is left now, and when the bucket is full
//! again); a refused request gets 429 with `Retry-After`.

pub mod global;
pub mod local;

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderValue};
use prometheus_client::metrics::counter::Counter;
use rampart_model::{OnUnavailable, RateLimitConfig, RateLimitKey};
use sha2::{Digest, Sha256};

use self::global::GlobalStore;
use self::local::{Bucket, Gcra, LocalLimiter};
use crate::metrics::Metrics;

pub static RATELIMIT_POLICY: http::HeaderName = http::HeaderName::from_static("ratelimit-policy");
pub static RATELIMIT: http::HeaderName = http::HeaderName::from_static("ratelimit");

/// The verdict on one request.
#[derive(Debug)]
pub enum Verdict {
    /// Let it through; these headers go on its response.
    Allowed(HeaderValue),
    /// 429 after `retry_after` seconds.
    Limited {
        retry_after: u64,
        state: HeaderValue,
    },
    /// The shared counters did not answer and the route says `on_unavailable: deny`.
    Unavailable,
}

pub struct RouteLimiter {
    pub config: RateLimitConfig,
    route: String,
    gcra: Gcra,
    local: LocalLimiter,
    global: Option<Arc<GlobalStore>>,
    policy: HeaderValue,
    limited_local: Counter,
    limited_global: Counter,
}

impl RouteLimiter {
    pub fn new(
        route: &str,
        config: &RateLimitConfig,
        global: Option<Arc<GlobalStore>>,
        metrics: &Metrics,
    ) -> RouteLimiter {
        let gcra = Gcra {
            interval: (config.interval().as_nanos() as u64).max(1),
            capacity: u64::from(config.burst.max(1)),
        };
        let policy = HeaderValue::from_str(&format!(
            "\"{route}\";q={};w={}",
            config.count,
            config.period.as_secs()
        ))
        .unwrap_or_else(|_| HeaderValue::from_static("\"route\""));
        RouteLimiter {
            config: config.clone(),
            route: route.to_owned(),
            gcra,
            local: LocalLimiter::new(gcra, config.max_keys),
            global: global.filter(|_| config.global),
            policy,
            limited_local: metrics.rate_limited(route, "local"),
            limited_global: metrics.rate_limited(route, "global"),
        }
    }

    /// `RateLimit-Policy` for this route's answers.
    pub fn policy(&self) -> &HeaderValue {
        &self.policy
    }

    /// Whether the key is read after authentication (the subject).
    pub fn after_auth(&self) -> bool {
        self.config.key == RateLimitKey::AuthSubject
    }

    /// The key of a request; requests without one share the empty key.
    pub fn key<'a>(
        &self,
        headers: &'a HeaderMap,
        client: std::net::IpAddr,
        subject: Option<&'a str>,
    ) -> std::borrow::Cow<'a, [u8]> {
        use std::borrow::Cow;
        match &self.config.key {
            RateLimitKey::ClientIp => Cow::Owned(match client {
                std::net::IpAddr::V4(v4) => v4.octets().to_vec(),
                std::net::IpAddr::V6(v6) => v6.octets().to_vec(),
            }),
            RateLimitKey::AuthSubject => Cow::Borrowed(subject.unwrap_or_default().as_bytes()),
            RateLimitKey::ApiKey(h) | RateLimitKey::Header(h) => {
                Cow::Borrowed(headers.get(h).map_or(&[][..], HeaderValue::as_bytes))
            }
        }
    }

    pub async fn check(&self, key: &[u8]) -> Verdict {
        let local = self.local.check(key);
        if let Bucket::Limited { .. } = local {
            self.limited_local.inc();
            return self.limited(local);
        }
        let Some(global) = &self.global else {
            return self.allowed(local);
        };
        match global
            .check(
                &self.redis_key(key),
                self.config.interval(),
                self.gcra.capacity,
            )
            .await
        {
            Ok(b @ Bucket::Allowed { .. }) => self.allowed(b),
            Ok(b @ Bucket::Limited { .. }) => {
                self.limited_global.inc();
                self.limited(b)
            }
            Err(_) => match self.config.on_unavailable {
                OnUnavailable::Allow => self.allowed(local),
                OnUnavailable::Deny => Verdict::Unavailable,
            },
        }
    }

    /// The key in Redis: the route and a digest of the client's key (API keys and subjects
    /// are not written to Redis as they are).
    fn redis_key(&self, key: &[u8]) -> String {
        let digest = Sha256::digest(key);
        let prefix = self
            .global
            .as_ref()
            .map_or("rampart", |g| g.config.key_prefix.as_str());
        format!(
            "{prefix}:ratelimit:{}:{}",
            self.route,
            hex::encode(digest.get(..16).unwrap_or_default())
        )
    }

    fn allowed(&self, bucket: Bucket) -> Verdict {
        let (remaining, full_in) = match bucket {
            Bucket::Allowed { remaining, full_in } => (remaining, full_in),
            Bucket::Limited { retry_in } => (0, retry_in),
        };
        Verdict::Allowed(self.state(remaining, full_in))
    }

    fn limited(&self, bucket: Bucket) -> Verdict {
        let retry_in = match bucket {
            Bucket::Limited { retry_in } => retry_in,
            Bucket::Allowed { .. } => Duration::ZERO,
        };
        Verdict::Limited {
            retry_after: ceil_secs(retry_in).max(1),
            state: self.state(0, retry_in),
        }
    }

    fn state(&self, remaining: u64, reset: Duration) -> HeaderValue {
        HeaderValue::from_str(&format!(
            "\"{}\";r={remaining};t={}",
            self.route,
            ceil_secs(reset)
        ))
        .unwrap_or_else(|_| HeaderValue::from_static("\"route\""))
    }
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}
