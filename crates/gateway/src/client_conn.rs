//! The client side's deadlines on one connection: no client holds a slot without making
//! progress.
//!
//! A [`Watchdog`] runs beside the protocol in the connection's task and ends the connection
//! when one of these expires (the limits are `limits.*` of the config):
//! - `header_timeout`: from accept to the first complete request head (TLS handshake and
//!   protocol detection included), and on HTTP/1.1 from the first byte of each later head;
//! - `idle_timeout`: no request in flight (closed gracefully: HTTP/2 gets a GOAWAY);
//! - `send_timeout`: a response has a frame the client has not taken for this long (a client
//!   that stops reading, or an HTTP/2 stream whose window stays at zero).
//!
//! State flows in through [`ConnState`]: the I/O wrapper ([`Watched`]) notes when bytes arrive,
//! each request holds an [`InflightToken`], and each response body ([`ClientBody`]) says since
//! when it has had something to give that the protocol has not asked for (the client is not
//! taking bytes). The watchdog re-reads that state whenever the connection's task
//! wakes (HTTP/1.1 serves requests in that task) and, while requests are in flight, at least
//! every quarter of the shortest deadline (HTTP/2 serves streams in tasks of their own).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// The client-side deadlines of a connection, from `limits`.
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    pub header: Duration,
    pub idle: Duration,
    pub send: Duration,
}

impl Deadlines {
    pub fn from_limits(l: &rampart_model::LimitsConfig) -> Deadlines {
        Deadlines {
            header: l.header_timeout,
            idle: l.idle_timeout,
            send: l.send_timeout,
        }
    }

    /// How often the watchdog looks while requests are in flight.
    fn busy_check(&self) -> Duration {
        (self.send.min(self.idle).min(self.header) / 4).max(Duration::from_millis(10))
    }
}

/// Which deadline ended a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expired {
    Header,
    Idle,
    Send,
}

impl Expired {
    pub fn as_str(self) -> &'static str {
        match self {
            Expired::Header => "header",
            Expired::Idle => "idle",
            Expired::Send => "send",
        }
    }
}

/// What one connection is doing, shared by its I/O, its requests, its responses and its
/// watchdog. Times are milliseconds since accept, plus one (0 means "none").
pub struct ConnState {
    accepted: Instant,
    inflight: AtomicU64,
    requests: AtomicU64,
    idle_since: AtomicU64,
    head_started: AtomicU64,
    http2: AtomicBool,
    /// Responses in flight: each the time since which it waits for the client, or 0.
    responses: Mutex<Vec<Arc<AtomicU64>>>,
}

impl ConnState {
    pub fn new() -> Arc<ConnState> {
        Arc::new(ConnState {
            accepted: Instant::now(),
            inflight: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            idle_since: AtomicU64::new(0),
            head_started: AtomicU64::new(0),
            http2: AtomicBool::new(false),
            responses: Mutex::new(Vec::new()),
        })
    }

    fn now(&self) -> u64 {
        self.accepted.elapsed().as_millis() as u64 + 1
    }

    fn responses(&self) -> std::sync::MutexGuard<'_, Vec<Arc<AtomicU64>>> {
        self.responses.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A request's head is complete and the request is being served.
    pub fn request_started(self: &Arc<Self>, http2: bool) -> InflightToken {
        if http2 {
            self.http2.store(true, Ordering::Relaxed);
        }
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.inflight.fetch_add(1, Ordering::AcqRel);
        self.head_started.store(0, Ordering::Relaxed);
        let waiting = Arc::new(AtomicU64::new(0));
        let mut responses = self.responses();
        responses.retain(|w| Arc::strong_count(w) > 1);
        responses.push(waiting.clone());
        drop(responses);
        InflightToken {
            state: self.clone(),
            waiting,
        }
    }

    fn bytes_read(&self) {
        if self.head_started.load(Ordering::Relaxed) == 0 {
            self.head_started.store(self.now(), Ordering::Relaxed);
        }
    }

