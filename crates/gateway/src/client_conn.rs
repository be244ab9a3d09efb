//! The client side's deadlines on one connection: no client holds a slot without making
//! progress.
//!
//! A [`Watchdog`] runs beside the protocol in the connection's task and ends the connection
//! when one of these expires (the limits are `limits.*` of the config):
//! - `header_timeout`: from accept to the first complete request head (TLS handshake and
//!   protocol detection included), and on HTTP/1.1 from the first byte of each later head;
//! - `idle_timeout`: no request in flight (closed gracefully: HTTP/2 gets a GOAWAY);
//! - `send_timeout`: the client takes no bytes for this long: a write to its socket stays
//!   blocked, or a response frame handed to the protocol is not followed by a request for the
//!   next (an HTTP/2 stream whose window stays at zero).
//!
//! State flows in through [`ConnState`]: the I/O wrapper ([`Watched`]) notes when a head's
//! first bytes arrive and when writes block, each request holds an [`InflightToken`], and each
//! response body ([`ClientBody`]) says whether it waits for the protocol to ask for more. The
//! request path only flips atomics: it reads no clock. It marks "since now" and the watchdog,
//! which runs in the connection's task right after the protocol, stamps the time when it
//! first sees the mark. It recomputes its deadline when the connection's counters change or its
//! timer fires, and while requests are in flight at least every quarter of the shortest
//! deadline (HTTP/2 streams run in tasks of their own).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// Times in [`ConnState`]: milliseconds since accept plus [`FIRST`]; `NONE` when there is
/// nothing to time, `MARKED` for "since now", stamped by the watchdog.
const NONE: u64 = 0;
const MARKED: u64 = 1;
const FIRST: u64 = 2;

/// Marks a time slot as "since now" unless it already holds a time.
fn mark(slot: &AtomicU64) {
    if slot.load(Ordering::Relaxed) == NONE {
        slot.store(MARKED, Ordering::Relaxed);
    }
}

/// Clears a time slot.
fn clear(slot: &AtomicU64) {
    if slot.load(Ordering::Relaxed) != NONE {
        slot.store(NONE, Ordering::Relaxed);
    }
}

/// The time in a slot, stamping a mark with `now` first.
fn stamped(slot: &AtomicU64, now: u64) -> u64 {
    match slot.compare_exchange(MARKED, now, Ordering::Relaxed, Ordering::Relaxed) {
        Ok(_) => now,
        Err(t) => t,
    }
}

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
/// watchdog.
pub struct ConnState {
    accepted: Instant,
    inflight: AtomicU64,
    requests: AtomicU64,
    idle_since: AtomicU64,
    head_started: AtomicU64,
    write_blocked: AtomicU64,
    http2: AtomicBool,
    /// Set while an idle HTTP/1.1 connection's protocol state is being dropped (parked): its
    /// socket stays open, so the protocol's shutdown does not reach it.
    parking: AtomicBool,
    /// One slot per response in flight: since when it waits for the protocol to ask for more.
    /// A slot only the connection holds is free for the next request.
    responses: Mutex<Vec<Arc<AtomicU64>>>,
}

impl ConnState {
    pub fn new() -> Arc<ConnState> {
        Arc::new(ConnState {
            accepted: Instant::now(),
            inflight: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            idle_since: AtomicU64::new(NONE),
            head_started: AtomicU64::new(NONE),
            write_blocked: AtomicU64::new(NONE),
            http2: AtomicBool::new(false),
            parking: AtomicBool::new(false),
            responses: Mutex::new(Vec::new()),
        })
    }

    fn now(&self) -> u64 {
        self.accepted.elapsed().as_millis() as u64 + FIRST
    }

    /// The instant a time in the slots' time stands for.
    fn instant(&self, at: u64) -> Instant {
        self.accepted + Duration::from_millis(at.saturating_sub(FIRST))
    }

    fn responses(&self) -> std::sync::MutexGuard<'_, Vec<Arc<AtomicU64>>> {
        self.responses.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the connection may be parked: requests were served, none is in flight and no
    /// byte of a next one has arrived.
    pub fn parkable(&self) -> bool {
        self.requests.load(Ordering::Relaxed) > 0
            && self.inflight.load(Ordering::Acquire) == 0
            && self.head_started.load(Ordering::Relaxed) == NONE
    }

    /// How long the connection has been idle: requests were served and none is in flight
    /// (`None` otherwise).
    pub fn idle_for(&self) -> Option<Duration> {
        if self.requests.load(Ordering::Relaxed) == 0 || self.inflight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let now = self.now();
        match stamped(&self.idle_since, now) {
            NONE => None,
            since => Some(Duration::from_millis(now.saturating_sub(since))),
        }
    }

