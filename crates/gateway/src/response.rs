//! What the gateway answers clients with: an upstream's body streamed through (holding its
//! permits until it ends), or a body made here; either one carrying the request's access-log
//! line and server span until it ends.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::{Either, Full};

use crate::access_log::Pending;
use crate::body::{BoxError, Tracked};
use crate::trace::RequestTrace;
use crate::upstream::UpstreamBody;

pin_project_lite::pin_project! {
    /// A response body on its way to the client.
    pub struct ResponseBody {
        #[pin]
        inner: Either<Tracked<UpstreamBody>, Full<Bytes>>,
        log: Option<Box<Pending>>,
        trace: Option<Box<RequestTrace>>,
    }
}

/// A body made here.
pub fn full(bytes: impl Into<Bytes>) -> ResponseBody {
    ResponseBody {
        inner: Either::Right(Full::new(bytes.into())),
        log: None,
        trace: None,
    }
}

impl ResponseBody {
    /// An upstream's body streamed through.
    pub fn streamed(body: Tracked<UpstreamBody>) -> ResponseBody {
        ResponseBody {
            inner: Either::Left(body),
            log: None,
            trace: None,
        }
    }

    /// The access-log line is written, and the server span recorded, when this body ends or
    /// is dropped.
    pub fn observed(
        mut self,
        log: Option<Box<Pending>>,
        trace: Option<Box<RequestTrace>>,
    ) -> ResponseBody {
        self.log = log;
        self.trace = trace;
        self
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        if matches!(polled, Poll::Ready(None | Some(Err(_)))) {
            this.trace.take();
        }
        if let Some(log) = this.log.as_mut() {
            match &polled {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Some(data) = frame.data_ref() {
                        log.sent(data.len());
                    }
                }
                Poll::Ready(_) => {
                    this.log.take();
                }
                Poll::Pending => {}
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