    /// The next deadline: `Ok(at)` in ms since accept (`None`: look again later), or the one
    /// that has expired.
    fn next(&self, d: &Deadlines, now: u64) -> Result<Option<u64>, Expired> {
        let ms = |t: Duration| t.as_millis() as u64;
        let due = |at: u64, what: Expired| if now >= at { Err(what) } else { Ok(Some(at)) };
        if self.inflight.load(Ordering::Acquire) > 0 {
            let mut responses = self.responses();
            responses.retain(|w| Arc::strong_count(w) > 1);
            let oldest = responses
                .iter()
                .map(|w| w.load(Ordering::Relaxed))
                .filter(|&t| t != 0)
                .min();
            drop(responses);
            return match oldest {
                Some(since) => due(since + ms(d.send), Expired::Send),
                None => Ok(None),
            };
        }
        if self.requests.load(Ordering::Relaxed) == 0 {
            return due(1 + ms(d.header), Expired::Header);
        }
        let head = self.head_started.load(Ordering::Relaxed);
        if head != 0 && !self.http2.load(Ordering::Relaxed) {
            return due(head + ms(d.header), Expired::Header);
        }
        due(
            self.idle_since.load(Ordering::Relaxed) + ms(d.idle),
            Expired::Idle,
        )
    }
}

/// Held by a request until its response is finished or dropped.
pub struct InflightToken {
    state: Arc<ConnState>,
    waiting: Arc<AtomicU64>,
}

impl Drop for InflightToken {
    fn drop(&mut self) {
        let s = &self.state;
        if s.inflight.fetch_sub(1, Ordering::AcqRel) == 1 {
            s.idle_since.store(s.now(), Ordering::Relaxed);
            s.head_started.store(0, Ordering::Relaxed);
        }
    }
}

/// Ends a connection when one of its client-side deadlines passes.
pub struct Watchdog {
    state: Arc<ConnState>,
    deadlines: Deadlines,
    sleep: Pin<Box<Sleep>>,
}

impl Watchdog {
    pub fn new(state: Arc<ConnState>, deadlines: Deadlines) -> Watchdog {
        let at = tokio::time::Instant::from_std(state.accepted + deadlines.header);
        Watchdog {
            state,
            deadlines,
            sleep: Box::pin(tokio::time::sleep_until(at)),
        }
    }
}

impl Future for Watchdog {
    type Output = Expired;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Expired> {
        loop {
            let now = self.state.now();
            let wake = match self.state.next(&self.deadlines, now) {
                Err(expired) => return Poll::Ready(expired),
                Ok(Some(at)) => self.state.accepted + Duration::from_millis(at - 1),
                Ok(None) => Instant::now() + self.deadlines.busy_check(),
            };
            let wake = tokio::time::Instant::from_std(wake);
            // Move the timer only earlier (or re-arm it once it has fired): a later deadline
            // is found when the earlier one fires, so a busy connection does not re-register
            // its timer on every wake.
            if wake < self.sleep.deadline() || self.sleep.is_elapsed() {
                self.sleep.as_mut().reset(wake);
            }
            match self.sleep.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                // Time is up for what we last computed: look again.
                Poll::Ready(()) => continue,
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// The connection's byte stream; notes when bytes arrive (the start of a request head).
    pub struct Watched<IO> {
        #[pin]
        io: IO,
        state: Arc<ConnState>,
    }
}

impl<IO> Watched<IO> {
    pub fn new(io: IO, state: Arc<ConnState>) -> Watched<IO> {
        Watched { io, state }
    }

    pub fn get_ref(&self) -> &IO {
        &self.io
    }
}

impl<IO: AsyncRead> AsyncRead for Watched<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let polled = this.io.poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.state.bytes_read();
        }
        polled
    }
}

impl<IO: AsyncWrite> AsyncWrite for Watched<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.project().io.poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.project().io.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

