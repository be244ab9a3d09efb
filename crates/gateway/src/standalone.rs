//! Standalone mode: serve a config file; reload it (and reopen the access log) on SIGHUP, reload
//! it when it changes; drain on SIGTERM or Ctrl-C.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rampart_model::Config;

use crate::gateway::{Gateway, Options};

/// How often the config file is checked for changes.
const WATCH_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum StandaloneError {
    #[error("reading config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error(transparent)]
    Apply(#[from] crate::ApplyError),
    #[error("installing signal handler: {0}")]
    Signal(std::io::Error),
}

/// Reads and validates a config file.
pub async fn load_file(path: &Path) -> Result<Config, StandaloneError> {
    let text = tokio::fs::read_to_string(path)
        .await
        .map_err(|source| StandaloneError::Read {
            path: path.to_owned(),
            source,
        })?;
    rampart_model::load(&text).map_err(|e| StandaloneError::Invalid {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

async fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let m = tokio::fs::metadata(path).await.ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// Runs until `shutdown` resolves (or SIGTERM/SIGINT), then drains.
pub async fn run(
    path: PathBuf,
    options: Options,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), StandaloneError> {
    use tokio::signal::unix::{SignalKind, signal};
    let config = load_file(&path).await?;
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    let gateway = Gateway::start(config, options).await?;
    let mut hup = signal(SignalKind::hangup()).map_err(StandaloneError::Signal)?;
    let mut term = signal(SignalKind::terminate()).map_err(StandaloneError::Signal)?;
    let mut int = signal(SignalKind::interrupt()).map_err(StandaloneError::Signal)?;
    let mut last = stamp(&path).await;
    let mut tick = tokio::time::interval(WATCH_INTERVAL);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = hup.recv() => {
                tracing::info!(path = %path.display(), "SIGHUP: reopening the access log, reloading config");
                gateway.reopen_logs();
                reload(&gateway, &path).await;
                last = stamp(&path).await;
            }
            _ = tick.tick() => {
                let now = stamp(&path).await;
                if now.is_some() && now != last {
                    last = now;
                    tracing::info!(path = %path.display(), "config file changed: reloading");
                    reload(&gateway, &path).await;
                }
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = &mut shutdown => break,
        }
    }
    tracing::info!("draining");
    gateway.shutdown().await;
    Ok(())
}

/// Applies the file's config if it is valid and new; otherwise logs why and keeps serving.
pub async fn reload(gateway: &Gateway, path: &Path) {
    match load_file(path).await {
        Ok(config) if Some(config.version()) == gateway.version().as_ref() => {
            tracing::info!("config unchanged");
        }
        Ok(config) => {
            if let Err(e) = gateway.apply(config).await {
                tracing::error!("{e}; still serving the previous config");
            }
        }
        Err(e) => {
            gateway.metrics().reload("rejected");
            tracing::error!("{e}; still serving the previous config");
        }
    }
}
