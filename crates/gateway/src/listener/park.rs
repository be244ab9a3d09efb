//! What an idle HTTP/1.1 connection leaves for the parking lot: the plain socket, or a TLS
//! session over it.
//!
//! Two things differ with TLS: the protocol's shutdown would send TLS's `close_notify`, so
//! [`ParkableTls`] skips it while parking (as `Watched` skips the socket's), and the TLS
//! session may already hold decrypted bytes the protocol did not read, which no readiness of
//! the socket would announce ([`Park::holds_bytes`]). A plain socket leaves the runtime's
//! reactor for the lot; a TLS session cannot be rebuilt around a bare socket, so it goes to
//! the lot whole, its socket still registered with the runtime.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use super::lot::Socket;
use crate::client_conn::{ConnState, Watched};

/// A connection an idle HTTP/1.1 protocol can be parked on.
pub(super) trait Park: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// Whether bytes already received wait above the socket for the protocol to read (or the
    /// peer's end of the stream): then the connection is not parked.
    fn holds_bytes(&mut self) -> bool {
        false
    }

    /// What the parking lot keeps; `None` if the socket could not be taken out of the
    /// runtime (the connection is then closed).
    fn into_parked(self) -> Option<Socket>;
}

impl Park for Watched<TcpStream> {
    fn into_parked(self) -> Option<Socket> {
        self.into_inner().into_std().ok().map(Socket::Plain)
    }
}

pin_project_lite::pin_project! {
    /// A TLS session whose shutdown is skipped while its connection is being parked.
    pub(super) struct ParkableTls {
        #[pin]
        tls: TlsStream<Watched<TcpStream>>,
        state: Arc<ConnState>,
    }
}

impl ParkableTls {
    pub(super) fn new(tls: TlsStream<Watched<TcpStream>>, state: Arc<ConnState>) -> ParkableTls {
        ParkableTls { tls, state }
    }
}

impl Park for ParkableTls {
    fn into_parked(self) -> Option<Socket> {
        let ParkableTls { tls, .. } = self;
        // The task that served the connection ends now; the socket's registration would keep
        // that task's wakers (and with them its memory) until the next poll: leave it
        // wakers that hold nothing instead.
        let socket = tls.get_ref().0.get_ref();
        let mut cx = Context::from_waker(Waker::noop());
        let _ = socket.poll_read_ready(&mut cx);
        let _ = socket.poll_write_ready(&mut cx);
        Some(Socket::Tls(Box::new(tls)))
    }

    fn holds_bytes(&mut self) -> bool {
        // TLS records already read from the socket, decrypted now: plaintext waiting, a
        // close_notify, or an error (the protocol's next read reports it and ends).
        match self.tls.get_mut().1.process_new_packets() {
            Ok(state) => state.plaintext_bytes_to_read() > 0 || state.peer_has_closed(),
            Err(_) => true,
        }
    }
}

impl AsyncRead for ParkableTls {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.project().tls.poll_read(cx, buf)
    }
}

impl AsyncWrite for ParkableTls {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.project().tls.poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().tls.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.project();
        if this.state.is_parking() {
            // The protocol ends; the session and the connection stay (parked). What the
            // protocol wrote is flushed first.
            return this.tls.poll_flush(cx);
        }
        this.tls.poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.project().tls.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tls.is_write_vectored()
    }
}
