//! The floor under an HTTP/1.1 proxy on tokio: the least a proxy can do per request, for
//! `bench/floor.sh` to tell what the kernel costs from what a proxy's own work costs.
//!
//! Per request it reads the client's head (parsed with httparse), writes it unchanged to an
//! upstream connection of its own, reads the response head and its `Content-Length` body, and
//! writes that back: the same system calls rampart and nginx make, and nothing a gateway must
//! do besides (no routing, header rewriting, limits, deadlines, metrics, request bodies or
//! chunked responses). Not a proxy to put in front of anything.
//!
//! Usage: `cargo run --release -p rampart-gateway --example h1_floor -- LISTEN UPSTREAM`
//! (one thread; loopback addresses only).

use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn main() -> io::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut addr = |what: &str| -> io::Result<SocketAddr> {
        let addr: SocketAddr = args
            .next()
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| io::Error::other(format!("usage: h1_floor LISTEN UPSTREAM ({what})")))?;
        if !addr.ip().is_loopback() {
            return Err(io::Error::other(format!("{addr}: loopback only")));
        }
        Ok(addr)
    };
    let (listen, upstream) = (addr("listen")?, addr("upstream")?);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = TcpListener::bind(listen).await?;
        loop {
            let (client, _) = listener.accept().await?;
            tokio::spawn(async move {
                let _ = serve(client, upstream).await;
            });
        }
    })
}

/// The end of a complete head in `buf`, if there is one (`Err`: not HTTP).
fn request_head(buf: &[u8]) -> io::Result<Option<usize>> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    match httparse::Request::new(&mut headers).parse(buf) {
        Ok(httparse::Status::Complete(n)) => Ok(Some(n)),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(e) => Err(io::Error::other(e)),
    }
}

/// A complete response's length in `buf` (head and `Content-Length` body), once its head is.
fn response_length(buf: &[u8]) -> io::Result<Option<usize>> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(buf) {
        Ok(httparse::Status::Complete(head)) => {
            let body = response
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .and_then(|h| {
                    std::str::from_utf8(h.value)
                        .ok()?
                        .trim()
                        .parse::<usize>()
                        .ok()
                })
                .unwrap_or(0);
            Ok(Some(head + body))
        }
        Ok(httparse::Status::Partial) => Ok(None),
        Err(e) => Err(io::Error::other(e)),
    }
}

/// Reads into `buf` after its first `filled` bytes; false at the end of the stream or when
/// `buf` is full.
async fn fill(stream: &mut TcpStream, buf: &mut [u8], filled: &mut usize) -> io::Result<bool> {
    let Some(room) = buf.get_mut(*filled..).filter(|r| !r.is_empty()) else {
        return Ok(false);
    };
    let n = stream.read(room).await?;
    *filled += n;
    Ok(n > 0)
}

async fn serve(mut client: TcpStream, upstream: SocketAddr) -> io::Result<()> {
    client.set_nodelay(true)?;
    let mut up = TcpStream::connect(upstream).await?;
    up.set_nodelay(true)?;
    let (mut request, mut requested) = (vec![0u8; 8192], 0);
    let mut response = vec![0u8; 16384];
    loop {
        let head = loop {
            if let Some(n) = request_head(&request[..requested])? {
                break n;
            }
            if !fill(&mut client, &mut request, &mut requested).await? {
                return Ok(());
            }
        };
        up.write_all(&request[..head]).await?;
        request.copy_within(head..requested, 0);
        requested -= head;
        let mut got = 0;
        let total = loop {
            if !fill(&mut up, &mut response, &mut got).await? {
                return Ok(());
            }
            if let Some(n) = response_length(&response[..got])? {
                break n;
            }
        };
        while got < total {
            if !fill(&mut up, &mut response, &mut got).await? {
                return Ok(());
            }
        }
        client.write_all(&response[..total]).await?;
    }
}
