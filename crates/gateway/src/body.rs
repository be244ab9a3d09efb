//! Body types: what the gateway sends upstream (size-limited, with a progress deadline) and the
//! wrapper that holds a response's permits and deadline until its body ends.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty};
use prometheus_client::metrics::counter::Counter;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A request body on its way upstream.
pub type ProxyBody = BoxBody<Bytes, BoxError>;

pub fn empty() -> ProxyBody {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed()
}

#[derive(Debug, thiserror::Error)]
#[error("request body exceeds the limit of {limit} bytes")]
pub struct BodyTooLarge {
    pub limit: u64,
}

/// A body that made no progress for its deadline (`limits.body_timeout`).
#[derive(Debug, thiserror::Error)]
#[error("{side} body made no progress for {after:?}")]
pub struct BodyStalled {
    pub side: &'static str,
    pub after: Duration,
}

/// How long a body has been waiting for its sender: armed when a poll finds nothing, disarmed
/// by the next frame. The timer is allocated on the first wait only.
struct Stall {
    after: Duration,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    armed: bool,
}

impl Stall {
    fn new(after: Duration) -> Stall {
        Stall {
            after,
            sleep: None,
            armed: false,
        }
    }

    fn progressed(&mut self) {
        self.armed = false;
    }

    /// Called when the sender had nothing: true once it has had nothing for `after`.
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.armed {
            // The clock is read once per wait, not on every poll of one.
            let deadline = tokio::time::Instant::now() + self.after;
            match self.sleep.as_mut() {
                Some(sleep) => sleep.as_mut().reset(deadline),
                None => self.sleep = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
            self.armed = true;
        }
        self.sleep
            .as_mut()
            .is_some_and(|sleep| sleep.as_mut().poll(cx).is_ready())
    }
}

pin_project_lite::pin_project! {
    /// Streams a request body and fails it once more than `limit` bytes have passed, or when
    /// the client sends nothing for `body_timeout` while the upstream waits for more.
    pub struct Limited<B> {
        #[pin]
        inner: B,
        seen: u64,
        limit: u64,
        stall: Stall,
        counted: Option<Arc<AtomicU64>>,
    }
}

impl<B> Limited<B> {
    pub fn new(inner: B, limit: u64, body_timeout: Duration) -> Self {
        Limited {
            inner,
            seen: 0,
            limit,
            stall: Stall::new(body_timeout),
            counted: None,
        }
    }

    /// Also adds the bytes read to `counter` (the access log's `bytes_in`).
    pub fn counting(mut self, counter: Option<Arc<AtomicU64>>) -> Self {
        self.counted = counter;
        self
    }
}

impl<B> Body for Limited<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        match this.inner.poll_frame(cx) {
            Poll::Pending => {
                if this.stall.expired(cx) {
                    return Poll::Ready(Some(Err(Box::new(BodyStalled {
                        side: "request",
                        after: this.stall.after,
                    }))));
                }
                Poll::Pending
            }
            Poll::Ready(Some(Ok(frame))) => {
                this.stall.progressed();
                if let Some(data) = frame.data_ref() {
                    *this.seen += data.len() as u64;
                    if let Some(counted) = this.counted {
                        counted.fetch_add(data.len() as u64, Ordering::Relaxed);
                    }
                    if *this.seen > *this.limit {
                        return Poll::Ready(Some(Err(Box::new(BodyTooLarge {
                            limit: *this.limit,
                        }))));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

pin_project_lite::pin_project! {
    /// A response body that holds the request's admission permits until it is finished or dropped,
    /// so a slow download still counts as in flight. An upstream that sends nothing for
    /// `body_timeout` fails the body (and so frees the permits).
    pub struct Tracked<B> {
        #[pin]
        inner: B,
        guard: Option<Box<dyn Send + Sync>>,
        stall: Stall,
        stalled: Counter,
        // A deadline for the whole body, and the trailers that end it there (gRPC's
        // DEADLINE_EXCEEDED); `ended` once they were sent.
        deadline: Option<(Pin<Box<tokio::time::Sleep>>, http::HeaderMap)>,
        ended: bool,
    }
}

impl<B> Tracked<B> {
    /// `stalled` counts bodies failed by `body_timeout`.
    pub fn new(
        inner: B,
        guard: Box<dyn Send + Sync>,
        body_timeout: Duration,
        stalled: Counter,
    ) -> Self {
        Tracked {
            inner,
            guard: Some(guard),
            stall: Stall::new(body_timeout),
            stalled,
            deadline: None,
            ended: false,
        }
    }

    /// Ends the body at `at` with `trailers` instead of whatever the upstream sends after.
    pub fn with_deadline(mut self, at: tokio::time::Instant, trailers: http::HeaderMap) -> Self {
        self.deadline = Some((Box::pin(tokio::time::sleep_until(at)), trailers));
        self
    }
}

impl<B: Body<Data = Bytes>> Body for Tracked<B>
where
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        if *this.ended {
            return Poll::Ready(None);
        }
        if let Some((sleep, _)) = this.deadline.as_mut()
            && sleep.as_mut().poll(cx).is_ready()
        {
            let trailers = this.deadline.take().map(|(_, t)| t).unwrap_or_default();
            *this.ended = true;
            this.guard.take();
            return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
        }
        match this.inner.poll_frame(cx) {
            Poll::Pending => {
                if this.stall.expired(cx) {
                    this.guard.take();
                    this.stalled.inc();
                    return Poll::Ready(Some(Err(Box::new(BodyStalled {
                        side: "upstream response",
                        after: this.stall.after,
                    }))));
                }
                Poll::Pending
            }
            Poll::Ready(Some(Ok(frame))) => {
                this.stall.progressed();
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.guard.take();
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(None) => {
                this.guard.take();
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
