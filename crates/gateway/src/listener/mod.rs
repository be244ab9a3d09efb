//! Client listeners: accept with a connection limit, TLS with ALPN, HTTP/1.1 and HTTP/2
//! (h2c by prior knowledge) on one port, client-side deadlines on every connection
//! (`client_conn`), graceful drain when stopped.
//!
//! `conn.rs` serves one connection: protocol detection, HTTP/1.1 with idle connections parked,
//! HTTP/2, the deadlines and the drain; `lot.rs` holds parked HTTP/1.1 connections (a socket
//! each, with its TLS session if any, and no task); `park.rs` what a connection leaves there.

mod conn;
mod lot;
mod park;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::{ArcSwap, ArcSwapOption};
use prometheus_client::metrics::gauge::Gauge;
use rampart_model::ListenerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::admission::Permit;
use crate::shared::Shared;
use conn::{Begin, CLOSE_GRACE, Connection, serve_connection};
use lot::Lot;

pub struct RunningListener {
    pub local_addr: SocketAddr,
    /// Swapped on reload so certificate rotation needs no rebind.
    pub tls: Arc<ArcSwapOption<TlsAcceptor>>,
    /// The listener as configured (address as written, before the OS picked a port for `:0`),
    /// swapped on reload: new connections take its trusted proxies and path options.
    settings: Arc<ArcSwap<ListenerConfig>>,
    stop: Arc<watch::Sender<Stop>>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningListener {
    pub async fn bind(
        config: &ListenerConfig,
        tls: Option<TlsAcceptor>,
        shared: Arc<Shared>,
        drain: Duration,
    ) -> Result<RunningListener, String> {
        let listener = TcpListener::bind(config.address)
            .await
            .map_err(|e| format!("listener {}: binding {}: {e}", config.name, config.address))?;
        let local_addr = listener
            .local_addr()
            .map_err(|e| format!("listener {}: {e}", config.name))?;
        let tls = Arc::new(ArcSwapOption::from(tls.map(Arc::new)));
        let settings = Arc::new(ArcSwap::from_pointee(config.clone()));
        let stop = Arc::new(watch::channel(Stop::Run).0);
        let accept = Accept {
            listener,
            tls: tls.clone(),
            settings: settings.clone(),
            shared,
        };
        let task = tokio::spawn(accept.run(stop.clone(), drain));
        tracing::info!(listener = %config.name, address = %local_addr, tls = config.tls.is_some(), "listening");
        Ok(RunningListener {
            local_addr,
            tls,
            settings,
            stop,
            task,
        })
    }

    /// The listener's current config.
    pub fn config(&self) -> Arc<ListenerConfig> {
        self.settings.load_full()
    }

    /// Replaces the config of a listener kept across a reload (same address and TLS or not).
    pub fn reconfigure(&self, config: ListenerConfig) {
        self.settings.store(Arc::new(config));
    }

    /// Stops accepting, lets open connections finish their requests (up to the drain time),
    /// closes the rest, then returns.
    pub async fn stop(self) {
        self.stop.send_replace(Stop::Drain);
        let _ = self.task.await;
    }
}

struct Accept {
    listener: TcpListener,
    tls: Arc<ArcSwapOption<TlsAcceptor>>,
    settings: Arc<ArcSwap<ListenerConfig>>,
    shared: Arc<Shared>,
}

impl Accept {
    async fn run(self, stop: Arc<watch::Sender<Stop>>, drain: Duration) {
        let mut stopping = stop.subscribe();
        let lot = match Lot::new(self.shared.metrics.clone()) {
            Ok((lot, poll)) => {
                tokio::spawn(
                    lot.clone()
                        .run(poll, stop.subscribe(), self.resume(&lot, &stop)),
                );
                Some(lot)
            }
            Err(e) => {
                // Idle connections then keep their protocol state: none is parked.
                tracing::warn!(error = %e, "no parking lot for idle connections");
                None
            }
        };
        loop {
            tokio::select! {
                accepted = self.listener.accept() => {
                    let (stream, remote) = match accepted {
                        Ok(pair) => pair,
                        Err(e) => {
                            // Typically EMFILE: back off briefly instead of spinning.
                            tracing::warn!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        }
                    };
                    self.spawn(stream, remote, stop.subscribe(), lot.as_ref());
                }
                _ = stopping.changed() => break,
            }
        }
        drop(self.listener);
        drop(stopping);
        drop(lot);
        // Every connection holds a receiver: closed() is "all connections are done".
        if tokio::time::timeout(drain, stop.closed()).await.is_err() {
            tracing::warn!(?drain, "drain time over; closing remaining connections");
            stop.send_replace(Stop::Abort);
            let _ = tokio::time::timeout(CLOSE_GRACE, stop.closed()).await;
        }
    }

    fn spawn(
        &self,
        stream: TcpStream,
        remote: SocketAddr,
        stop: watch::Receiver<Stop>,
        lot: Option<&Arc<Lot>>,
    ) {
        let shared = &self.shared;
        let Some(permit) = shared.connections.try_acquire() else {
            shared.metrics.shed("connections");
            drop(stream);
            return;
        };
        shared.metrics.connection_accepted();
        let slot = Slot::new(permit, shared.metrics.connections());
        let connection = Connection {
            remote,
            listener: self.settings.load_full(),
            shared: shared.clone(),
            stop,
        };
        let begin = Begin::Accepted {
            stream,
            acceptor: self.tls.load_full(),
        };
        tokio::spawn(run_connection(connection, begin, slot, lot.cloned()));
    }

    /// What a parked connection becomes when its next request's bytes arrive: a new
    /// connection task, under the listener's current settings.
    fn resume(&self, lot: &Arc<Lot>, stop: &Arc<watch::Sender<Stop>>) -> Box<lot::Resume> {
        let lot = Arc::downgrade(lot);
        let settings = self.settings.clone();
        let shared = self.shared.clone();
        let stop = stop.clone();
        Box::new(move |socket, remote, slot| {
            let connection = Connection {
                remote,
                listener: settings.load_full(),
                shared: shared.clone(),
                stop: stop.subscribe(),
            };
            let begin = Begin::Resumed(socket);
            tokio::spawn(run_connection(connection, begin, slot, lot.upgrade()));
        })
    }
}

/// What a listener tells its connections (and its parking lot).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Run,
    /// Finish the requests in flight, take no new ones.
    Drain,
    /// Close now.
    Abort,
}

/// A connection's place: its permit under `limits.max_connections` and its count in the open
/// connections gauge, held from accept to close, parked or not.
struct Slot {
    _permit: Permit,
    open: Gauge,
}

impl Slot {
    fn new(permit: Permit, open: &Gauge) -> Slot {
        open.inc();
        Slot {
            _permit: permit,
            open: open.clone(),
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.open.dec();
    }
}

/// A connection's task: serves it until it ends, or until it goes idle and is parked in `lot`.
async fn run_connection(connection: Connection, begin: Begin, slot: Slot, lot: Option<Arc<Lot>>) {
    let parked = serve_connection(connection, begin, lot.is_some()).await;
    if let (Some(parked), Some(lot)) = (parked, lot) {
        lot.park(parked, slot);
    }
}
