//! A running gateway: shared state, listeners and the admin server, and `apply()` — the one
//! path by which a config takes effect, at start (the diff from nothing) and on every reload.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use rampart_model::{Config, VersionId};
use tokio::sync::Mutex;

use crate::admin::AdminServer;
use crate::admission::Limit;
use crate::listener::RunningListener;
use crate::metrics::Metrics;
use crate::shared::Shared;
use crate::snapshot::Snapshot;
use crate::tls;

/// Process-level settings that are not part of the config document.
#[derive(Debug, Clone)]
pub struct Options {
    /// `--listen NAME=ADDR`: replaces the address of the named listener.
    pub listen: Vec<(String, SocketAddr)>,
    /// `--admin ADDR`: replaces the admin address.
    pub admin: Option<SocketAddr>,
    /// How long stopping listeners wait for open requests.
    pub drain: Duration,
    /// The secret this process's synthetic probes carry (the agent sets it).
    pub probe_secret: Option<std::sync::Arc<str>>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            listen: Vec::new(),
            admin: None,
            drain: Duration::from_secs(30),
            probe_secret: None,
        }
    }
}

/// Why a config was not applied. Nothing changed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("config {version} rejected: {reason}")]
pub struct ApplyError {
    pub version: VersionId,
    pub reason: String,
}

pub struct Gateway {
    shared: Arc<Shared>,
    listeners: Mutex<Vec<RunningListener>>,
    admin: std::sync::Mutex<Option<AdminServer>>,
    options: Options,
}

impl Gateway {
    /// Starts the admin server (if an address is known) and applies the first config.
    pub async fn start(config: Config, options: Options) -> Result<Gateway, ApplyError> {
        rampart_net::install_crypto_provider();
        let shared = Arc::new(Shared {
            snapshot: ArcSwapOption::empty(),
            metrics: Metrics::new(),
            global: Limit::new(config.limits.max_inflight),
            connections: Limit::new(config.limits.max_connections),
            ready: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            started: std::time::Instant::now(),
            probe_secret: options
                .probe_secret
                .as_deref()
                .and_then(|s| http::HeaderValue::from_str(s).ok()),
        });
        let gateway = Gateway {
            shared,
            listeners: Mutex::new(Vec::new()),
            admin: std::sync::Mutex::new(None),
            options,
        };
        if let Some(addr) = gateway.options.admin.or(config.admin) {
            let admin =
                AdminServer::start(addr, gateway.shared.clone()).map_err(|reason| ApplyError {
                    version: config.version().clone(),
                    reason,
                })?;
            *gateway.admin_slot() = Some(admin);
        }
        gateway.apply(config).await?;
        gateway.shared.ready.store(true, Ordering::Release);
        Ok(gateway)
    }

