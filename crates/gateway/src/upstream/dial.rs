//! Opening a connection to an endpoint: DNS through the gateway's resolver, TCP under
//! `connect_timeout`, and TLS with ALPN when the upstream has `tls`. What ALPN settles tells
//! the caller which HTTP version the connection speaks.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rampart_model::UpstreamTlsConfig;
use rampart_net::Resolver;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// Why an exchange with an upstream failed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The connection could not be made: nothing was sent.
    #[error("{0}")]
    Connect(String),
    /// The request may have reached the upstream.
    #[error(transparent)]
    Http(#[from] hyper::Error),
}

/// A connection to an endpoint, plain or TLS.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// Which protocols a TLS handshake offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    Http1,
    H2,
    Both,
}

/// TLS to one upstream: a client configuration for each ALPN offer, and the name to check.
pub struct TlsDial {
    http1: TlsConnector,
    h2: TlsConnector,
    both: TlsConnector,
    server_name: Option<String>,
}

impl TlsDial {
    /// From the upstream's settings and its CA file's PEM (read by the caller).
    pub fn new(config: &UpstreamTlsConfig, ca_pem: Option<&[u8]>) -> Result<TlsDial, String> {
        rampart_net::install_crypto_provider();
        let base = rampart_net::tls::client_config(ca_pem)?;
        let with = |alpn: &[&[u8]]| {
            let mut c = base.clone();
            c.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
            TlsConnector::from(Arc::new(c))
        };
        Ok(TlsDial {
            http1: with(&[b"http/1.1"]),
            h2: with(&[b"h2"]),
            both: with(&[b"h2", b"http/1.1"]),
            server_name: config.server_name.clone(),
        })
    }
}

/// Where and how to connect to one endpoint.
pub struct Dialer<'a> {
    pub resolver: &'a Resolver,
    pub host: &'a str,
    pub port: u16,
    pub connect_timeout: Duration,
    pub tls: Option<&'a TlsDial>,
}

impl Dialer<'_> {
    /// A connection and whether ALPN settled on HTTP/2 (never, without TLS).
    pub async fn dial(&self, offer: Offer) -> Result<(Stream, bool), SendError> {
        let tcp = self.tcp().await?;
        let Some(tls) = self.tls else {
            return Ok((Stream::Plain(tcp), false));
        };
        let name = tls.server_name.as_deref().unwrap_or(self.host);
        let server_name = ServerName::try_from(name.to_owned())
            .map_err(|e| SendError::Connect(format!("TLS name {name:?}: {e}")))?;
        let connector = match offer {
            Offer::Http1 => &tls.http1,
            Offer::H2 => &tls.h2,
            Offer::Both => &tls.both,
        };
        // The handshake is part of connecting, under the same deadline.
        let stream =
            tokio::time::timeout(self.connect_timeout, connector.connect(server_name, tcp))
                .await
                .map_err(|_| {
                    SendError::Connect(format!(
                        "TLS handshake with {}:{}: timed out after {:?}",
                        self.host, self.port, self.connect_timeout
                    ))
                })?
                .map_err(|e| {
                    SendError::Connect(format!(
                        "TLS handshake with {}:{}: {e}",
                        self.host, self.port
                    ))
                })?;
        let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
        Ok((Stream::Tls(Box::new(stream)), h2))
    }

    async fn tcp(&self) -> Result<TcpStream, SendError> {
        let ips = self
            .resolver
            .lookup(self.host)
            .await
            .map_err(|e| SendError::Connect(e.to_string()))?;
        let mut last = String::from("no address");
        for ip in ips {
            let addr = std::net::SocketAddr::new(ip, self.port);
            match tokio::time::timeout(self.connect_timeout, TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => {
                    let _ = stream.set_nodelay(true);
                    return Ok(stream);
                }
                Ok(Err(e)) => last = format!("connecting to {addr}: {e}"),
                Err(_) => {
                    last = format!(
                        "connecting to {addr}: timed out after {:?}",
                        self.connect_timeout
                    )
                }
            }
        }
        Err(SendError::Connect(last))
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
