//! The access log: one line per request, written by a thread of its own.
//!
//! When a request's response ends, its [`Entry`] is formatted into a shared buffer (a short
//! lock, no syscall) and the request goes on; the writer thread takes the buffer whole and
//! writes it when the buffer passes 256 KiB or half its `buffer` lines (the request that
//! passes either wakes the writer, once per turn) or 50 ms after its last turn, whichever
//! comes first. A writer woken by a timer every few milliseconds cost, in a virtual machine,
//! half a percent of a core with no traffic at all. Formatting where the request ends spreads
//! the work evenly instead of in bursts on the writer. When the buffer already holds `buffer`
//! lines (a slow disk, a blocked pipe) the line is dropped and counted
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
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::Thread;
use std::time::{Duration, Instant, SystemTime};

use http::uri::PathAndQuery;
use http::{HeaderValue, Method, Version};
use prometheus_client::metrics::counter::Counter;
use rampart_model::{AccessLogConfig, ListenerConfig, LogTarget};

use crate::metrics::Metrics;
use crate::route::RouteState;
use crate::upstream::endpoint::Endpoint;

/// The longest the writer waits between turns (how late a line may reach the file).
const MAX_WAIT: Duration = Duration::from_millis(50);
/// Buffered bytes past which the request that adds them wakes the writer.
const WAKE_AT: usize = 256 * 1024;

/// What one request leaves in the access log. Names are shared handles (a reference count,
/// no copy); the writer reads them when it formats the line.
pub struct Entry {
    /// When the request began (its wall-clock time is read from the writer's clock when the
    /// line is formatted: no clock call on the request's path for it).
    pub started: Instant,
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
    /// The client's address as text (formatted once per connection).
    pub client_text: HeaderValue,
    /// Why the gateway answered itself (an error code: `overloaded`, `upstream_timeout`,
    /// `rate_limited`…); none when the upstream answered.
    pub reason: Option<&'static str>,
}

/// A running access log; cheap to clone. The writer thread ends when the last clone is gone
/// (after writing what was buffered): it holds the one reference left then.
#[derive(Clone)]
pub struct AccessLog {
    inner: Arc<Inner>,
}

struct Inner {
    config: AccessLogConfig,
    pending: Mutex<Buffered>,
    /// The writer thread, to wake.
    writer: OnceLock<Thread>,
    reopen: AtomicBool,
    dropped_full: Counter,
}

/// Formatted lines waiting for the writer.
struct Buffered {
    bytes: Vec<u8>,
    lines: u64,
    /// Whether a request has woken the writer since its last turn.
    woken: bool,
    format: format::Format,
    clock: Clock,
}

/// The wall clock read together with the monotonic one, by the writer at each turn: a line's
/// time is this plus how long before or after it the request began. Between two turns (50 ms
/// at most) the two clocks cannot drift apart by anything a log line shows.
#[derive(Clone, Copy)]
struct Clock {
    wall: SystemTime,
    mono: Instant,
}

impl Clock {
    fn now() -> Clock {
        Clock {
            wall: SystemTime::now(),
            mono: Instant::now(),
        }
    }

    fn at(&self, t: Instant) -> SystemTime {
        match t.checked_duration_since(self.mono) {
            Some(after) => self.wall + after,
            None => self.wall - self.mono.duration_since(t),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("access log {path}: {source}")]
pub struct OpenError {
    path: String,
    source: io::Error,
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, Buffered> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wake_writer(&self) {
        if let Some(t) = self.writer.get() {
            t.unpark();
        }
    }
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
        let inner = Arc::new(Inner {
            config: config.clone(),
            pending: Mutex::new(Buffered {
                bytes: Vec::with_capacity(64 * 1024),
                lines: 0,
                woken: false,
                format: format::Format::new(config),
                clock: Clock::now(),
            }),
            reopen: AtomicBool::new(false),
            dropped_full: metrics.access_log_dropped("buffer_full"),
            writer: OnceLock::new(),
        });
        let writer = Writer {
            inner: inner.clone(),
            sink,
            target: config.target.clone(),
            write_errors: metrics.access_log_dropped("write_error"),
            written: metrics.access_log_written(),
        };
        let thread = std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || writer.run())
            .map_err(|source| OpenError {
                path: display(&config.target),
                source,
            })?;
        let _ = inner.writer.set(thread.thread().clone());
        Ok(AccessLog { inner })
    }

    pub fn config(&self) -> &AccessLogConfig {
        &self.inner.config
    }

    /// Adds a line for the writer; never waits on it. A full buffer drops the line and
    /// counts it.
    pub fn log(&self, entry: &Entry) {
        let mut pending = self.inner.lock();
        if pending.lines >= self.inner.config.buffer as u64 {
            drop(pending);
            self.inner.dropped_full.inc();
            return;
        }
        let Buffered {
            bytes,
            lines,
            woken,
            format,
            clock,
        } = &mut *pending;
        let time = clock.at(entry.started);
        format.line(entry, time, bytes);
        *lines += 1;
        // Past 256 KiB, or half the lines the buffer may hold (a small `buffer` would
        // otherwise fill between two of the writer's 50 ms turns).
        let wake =
            (bytes.len() >= WAKE_AT || *lines * 2 >= self.inner.config.buffer as u64) && !*woken;
        *woken |= wake;
        drop(pending);
        if wake {
            self.inner.wake_writer();
        }
    }

