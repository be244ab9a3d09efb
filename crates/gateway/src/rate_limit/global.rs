//! Global limits: the same GCRA bucket, kept in Redis so every gateway counts against one
//! quota. One script does the read, the decision and the write atomically, on Redis's clock.
//!
//! Redis is an external call on the request path, so everything about it is bounded: the
//! address is resolved through the gateway's resolver (never the system's), connecting and
//! each exchange run under `redis.timeout`, one connection is shared by all requests
//! (multiplexed), only one request at a time tries to connect (the others do not wait), and
//! after a failure Redis is left alone for a second: requests in that second are answered
//! by `on_unavailable` at once instead of each waiting out the deadline.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use rampart_model::{Host, RedisConfig};
use rampart_net::Resolver;
use redis::aio::MultiplexedConnection;

use super::local::Bucket;
use crate::clock;
use crate::metrics::Metrics;

/// How long Redis is left alone after a failure.
const BACKOFF: Duration = Duration::from_secs(1);

/// KEYS[1]: the bucket; ARGV[1]: interval (µs); ARGV[2]: capacity.
/// Returns {allowed (1|0), remaining, microseconds (full in | retry in)}.
const SCRIPT: &str = r"
local now = redis.call('TIME')
local now_us = tonumber(now[1]) * 1000000 + tonumber(now[2])
local interval = tonumber(ARGV[1])
local window = interval * tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now_us)
if tat < now_us then tat = now_us end
local ahead = tat + interval - now_us
if ahead > window then
  return {0, 0, ahead - window}
end
redis.call('SET', KEYS[1], tat + interval, 'PX', math.floor(ahead / 1000) + 1)
return {1, math.floor((window - ahead) / interval), ahead}
";

/// Why Redis did not decide.
#[derive(Debug, thiserror::Error)]
pub enum Unavailable {
    #[error("left alone after a recent failure")]
    Backoff,
    #[error("another request is connecting")]
    Connecting,
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Failed(String),
}

struct Connection {
    conn: MultiplexedConnection,
    driver: tokio::task::JoinHandle<()>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

pub struct GlobalStore {
    pub config: RedisConfig,
    resolver: Resolver,
    script: redis::Script,
    conn: Mutex<Option<Connection>>,
    connecting: tokio::sync::Mutex<()>,
    /// Until when (clock ms) Redis is left alone; 0: not.
    backoff_until: AtomicU64,
    outcomes: Outcomes,
}

struct Outcomes {
    ok: Counter,
    failed: Counter,
    skipped: Counter,
}

impl GlobalStore {
    pub fn new(config: &RedisConfig, resolver: &Resolver, metrics: &Metrics) -> GlobalStore {
        GlobalStore {
            config: config.clone(),
            resolver: resolver.clone(),
            script: redis::Script::new(SCRIPT),
            conn: Mutex::new(None),
            connecting: tokio::sync::Mutex::new(()),
            backoff_until: AtomicU64::new(0),
            outcomes: Outcomes {
                ok: metrics.rate_limit_store("ok"),
                failed: metrics.rate_limit_store("failed"),
                skipped: metrics.rate_limit_store("skipped"),
            },
        }
    }

    /// Decides one request against the shared bucket `key`, within `redis.timeout`.
    pub async fn check(
        &self,
        key: &str,
        interval: Duration,
        capacity: u64,
    ) -> Result<Bucket, Unavailable> {
        if clock::now_ms() < self.backoff_until.load(Ordering::Relaxed) {
            self.outcomes.skipped.inc();
            return Err(Unavailable::Backoff);
        }
        let timeout = self.config.timeout;
        let result =
            match tokio::time::timeout(timeout, self.exchange(key, interval, capacity)).await {
                Ok(r) => r,
                Err(_) => Err(Unavailable::Timeout(timeout)),
            };
        match &result {
            Ok(_) => {
                self.outcomes.ok.inc();
            }
            Err(Unavailable::Connecting) => {
                self.outcomes.skipped.inc();
            }
            Err(e) => {
                self.outcomes.failed.inc();
                tracing::debug!(error = %e, "rate-limit store unavailable");
                // A connection that failed or hung is not used again.
                self.slot().take();
                self.backoff_until
                    .store(clock::now_ms() + clock::ms(BACKOFF), Ordering::Relaxed);
            }
        }
        result
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<Connection>> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn exchange(
        &self,
        key: &str,
        interval: Duration,
        capacity: u64,
    ) -> Result<Bucket, Unavailable> {
        let existing = self.slot().as_ref().map(|c| c.conn.clone());
        let mut conn = match existing {
            Some(c) => c,
            None => self.connect().await?,
        };
        let interval_us = (interval.as_micros() as u64).max(1);
        let answer: (i64, i64, i64) = self
            .script
            .key(key)
            .arg(interval_us)
            .arg(capacity)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| Unavailable::Failed(e.to_string()))?;
        let micros = Duration::from_micros(u64::try_from(answer.2).unwrap_or(0));
        Ok(if answer.0 == 1 {
            Bucket::Allowed {
                remaining: u64::try_from(answer.1).unwrap_or(0),
                full_in: micros,
            }
        } else {
            Bucket::Limited { retry_in: micros }
        })
    }

    /// One request connects; the others are told so at once rather than queue behind it.
    async fn connect(&self) -> Result<MultiplexedConnection, Unavailable> {
        let Ok(_connecting) = self.connecting.try_lock() else {
            return Err(Unavailable::Connecting);
        };
        let endpoint = &self.config.endpoint;
        let ip = match &endpoint.host {
            Host::Ip(ip) => *ip,
            Host::Name(name) => *self
                .resolver
                .lookup(name)
                .await
                .map_err(|e| Unavailable::Failed(e.to_string()))?
                .first()
                .ok_or_else(|| Unavailable::Failed(format!("{name}: no address")))?,
        };
        let stream = tokio::net::TcpStream::connect(SocketAddr::new(ip, endpoint.port))
            .await
            .map_err(|e| Unavailable::Failed(format!("connecting: {e}")))?;
        let _ = stream.set_nodelay(true);
        let info = redis::RedisConnectionInfo::default();
        let (conn, driver) = MultiplexedConnection::new_with_config(
            &info,
            stream,
            redis::AsyncConnectionConfig::default(),
        )
        .await
        .map_err(|e| Unavailable::Failed(e.to_string()))?;
        let driver = tokio::spawn(driver);
        *self.slot() = Some(Connection {
            conn: conn.clone(),
            driver,
        });
        Ok(conn)
    }
}