    fn admin_slot(&self) -> std::sync::MutexGuard<'_, Option<AdminServer>> {
        self.admin.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies a config: builds the new snapshot, binds new listeners, swaps, then drains
    /// listeners that are gone. On any error nothing has changed and the old config keeps serving.
    pub async fn apply(&self, mut config: Config) -> Result<(), ApplyError> {
        let version = config.version().clone();
        let reject = |reason: String| {
            self.shared.metrics.reload("rejected");
            ApplyError {
                version: version.clone(),
                reason,
            }
        };
        config
            .override_addresses(&self.options.listen, self.options.admin)
            .map_err(&reject)?;
        let config = Arc::new(config);
        let mut running = self.listeners.lock().await;
        let previous = self.shared.snapshot.load_full();
        let upstream_tls = tls::upstream_dials(&config).await.map_err(&reject)?;
        let snapshot = Snapshot::build(
            config.clone(),
            previous.as_deref(),
            &self.shared.metrics,
            &upstream_tls,
        )
        .map_err(&reject)?;

        // TLS material is read for every TLS listener, so a reload rotates certificates.
        let mut acceptors = Vec::new();
        for l in &config.listeners {
            acceptors.push(match &l.tls {
                Some(files) => Some(tls::acceptor(files).await.map_err(&reject)?),
                None => None,
            });
        }
        let mut kept = Vec::new();
        let mut started = Vec::new();
        let mut old: Vec<RunningListener> = std::mem::take(&mut *running);
        for (l, acceptor) in config.listeners.iter().zip(acceptors) {
            if let Some(pos) = old.iter().position(|r| {
                let c = r.config();
                c.address == l.address && c.tls.is_some() == l.tls.is_some()
            }) {
                let r = old.remove(pos);
                kept.push((r, acceptor, l.clone()));
                continue;
            }
            match RunningListener::bind(l, acceptor, self.shared.clone(), self.options.drain).await
            {
                Ok(r) => started.push(r),
                Err(reason) => {
                    // Undo: stop what this apply started, keep everything as it was.
                    for r in started {
                        r.stop().await;
                    }
                    old.extend(kept.into_iter().map(|(r, _, _)| r));
                    *running = old;
                    return Err(reject(reason));
                }
            }
        }
        // Commit.
        self.shared.global.set_max(config.limits.max_inflight);
        self.shared
            .connections
            .set_max(config.limits.max_connections);
        self.shared.snapshot.store(Some(Arc::new(snapshot)));
        for (r, acceptor, l) in kept {
            r.tls.store(acceptor.map(Arc::new));
            r.reconfigure(l);
            running.push(r);
        }
        running.extend(started);
        drop(running);
        for r in old {
            tokio::spawn(r.stop());
        }
        if let Some(admin) = self.admin_slot().as_ref()
            && config
                .admin
                .is_some_and(|a| a != admin.local_addr && a.port() != 0)
        {
            tracing::warn!(current = %admin.local_addr, "admin address changes take effect at the next restart");
        }
        self.shared.metrics.config_applied(version.as_str());
        tracing::info!(version = %version.short(), "config applied");
        Ok(())
    }

    /// The address a listener is bound to (useful with port 0).
    pub async fn listener_addr(&self, name: &str) -> Option<SocketAddr> {
        self.listeners
            .lock()
            .await
            .iter()
            .find(|l| l.config().name == name)
            .map(|l| l.local_addr)
    }

    /// Where this gateway's own probes go: the first listener without TLS, on loopback when it
    /// listens on every address.
    pub async fn plain_listener_addr(&self) -> Option<SocketAddr> {
        let listeners = self.listeners.lock().await;
        let l = listeners.iter().find(|l| l.tls.load().is_none())?;
        let mut addr = l.local_addr;
        if addr.ip().is_unspecified() {
            addr.set_ip(match addr {
                SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        Some(addr)
    }

    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_slot().as_ref().map(|a| a.local_addr)
    }

    /// The version being served.
    pub fn version(&self) -> Option<VersionId> {
        self.shared
            .snapshot
            .load()
            .as_ref()
            .map(|s| s.config.version().clone())
    }

    /// Has the access log open its file again before the next line (after log rotation).
    pub fn reopen_logs(&self) {
        if let Some(log) = self
            .shared
            .snapshot
            .load()
            .as_ref()
            .and_then(|s| s.access_log.as_ref())
        {
            log.reopen();
        }
    }

    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// Graceful shutdown: not ready, stop accepting, let requests in flight finish (up to the
    /// drain time), then stop the admin server.
    /// Says "draining" on `/readyz` (so load balancers stop sending new requests) while still
    /// serving; `shutdown` then drains what is in flight.
    pub fn begin_drain(&self) {
        self.shared.draining.store(true, Ordering::Release);
    }

    pub async fn shutdown(self) {
        self.shared.draining.store(true, Ordering::Release);
        let listeners = std::mem::take(&mut *self.listeners.lock().await);
        futures_util::future::join_all(listeners.into_iter().map(RunningListener::stop)).await;
        let admin = self.admin_slot().take();
        if let Some(admin) = admin {
            // Joining the admin thread is short: it exits as soon as it sees the stop signal.
            let _ = tokio::task::spawn_blocking(move || drop(admin)).await;
        }
    }
}
