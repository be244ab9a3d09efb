//! The access log: one line per request, written by a thread of its own.
//!
//! A request hands its [`Entry`] to a bounded queue and goes on; the writer thread formats and
//! writes. When the queue is full (a slow disk, a blocked pipe) the line is dropped and counted
//! (`rampart_access_log_dropped_total{reason="buffer_full"}`); a failed write (a full disk) is
//! counted too (`reason="write_error"`), and the writer keeps going. So a request never waits
//! for the log, whatever happens to the file. `reopen()` (SIGHUP) makes the writer open the
//! path again before its next write: logrotate moves the file, signals, and the next lines land
//! in a new one.

mod format;

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, SystemTime};

use http::uri::PathAndQuery;
use http::{HeaderValue, Method, Version};
use prometheus_client::metrics::counter::Counter;
use rampart_model::{AccessLogConfig, ListenerConfig, LogTarget};

use crate::metrics::Metrics;
use crate::route::RouteState;
use crate::upstream::endpoint::Endpoint;

/// How long an idle writer waits before it looks at a reopen request again.
const IDLE_CHECK: Duration = Duration::from_secs(1);
/// Most lines written in one batch before a flush.
const BATCH: usize = 256;

/// What one request leaves in the access log. Names are shared handles (a reference count,
/// no copy); the writer reads them when it formats the line.
pub struct Entry {
    pub time: SystemTime,
    pub request_id: HeaderValue,
    pub trace_id: Option<[u8; 16]>,
    pub listener: Arc<ListenerConfig>,
    pub route: Option<Arc<RouteState>>,
    pub endpoint: Option<Arc<Endpoint>>,
    pub method: Method,
    pub version: Version,
    pub path: Option<PathAndQuery>,
    pub status: u16,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub duration_headers: Duration,
    pub duration: Duration,
    pub auth_subject: Option<String>,
    pub client: IpAddr,
    /// Why the gateway answered itself (an error code: `overloaded`, `upstream_timeout`,
    /// `rate_limited`…); none when the upstream answered.
    pub reason: Option<&'static str>,
}

/// A running access log; cheap to clone. The writer thread ends when the last clone is gone
/// (after writing what was queued).
#[derive(Clone)]
pub struct AccessLog {
    inner: Arc<Inner>,
}

struct Inner {
    config: AccessLogConfig,
    tx: SyncSender<Entry>,
    reopen: Arc<AtomicBool>,
    dropped_full: Counter,
}

#[derive(Debug, thiserror::Error)]
#[error("access log {path}: {source}")]
pub struct OpenError {
    path: String,
    source: io::Error,
}

impl AccessLog {
    /// Opens the file (so a path that cannot be written fails the config's apply) and starts
    /// the writer.
    pub fn start(config: &AccessLogConfig, metrics: &Metrics) -> Result<AccessLog, OpenError> {
        // Opening a FIFO waits for its reader: the writer thread does that, never `apply`.
        let sink = match &config.target {
            LogTarget::File(path) if is_fifo(path) => None,
            target => Some(Sink::open(target)?),
        };
        let (tx, rx) = std::sync::mpsc::sync_channel(config.buffer);
        let reopen = Arc::new(AtomicBool::new(false));
        let writer = Writer {
            rx,
            sink,
            target: config.target.clone(),
            reopen: reopen.clone(),
            format: format::Format::new(config),
            write_errors: metrics.access_log_dropped("write_error"),
            written: metrics.access_log_written(),
        };
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || writer.run())
            .map_err(|source| OpenError {
                path: display(&config.target),
                source,
            })?;
        Ok(AccessLog {
            inner: Arc::new(Inner {
                config: config.clone(),
                tx,
                reopen,
                dropped_full: metrics.access_log_dropped("buffer_full"),
            }),
        })
    }

    pub fn config(&self) -> &AccessLogConfig {
        &self.inner.config
    }

    /// Queues a line; never waits. A full queue drops the line and counts it.
    pub fn log(&self, entry: Entry) {
        match self.inner.tx.try_send(entry) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.inner.dropped_full.inc();
            }
        }
    }

    /// The writer opens the path again before its next write (after log rotation).
    pub fn reopen(&self) {
        self.inner.reopen.store(true, Ordering::Release);
    }
}