    /// How many requests the connection has started.
    pub fn served(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// While set, shutting the connection's output down is skipped (see `parking`).
    pub fn set_parking(&self, parking: bool) {
        self.parking.store(parking, Ordering::Release);
    }

    pub fn is_parking(&self) -> bool {
        self.parking.load(Ordering::Acquire)
    }

    /// A request's head is complete and the request is being served.
    pub fn request_started(self: &Arc<Self>, http2: bool) -> InflightToken {
        if http2 && !self.http2.load(Ordering::Relaxed) {
            self.http2.store(true, Ordering::Relaxed);
        }
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.inflight.fetch_add(1, Ordering::AcqRel);
        clear(&self.head_started);
        let mut responses = self.responses();
        // Clones are made only under this lock: a count of one is a free slot.
        let waiting = match responses.iter().find(|w| Arc::strong_count(w) == 1) {
            Some(free) => {
                free.store(NONE, Ordering::Relaxed);
                free.clone()
            }
            None => {
                let slot = Arc::new(AtomicU64::new(NONE));
                responses.push(slot.clone());
                slot
            }
        };
        drop(responses);
        InflightToken {
            state: self.clone(),
            waiting,
        }
    }

    /// What the watchdog compares to know whether anything changed since it last looked.
    fn counters(&self) -> [u64; 4] {
        [
            self.requests.load(Ordering::Relaxed),
            self.inflight.load(Ordering::Relaxed),
            self.head_started.load(Ordering::Relaxed),
            self.write_blocked.load(Ordering::Relaxed),
        ]
    }

    /// The next deadline: `Ok(at)` in the slots' time (`None`: look again later), or the one
    /// that has expired. Stamps the marks it finds with `now`.
    fn next(&self, d: &Deadlines, now: u64) -> Result<Option<u64>, Expired> {
        let ms = |t: Duration| t.as_millis() as u64;
        let due = |at: u64, what: Expired| if now >= at { Err(what) } else { Ok(Some(at)) };
        let blocked = stamped(&self.write_blocked, now);
        if self.inflight.load(Ordering::Acquire) > 0 {
            let responses = self.responses();
            let oldest = responses
                .iter()
                .filter(|w| Arc::strong_count(w) > 1)
                .map(|w| stamped(w, now))
                .chain(std::iter::once(blocked))
                .filter(|&t| t != NONE)
                .min();
            drop(responses);
            return match oldest {
                Some(since) => due(since + ms(d.send), Expired::Send),
                None => Ok(None),
            };
        }
        if self.requests.load(Ordering::Relaxed) == 0 {
            return due(FIRST + ms(d.header), Expired::Header);
        }
        let head = stamped(&self.head_started, now);
        if head != NONE && !self.http2.load(Ordering::Relaxed) {
            return due(head + ms(d.header), Expired::Header);
        }
        due(stamped(&self.idle_since, now) + ms(d.idle), Expired::Idle)
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
        clear(&self.waiting);
        if s.inflight.fetch_sub(1, Ordering::AcqRel) == 1 {
            s.idle_since.store(MARKED, Ordering::Relaxed);
            clear(&s.head_started);
        }
    }
}

/// Ends a connection when one of its client-side deadlines passes.
pub struct Watchdog {
    state: Arc<ConnState>,
    deadlines: Deadlines,
    sleep: Pin<Box<Sleep>>,
    /// The connection's counters when the deadline was last computed.
    seen: [u64; 4],
}

impl Watchdog {
    pub fn new(state: Arc<ConnState>, deadlines: Deadlines) -> Watchdog {
        let at = tokio::time::Instant::from_std(state.accepted + deadlines.header);
        Watchdog {
            state,
            deadlines,
            sleep: Box::pin(tokio::time::sleep_until(at)),
            seen: [0; 4],
        }
    }

    /// When an idle connection's idle deadline passes (what holds a parked connection that has
    /// left this watchdog behind); `None` when it has passed, or requests are in flight.
    pub fn idle_deadline(&self) -> Option<Instant> {
        match self.state.next(&self.deadlines, self.state.now()) {
            Ok(Some(at)) => Some(self.state.instant(at)),
            Ok(None) | Err(_) => None,
        }
    }
}

impl Future for Watchdog {
    type Output = Expired;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Expired> {
        let this = &mut *self;
        let mut counters = this.state.counters();
        if counters == this.seen && this.sleep.as_mut().poll(cx).is_pending() {
            // Nothing changed and the timer has not fired: the deadline stands.
            return Poll::Pending;
        }
        loop {
            this.seen = counters;
            let now = this.state.now();
            let wake = match this.state.next(&this.deadlines, now) {
                Err(expired) => return Poll::Ready(expired),
                Ok(Some(at)) => this.state.instant(at),
                Ok(None) => Instant::now() + this.deadlines.busy_check(),
            };
            let wake = tokio::time::Instant::from_std(wake);
            // Move the timer only earlier (or re-arm it once it has fired): a later deadline
            // is found when the earlier one fires, so a busy connection does not re-register
            // its timer on every wake.
            if wake < this.sleep.deadline() || this.sleep.is_elapsed() {
                this.sleep.as_mut().reset(wake);
            }
            match this.sleep.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                // Time is up for what we last computed: look again.
                Poll::Ready(()) => counters = this.state.counters(),
            }
        }
    }
}