pin_project_lite::pin_project! {
    /// A response body on its way to the client. It is *waiting for the client* from the moment
    /// it has something to give (a frame handed over, or its upstream waking it with more)
    /// until the protocol asks it for the next frame; the watchdog reads since when. The
    /// protocol stops asking when the client stops taking bytes (a full socket, an HTTP/2
    /// window at zero), so that is what the time measures, never a slow upstream.
    pub struct ClientBody<B> {
        #[pin]
        inner: B,
        token: Option<InflightToken>,
        // The protocol's waker and ours around it, reused while the protocol's is the same.
        wakers: Option<(Waker, Waker)>,
    }
}

impl<B> ClientBody<B> {
    pub fn new(inner: B, token: InflightToken) -> ClientBody<B> {
        // Until the protocol asks for the first frame, the client has not made room for it.
        token.waiting.store(token.state.now(), Ordering::Relaxed);
        ClientBody {
            inner,
            token: Some(token),
            wakers: None,
        }
    }
}

/// Wakes the protocol for the upstream's data, noting that the body now has something to give.
struct ReadyWaker {
    state: Arc<ConnState>,
    waiting: Arc<AtomicU64>,
    inner: Waker,
}

impl std::task::Wake for ReadyWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if self.waiting.load(Ordering::Relaxed) == 0 {
            self.waiting.store(self.state.now(), Ordering::Relaxed);
        }
        self.inner.wake_by_ref();
    }
}

impl<B: Body<Data = Bytes>> Body for ClientBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        let Some(token) = this.token.as_ref() else {
            return this.inner.poll_frame(cx);
        };
        // Asked: the client took what was given.
        token.waiting.store(0, Ordering::Relaxed);
        let reuse = this
            .wakers
            .as_ref()
            .is_some_and(|(theirs, _)| theirs.will_wake(cx.waker()));
        if !reuse {
            let ours = Waker::from(Arc::new(ReadyWaker {
                state: token.state.clone(),
                waiting: token.waiting.clone(),
                inner: cx.waker().clone(),
            }));
            *this.wakers = Some((cx.waker().clone(), ours));
        }
        let polled = match this.wakers.as_ref() {
            Some((_, ours)) => this.inner.poll_frame(&mut Context::from_waker(ours)),
            None => this.inner.poll_frame(cx),
        };
        match &polled {
            Poll::Ready(Some(Ok(_))) => token.waiting.store(token.state.now(), Ordering::Relaxed),
            Poll::Pending => {}
            Poll::Ready(_) => {
                this.token.take();
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d() -> Deadlines {
        Deadlines {
            header: Duration::from_millis(100),
            idle: Duration::from_millis(1000),
            send: Duration::from_millis(300),
        }
    }

    #[test]
    fn phases() {
        let s = ConnState::new();
        // Nothing yet: the header deadline from accept.
        assert_eq!(s.next(&d(), 50), Ok(Some(101)));
        assert_eq!(s.next(&d(), 101), Err(Expired::Header));
        // A request in flight, no response yet: no deadline of ours.
        let token = s.request_started(false);
        assert_eq!(s.next(&d(), 5000), Ok(None));
        // Its response waits for the client: the send deadline.
        token.waiting.store(200, Ordering::Relaxed);
        assert_eq!(s.next(&d(), 400), Ok(Some(500)));
        assert_eq!(s.next(&d(), 500), Err(Expired::Send));
        drop(token);
        // Idle: the idle deadline from when the last response ended.
        let idle_since = s.idle_since.load(Ordering::Relaxed);
        assert_eq!(s.next(&d(), idle_since), Ok(Some(idle_since + 1000)));
        // A new head starts arriving on HTTP/1.1: the header deadline from its first byte.
        s.head_started.store(idle_since + 10, Ordering::Relaxed);
        assert_eq!(s.next(&d(), idle_since + 20), Ok(Some(idle_since + 110)));
        // On HTTP/2 bytes while idle are pings and settings: only the idle deadline counts.
        s.http2.store(true, Ordering::Relaxed);
        assert_eq!(s.next(&d(), idle_since + 20), Ok(Some(idle_since + 1000)));
    }
}