    /// The writer opens the path again before its next write (after log rotation).
    pub fn reopen(&self) {
        self.inner.reopen.store(true, Ordering::Release);
        self.inner.wake_writer();
    }
}

impl Drop for AccessLog {
    fn drop(&mut self) {
        // The last handle but the writer's: the writer writes what is left and ends soon
        // (at once, or at its next turn if it looked before this handle was gone).
        if Arc::strong_count(&self.inner) == 2 {
            self.inner.wake_writer();
        }
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
    /// The writer's own reference: when it is the only one left, the log is gone.
    inner: Arc<Inner>,
    /// None until a FIFO has been opened.
    sink: Option<Sink>,
    target: LogTarget,
    write_errors: Counter,
    written: Counter,
}

impl Writer {
    // At each turn the writer takes the buffer whole (swapping in an empty one) and writes it;
    // then it waits MAX_WAIT or until a request (or a reopen, or the log's end) wakes it.
    fn run(mut self) {
        if self.sink.is_none() {
            self.inner.reopen.store(true, Ordering::Release);
            self.reopen_if_asked();
        }
        let mut spare = Vec::with_capacity(64 * 1024);
        loop {
            let closed = Arc::strong_count(&self.inner) == 1;
            let lines = {
                let mut pending = self.inner.lock();
                pending.clock = Clock::now();
                pending.woken = false;
                std::mem::swap(&mut pending.bytes, &mut spare);
                std::mem::take(&mut pending.lines)
            };
            self.reopen_if_asked();
            if lines > 0 {
                self.write(&spare, lines);
            }
            spare.clear();
            if closed {
                return;
            }
            std::thread::park_timeout(MAX_WAIT);
        }
    }

    fn write(&mut self, buf: &[u8], lines: u64) {
        let written = match self.sink.as_mut() {
            Some(sink) => sink.write_all(buf),
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

    fn reopen_if_asked(&mut self) {
        if !self.inner.reopen.swap(false, Ordering::AcqRel) {
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
    /// Bytes of the request body read so far (the request body counts into it); made only
    /// for a request that has a body.
    bytes_in: Option<Arc<AtomicU64>>,
    pub entry: Option<Entry>,
}

impl Pending {
    pub fn new(log: &AccessLog, entry: Entry) -> Pending {
        Pending {
            log: log.clone(),
            bytes_in: None,
            entry: Some(entry),
        }
    }

    /// The counter the request body adds its bytes to.
    pub fn count_bytes_in(&mut self) -> Arc<AtomicU64> {
        self.bytes_in.get_or_insert_with(Arc::default).clone()
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
        // Logged where it lies (moving the entry out would copy it).
        if let Some(entry) = self.entry.as_mut() {
            entry.duration = entry.started.elapsed();
            entry.bytes_in = self
                .bytes_in
                .as_ref()
                .map_or(0, |b| b.load(Ordering::Relaxed));
            self.log.log(entry);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_model::{LogField, LogFormat};

    fn entry(status: u16) -> Entry {
        Entry {
            started: Instant::now(),
            request_id: HeaderValue::from_static("r-1"),
            trace_id: None,
            listener: Arc::new(ListenerConfig {
                name: "public".into(),
                address: ([127, 0, 0, 1], 0).into(),
                tls: None,
                trusted_proxies: Vec::new(),
                escaped_slashes: Default::default(),
            }),
            route: None,
            endpoint: None,
            method: Method::GET,
            version: Version::HTTP_11,
            path: None,
            status,
            bytes_in: 0,
            bytes_out: 0,
            duration_headers: Duration::ZERO,
            duration: Duration::ZERO,
            auth_subject: None,
            client: [127, 0, 0, 1].into(),
            client_text: HeaderValue::from_static("127.0.0.1"),
            reason: None,
        }
    }

    #[test]
    #[allow(clippy::disallowed_methods)] // a test's own thread
    fn the_last_handle_gone_the_writer_writes_every_line_left_and_ends() {
        let path = std::env::temp_dir().join(format!("rampart-log-{}.json", fastrand::u64(..)));
        let config = AccessLogConfig {
            target: LogTarget::File(path.clone()),
            format: LogFormat::Json,
            fields: vec![LogField::Status],
            buffer: 100_000,
        };
        let log = AccessLog::start(&config, &Metrics::new()).expect("start");
        let weak = Arc::downgrade(&log.inner);
        // More than the writer is woken for (256 KiB), and a tail it is not.
        for i in 0..30_000 {
            log.log(&entry(200 + (i % 300) as u16));
        }
        drop(log);
        let deadline = Instant::now() + Duration::from_secs(5);
        while weak.strong_count() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(weak.strong_count(), 0, "the writer ended");
        let text = std::fs::read_to_string(&path).expect("the log");
        let _ = std::fs::remove_file(&path);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 30_000);
        assert_eq!(lines[0], r#"{"status":200}"#);
        assert_eq!(lines[29_999], r#"{"status":499}"#);
    }

    #[test]
    fn a_lines_time_is_the_writers_clock_moved_by_the_monotonic_difference() {
        let clock = Clock::now();
        let later = clock.mono + Duration::from_millis(1500);
        assert_eq!(clock.at(later), clock.wall + Duration::from_millis(1500));
        if let Some(earlier) = clock.mono.checked_sub(Duration::from_millis(250)) {
            assert_eq!(clock.at(earlier), clock.wall - Duration::from_millis(250));
        }
        assert_eq!(clock.at(clock.mono), clock.wall);
    }
}
