//! The rampart control plane: versioned, immutable configs; environments in a pipeline that
//! production cannot skip; rollback that nothing blocks; the fleet of agents.
//!
//! Owns: the store (SQLite), the pipeline rule, the agent protocol's server side, the HTTP API.
//! Must not: be needed by a gateway to keep serving (gateways fail static on their own
//! last-known-good).
#![forbid(unsafe_code)]

pub mod agents;
pub mod alerting;
pub mod component_book;
pub mod control_plane;
pub mod convergence;
pub mod error;
pub mod fleet;
pub mod http;
pub mod listener;
pub mod notify;
pub mod postmortem;
pub mod prometheus;
pub mod release;
pub mod replica;
pub mod restart;
pub mod rollout_picture;
pub mod semantic;
pub mod service;
pub mod sli;
pub mod slo;
pub mod status;
pub mod status_page;
pub mod store;
pub mod tokens;

pub use control_plane::ControlPlane;
pub use error::ControlError;
pub use service::Settings;

/// A control plane serving in the background (tests, benches, `rampart up`).
pub struct Running {
    pub addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops abruptly, as a crash would: the serving task is aborted, connections included.
    pub async fn kill(mut self) {
        self.stop.take();
        self.task.abort();
        let _ = self.task.await;
    }

    /// Stops accepting and lets requests in flight finish.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let _ = self.task.await;
    }
}

/// Opens the store in `data` and serves the API on `addr` (port 0 picks one) in the background.
pub async fn spawn(
    data: &std::path::Path,
    environments: &[String],
    tokens: tokens::Tokens,
    addr: std::net::SocketAddr,
) -> Result<Running, String> {
    spawn_with(data, environments, tokens, addr, |c| c).await
}

/// Like [`spawn`], with the settings adjusted first (rollout plan, tick, page name).
pub async fn spawn_with(
    data: &std::path::Path,
    environments: &[String],
    tokens: tokens::Tokens,
    addr: std::net::SocketAddr,
    configure: impl FnOnce(Settings) -> Settings,
) -> Result<Running, String> {
    let control = ControlPlane::open_with(data, environments, configure(Settings::default()))
        .await
        .map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("binding {addr}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let shutdown = async move {
            let _ = stopped.await;
        };
        if let Err(e) = serve(listener, std::sync::Arc::new(control), tokens, shutdown).await {
            tracing::error!(error = %e, "control plane stopped");
        }
    });
    Ok(Running {
        addr,
        stop: Some(stop),
        task,
    })
}

/// Where the control plane listens.
pub struct Listeners {
    /// Everything: the API, the agent protocol and the status page (HTTPS when `tls` is set).
    pub api: tokio::net::TcpListener,
    /// Only the public status page (page, JSON, feeds, subscription forms), so the API can
    /// stay on a private address.
    pub public: Option<tokio::net::TcpListener>,
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

impl Listeners {
    /// Where the status page is served: the public listener when there is one, else the API's
    /// (over HTTPS when it has TLS).
    pub fn page_url(&self) -> Option<String> {
        let (listener, scheme) = match (&self.public, &self.tls) {
            (Some(public), _) => (public, "http"),
            (None, Some(_)) => (&self.api, "https"),
            (None, None) => (&self.api, "http"),
        };
        let addr = listener.local_addr().ok()?;
        Some(format!("{scheme}://{addr}"))
    }
}

/// Serves the API on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    control: std::sync::Arc<ControlPlane>,
    tokens: tokens::Tokens,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listeners = Listeners {
        api: listener,
        public: None,
        tls: None,
    };
    serve_on(listeners, control, tokens, shutdown).await
}

/// Serves on every listener given until `shutdown` resolves.
pub async fn serve_on(
    listeners: Listeners,
    control: std::sync::Arc<ControlPlane>,
    tokens: tokens::Tokens,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Some(url) = listeners.page_url() {
        control.page().set_public_url(&url);
    }
    let Listeners {
        api: listener,
        public,
        tls,
    } = listeners;
    let limits = control.limits();
    let leading = Leading::start(control, tokens).await?;
    let apps = Apps {
        api: leading.api.clone(),
        public: leading.public.clone(),
    };
    // The background tasks stop when `leading` drops, after the listeners have returned.
    let served = serve_apps(listener, public, tls, apps, limits, None, shutdown).await;
    drop(leading);
    served
}

