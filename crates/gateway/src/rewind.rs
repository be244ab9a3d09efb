//! Bytes read ahead of the protocol, given back: the first bytes of a plain connection (read to
//! tell HTTP/2's preface from an HTTP/1.1 request), and what an HTTP/1.1 connection had
//! buffered when it was parked.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// HTTP/2's connection preface (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

pin_project_lite::pin_project! {
    /// An I/O object whose reads return `pre` first.
    pub struct Rewind<IO> {
        pre: Bytes,
        #[pin]
        io: IO,
    }
}

impl<IO> Rewind<IO> {
    pub fn new(io: IO, pre: Bytes) -> Rewind<IO> {
        Rewind { pre, io }
    }

    /// The I/O object and what of `pre` was not read yet.
    pub fn into_inner(self) -> (IO, Bytes) {
        (self.io, self.pre)
    }
}

impl<IO: AsyncRead> AsyncRead for Rewind<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        if !this.pre.is_empty() {
            let n = this.pre.len().min(buf.remaining());
            buf.put_slice(&this.pre.split_to(n));
            return Poll::Ready(Ok(()));
        }
        this.io.poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite> AsyncWrite for Rewind<IO> {
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

/// Reads until the bytes can be neither the start of HTTP/2's preface nor anything else:
/// whether they are the preface, and the bytes read (to give back with [`Rewind`]). A client
/// that closes first yields what it sent.
pub async fn read_preface<IO: AsyncRead + Unpin>(io: &mut IO) -> io::Result<(bool, Bytes)> {
    let mut read = BytesMut::with_capacity(H2_PREFACE.len());
    while read.len() < H2_PREFACE.len() {
        let n = io.read_buf(&mut read).await?;
        let seen = read.len().min(H2_PREFACE.len());
        if n == 0 || read.get(..seen) != H2_PREFACE.get(..seen) {
            return Ok((false, read.freeze()));
        }
    }
    let h2 = read.starts_with(H2_PREFACE);
    Ok((h2, read.freeze()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_preface_is_told_from_http1_and_every_byte_given_back() {
        for (sent, h2) in [
            (&b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00"[..], true),
            (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", false),
            (b"PRI * HTTP/1.1\r\n\r\n", false),
            (b"G", false),
        ] {
            let (mut client, mut server) = tokio::io::duplex(64);
            tokio::io::AsyncWriteExt::write_all(&mut client, sent)
                .await
                .expect("write");
            drop(client);
            let (is_h2, pre) = read_preface(&mut server).await.expect("read");
            assert_eq!(is_h2, h2, "{sent:?}");
            let mut all = Vec::new();
            Rewind::new(server, pre)
                .read_to_end(&mut all)
                .await
                .expect("read back");
            assert_eq!(all, sent, "every byte comes back in order");
        }
    }
}