fn display(target: &LogTarget) -> String {
    match target {
        LogTarget::Stdout => "stdout".into(),
        LogTarget::File(p) => p.display().to_string(),
    }
}

enum Sink {
    Stdout(io::Stdout),
    File(File),
}

impl Sink {
    fn open(target: &LogTarget) -> Result<Sink, OpenError> {
        match target {
            LogTarget::Stdout => Ok(Sink::Stdout(io::stdout())),
            LogTarget::File(path) => open_file(path).map(Sink::File).map_err(|source| OpenError {
                path: path.display().to_string(),
                source,
            }),
        }
    }

    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Sink::Stdout(s) => {
                let mut lock = s.lock();
                lock.write_all(bytes)?;
                lock.flush()
            }
            Sink::File(f) => f.write_all(bytes),
        }
    }
}

fn open_file(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

fn is_fifo(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(path).is_ok_and(|m| m.file_type().is_fifo())
}

struct Writer {
    rx: Receiver<Entry>,
    /// None until a FIFO has been opened.
    sink: Option<Sink>,
    target: LogTarget,
    reopen: Arc<AtomicBool>,
    format: format::Format,
    write_errors: Counter,
    written: Counter,
}

impl Writer {
    fn run(mut self) {
        if self.sink.is_none() {
            self.reopen.store(true, Ordering::Release);
            self.reopen_if_asked();
        }
        let mut buf = Vec::with_capacity(64 * 1024);
        loop {
            let first = match self.rx.recv_timeout(IDLE_CHECK) {
                Ok(entry) => entry,
                Err(RecvTimeoutError::Timeout) => {
                    self.reopen_if_asked();
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => return,
            };
            buf.clear();
            self.format.line(&first, &mut buf);
            let mut lines: u64 = 1;
            while lines < BATCH as u64 {
                let Ok(entry) = self.rx.try_recv() else { break };
                self.format.line(&entry, &mut buf);
                lines += 1;
            }
            self.reopen_if_asked();
            let written = match self.sink.as_mut() {
                Some(sink) => sink.write_all(&buf),
                None => Err(io::Error::new(io::ErrorKind::NotFound, "not open")),
            };
            match written {
                Ok(()) => {
                    self.written.inc_by(lines);
                }
                Err(e) => {
                    self.write_errors.inc_by(lines);
                    tracing::debug!(error = %e, lines, "access log write failed");
                }
            }
        }
    }

    fn reopen_if_asked(&mut self) {
        if !self.reopen.swap(false, Ordering::AcqRel) {
            return;
        }
        if let LogTarget::File(path) = &self.target {
            match open_file(path) {
                Ok(file) => self.sink = Some(Sink::File(file)),
                // Keep writing to the file already open rather than lose lines.
                Err(e) => tracing::warn!(path = %PathBuf::from(path).display(), error = %e,
                    "access log: could not reopen; still writing to the file already open"),
            }
        }
    }
}

/// A request's line while it is being served: filled in along the way, sent when the response
/// body ends or is dropped (so `bytes_out` and `duration` are the whole exchange's).
pub struct Pending {
    log: AccessLog,
    started: std::time::Instant,
    /// Bytes of the request body read so far (the request body counts into it).
    pub bytes_in: Arc<AtomicU64>,
    pub entry: Option<Entry>,
}

impl Pending {
    pub fn new(log: &AccessLog, started: std::time::Instant, entry: Entry) -> Pending {
        Pending {
            log: log.clone(),
            started,
            bytes_in: Arc::default(),
            entry: Some(entry),
        }
    }

    pub fn entry(&mut self) -> Option<&mut Entry> {
        self.entry.as_mut()
    }

    /// Response body bytes sent.
    pub fn sent(&mut self, bytes: usize) {
        if let Some(e) = self.entry.as_mut() {
            e.bytes_out += bytes as u64;
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(mut entry) = self.entry.take() {
            entry.duration = self.started.elapsed();
            entry.bytes_in = self.bytes_in.load(Ordering::Relaxed);
            self.log.log(entry);
        }
    }
}