/// A blocked write marks the connection as waiting for the client; any progress clears it.
fn wrote(blocked: &AtomicU64, polled: &Poll<io::Result<usize>>) {
    match polled {
        Poll::Pending => mark(blocked),
        Poll::Ready(Ok(n)) if *n > 0 => clear(blocked),
        Poll::Ready(_) => {}
    }
}

pin_project_lite::pin_project! {
    /// The connection's byte stream; notes when bytes arrive (the start of a request head)
    /// and whether writes to the client are blocked.
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

    pub fn into_inner(self) -> IO {
        self.io
    }

    /// Reports to another connection's state (a parked connection taken up again).
    pub fn rewatch(&mut self, state: Arc<ConnState>) {
        self.state = state;
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
            mark(&this.state.head_started);
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
        let this = self.project();
        let polled = this.io.poll_write(cx, buf);
        wrote(&this.state.write_blocked, &polled);
        polled
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.project();
        if this.state.is_parking() {
            // The protocol ends, the connection stays (parked).
            return Poll::Ready(Ok(()));
        }
        this.io.poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let polled = this.io.poll_write_vectored(cx, bufs);
        wrote(&this.state.write_blocked, &polled);
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

pin_project_lite::pin_project! {
    /// A response body on its way to the client. From handing a frame over until the protocol
    /// asks for the next one it waits for the client; the protocol stops asking when the
    /// client takes no more (an HTTP/2 window at zero). A body whose upstream has nothing yet
    /// is not waiting for the client.
    pub struct ClientBody<B> {
        #[pin]
        inner: B,
        token: Option<InflightToken>,
    }
}

impl<B> ClientBody<B> {
    pub fn new(inner: B, token: InflightToken) -> ClientBody<B> {
        // Until the protocol asks for the first frame, the client has not made room for it.
        mark(&token.waiting);
        ClientBody {
            inner,
            token: Some(token),
        }
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
        if let Some(t) = this.token.as_ref() {
            // Asked: the client took what was given.
            clear(&t.waiting);
        }
        let polled = this.inner.poll_frame(cx);
        match (&polled, this.token.as_ref()) {
            (Poll::Ready(Some(Ok(_))), Some(t)) => mark(&t.waiting),
            (Poll::Pending, _) | (Poll::Ready(Some(Ok(_))), None) => {}
            (Poll::Ready(_), _) => {
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
        assert_eq!(s.next(&d(), 50), Ok(Some(FIRST + 100)));
        assert_eq!(s.next(&d(), FIRST + 100), Err(Expired::Header));
        // A request in flight, no response yet: no deadline of ours.
        let token = s.request_started(false);
        assert_eq!(s.next(&d(), 5000), Ok(None));
        // Its response waits for the client: the send deadline, from when it was first seen.
        mark(&token.waiting);
        assert_eq!(s.next(&d(), 200), Ok(Some(500)));
        assert_eq!(s.next(&d(), 400), Ok(Some(500)));
        assert_eq!(s.next(&d(), 500), Err(Expired::Send));
        // Asked for more: no longer waiting.
        clear(&token.waiting);
        assert_eq!(s.next(&d(), 600), Ok(None));
        // A write to the client blocks: the send deadline again.
        mark(&s.write_blocked);
        assert_eq!(s.next(&d(), 700), Ok(Some(1000)));
        clear(&s.write_blocked);
        drop(token);
        // Idle: the idle deadline from when the watchdog first saw it idle.
        assert_eq!(s.next(&d(), 2000), Ok(Some(3000)));
        // A new head starts arriving on HTTP/1.1: the header deadline from its first byte.
        mark(&s.head_started);
        assert_eq!(s.next(&d(), 2500), Ok(Some(2600)));
        // On HTTP/2, bytes while idle are pings and settings: only the idle deadline counts.
        s.http2.store(true, Ordering::Relaxed);
        assert_eq!(s.next(&d(), 2550), Ok(Some(3000)));
    }

    #[test]
    fn response_slots_are_reused() {
        let s = ConnState::new();
        for _ in 0..100 {
            drop(s.request_started(false));
        }
        let (a, b) = (s.request_started(true), s.request_started(true));
        assert_eq!(s.responses().len(), 2);
        drop((a, b));
    }
}