/// What a leading control plane runs: its routers and its background loops (the reconciler,
/// alert evaluation, the outbox), which stop when this is dropped.
pub struct Leading {
    /// The whole API, the agent protocol and the status page.
    pub api: axum::Router,
    /// Only the public status page.
    pub public: axum::Router,
    _background: [Background; 3],
}

impl Leading {
    /// Starts the background loops of `control` and builds its routers.
    pub async fn start(
        control: std::sync::Arc<ControlPlane>,
        tokens: tokens::Tokens,
    ) -> std::io::Result<Leading> {
        // Tokens created through the API, and revocations, count from the first request.
        tokens
            .load_stored(control.store())
            .await
            .map_err(|e| std::io::Error::other(format!("reading stored tokens: {e}")))?;
        // The reconciler drives releases every tick while the API serves.
        let reconciler = {
            let control = control.clone();
            Background(tokio::spawn(async move {
                let mut tick = tokio::time::interval(control.tick());
                loop {
                    // Every tick, and at once when a release starts or is moved on.
                    tokio::select! {
                        _ = tick.tick() => {}
                        _ = control.releases.woken() => {}
                    }
                    if let Err(e) = control.reconcile().await {
                        tracing::error!(error = %e, "reconciling releases");
                    }
                }
            }))
        };
        // Alerts and incidents are evaluated every second; the outbox delivers notifications.
        let evaluator = {
            let control = control.clone();
            Background(tokio::spawn(async move {
                let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
                loop {
                    tick.tick().await;
                    if let Err(e) = control.evaluate().await {
                        tracing::error!(error = %e, "evaluating alerts");
                    }
                }
            }))
        };
        let outbox = Background(tokio::spawn(
            control.notifier().run(control.resolver().clone()),
        ));
        let limits = control.limits();
        let public_rate = http::public_rate::PublicRate::new(
            limits.public_writes_per_client,
            limits.public_writes,
        );
        let state = std::sync::Arc::new(http::AppState {
            admission: http::admission::AgentAdmission::new(&limits),
            control,
            tokens,
            public_rate,
        });
        Ok(Leading {
            api: http::router(state.clone()),
            public: http::public_router(state),
            _background: [reconciler, evaluator, outbox],
        })
    }
}

/// The routers the listeners serve.
pub struct Apps {
    pub api: axum::Router,
    pub public: axum::Router,
}

/// Serves `apps` on the listeners until `shutdown` resolves; connections from `peers` (other
/// replicas forwarding their clients' requests) are not held to the per-client cap.
pub async fn serve_apps(
    listener: tokio::net::TcpListener,
    public: Option<tokio::net::TcpListener>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    apps: Apps,
    limits: listener::Limits,
    peers: Option<listener::Peers>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Both listeners stop when `shutdown` resolves.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let stopping = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let _signal = Background(tokio::spawn(async move {
        shutdown.await;
        let _ = stop.send(true);
    }));
    let page = async {
        match public {
            Some(public) => {
                listener::serve(
                    public,
                    apps.public,
                    limits,
                    None,
                    peers.clone(),
                    stopping(stopped.clone()),
                )
                .await
            }
            None => Ok(()),
        }
    };
    let api = listener::serve(
        listener,
        apps.api,
        limits,
        tls,
        peers.clone(),
        stopping(stopped.clone()),
    );
    let (api, page) = tokio::join!(api, page);
    api.and(page)
}

/// A background task of `serve`, stopped when `serve` ends — returning, or dropped (a killed
/// control plane leaves nothing running behind it).
pub(crate) struct Background(pub(crate) tokio::task::JoinHandle<()>);

impl Drop for Background {
    fn drop(&mut self) {
        self.0.abort();
    }
}
