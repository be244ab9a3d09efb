//! How often the public may write through the page (subscribe, confirm, unsubscribe): a token
//! bucket per client address and one for everyone, refilled per minute. Past either the
//! answer is 429 with `Retry-After`, and nothing is stored or sent.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::ApiError;

/// Client buckets kept at most; past it, full ones are forgotten first.
const MAX_CLIENTS: usize = 10_000;

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(capacity: f64, now: Instant) -> Bucket {
        Bucket {
            tokens: capacity,
            at: now,
        }
    }

    /// Refills at `per_minute`, up to that many.
    fn refill(&mut self, per_minute: f64, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * per_minute / 60.0).min(per_minute);
        self.at = now;
    }

    /// How long until one token is there.
    fn wait(&self, per_minute: f64) -> Duration {
        Duration::from_secs_f64(((1.0 - self.tokens) * 60.0 / per_minute).max(0.0))
            .max(Duration::from_secs(1))
    }
}

pub struct PublicRate {
    per_client: f64,
    global: f64,
    state: Mutex<(Bucket, HashMap<IpAddr, Bucket>)>,
}

impl PublicRate {
    /// `per_client` and `global` writes a minute (and as a burst).
    pub fn new(per_client: u32, global: u32) -> PublicRate {
        let now = Instant::now();
        PublicRate {
            per_client: f64::from(per_client.max(1)),
            global: f64::from(global.max(1)),
            state: Mutex::new((Bucket::full(f64::from(global.max(1)), now), HashMap::new())),
        }
    }

    /// Takes one write for `client`, or says how long to wait.
    pub fn take(&self, client: IpAddr) -> Result<(), Duration> {
        let now = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (global, clients) = &mut *state;
        global.refill(self.global, now);
        if clients.len() >= MAX_CLIENTS && !clients.contains_key(&client) {
            let per_client = self.per_client;
            clients.retain(|_, b| {
                b.refill(per_client, now);
                b.tokens < per_client
            });
        }
        let mine = clients
            .entry(client)
            .or_insert_with(|| Bucket::full(self.per_client, now));
        mine.refill(self.per_client, now);
        if mine.tokens < 1.0 {
            return Err(mine.wait(self.per_client));
        }
        if global.tokens < 1.0 {
            return Err(global.wait(self.global));
        }
        mine.tokens -= 1.0;
        global.tokens -= 1.0;
        Ok(())
    }
}

/// A public write, admitted by the rate limits (taken before the form is read).
pub struct PublicWrite;

/// The answer past a limit: 429, `Retry-After`, and the one error shape.
pub struct RateLimited(Duration);

impl IntoResponse for RateLimited {
    fn into_response(self) -> Response {
        let secs = self.0.as_secs().max(1);
        let error = ApiError(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("too many requests from here or in all; try again in {secs} s"),
        );
        let mut resp = error.into_response();
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        resp
    }
}

impl FromRequestParts<Arc<AppState>> for PublicWrite {
    type Rejection = RateLimited;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, RateLimited> {
        let client = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |ConnectInfo(a)| a.ip());
        state
            .public_rate
            .take(client)
            .map(|()| PublicWrite)
            .map_err(RateLimited)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_gets_its_share_and_everyone_the_global_one() {
        let rate = PublicRate::new(3, 5);
        let (a, b, c): (IpAddr, IpAddr, IpAddr) = (
            "10.0.0.1".parse().expect("ip"),
            "10.0.0.2".parse().expect("ip"),
            "10.0.0.3".parse().expect("ip"),
        );
        for _ in 0..3 {
            assert!(rate.take(a).is_ok());
        }
        let wait = rate.take(a).expect_err("a fourth from one client");
        assert!(
            wait >= Duration::from_secs(1) && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
        assert!(rate.take(b).is_ok());
        assert!(rate.take(b).is_ok());
        // Five taken in all: the global bucket is empty for everyone.
        assert!(rate.take(c).is_err());
    }
}
