//! A minimal SMTP server that accepts every message and keeps it: enough for a real SMTP
//! client (EHLO, MAIL, RCPT, DATA, QUIT) to deliver to it over loopback. Started with
//! [`SmtpSink::start_tls`] it also offers STARTTLS, with a self-signed certificate for
//! 127.0.0.1 and localhost whose PEM a client can trust.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// A message as received.
#[derive(Debug, Clone, Default)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    /// Headers and body, dot-unstuffed.
    pub data: String,
    /// Whether it arrived over TLS (after STARTTLS).
    pub tls: bool,
}

pub struct SmtpSink {
    pub addr: SocketAddr,
    mails: Arc<Mutex<Vec<Mail>>>,
    /// The certificate offered with STARTTLS, PEM (None: STARTTLS not offered).
    pub cert_pem: Option<String>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Kept = Arc<Mutex<Vec<Mail>>>;

impl SmtpSink {
    /// Plain SMTP only.
    pub async fn start() -> std::io::Result<SmtpSink> {
        Self::start_with(None, None).await
    }

    /// SMTP that offers STARTTLS.
    pub async fn start_tls() -> std::io::Result<SmtpSink> {
        let cert = rcgen::generate_simple_self_signed(vec![
            "127.0.0.1".to_string(),
            "localhost".to_string(),
        ])
        .map_err(std::io::Error::other)?;
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(
            rustls::pki_types::PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()),
        );
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .map_err(std::io::Error::other)?;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        Self::start_with(Some(acceptor), Some(cert.cert.pem())).await
    }

    async fn start_with(
        tls: Option<tokio_rustls::TlsAcceptor>,
        cert_pem: Option<String>,
    ) -> std::io::Result<SmtpSink> {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr()?;
        let mails: Kept = Arc::default();
        let kept = mails.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (kept, tls) = (kept.clone(), tls.clone());
                tokio::spawn(async move {
                    let upgrade = session(stream, &kept, tls.is_some(), false).await;
                    if let (Ok(Some(stream)), Some(acceptor)) = (upgrade, tls)
                        && let Ok(secure) = acceptor.accept(stream).await
                    {
                        let _ = session(secure, &kept, false, true).await;
                    }
                });
            }
        });
        Ok(SmtpSink {
            addr,
            mails,
            cert_pem,
            task,
        })
    }

    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    pub fn mails(&self) -> Vec<Mail> {
        self.mails.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Serves one SMTP conversation. Returns the stream when the client asked for STARTTLS (and
/// `offer_tls`), so the caller can continue it over TLS.
async fn session<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    kept: &Kept,
    offer_tls: bool,
    secure: bool,
) -> std::io::Result<Option<S>> {
    let mut stream = BufReader::new(stream);
    if !secure {
        stream.write_all(b"220 testkit ESMTP\r\n").await?;
    }
    let mut mail = Mail::default();
    let mut line = String::new();
    loop {
        line.clear();
        if stream.read_line(&mut line).await? == 0 {
            return Ok(None);
        }
        let command = line.trim_end_matches(['\r', '\n']).to_owned();
        let upper = command.to_ascii_uppercase();
        let reply: &[u8] = if upper.starts_with("EHLO") {
            if offer_tls {
                b"250-testkit\r\n250-8BITMIME\r\n250 STARTTLS\r\n"
            } else {
                b"250-testkit\r\n250 8BITMIME\r\n"
            }
        } else if upper.starts_with("STARTTLS") && offer_tls {
            stream.write_all(b"220 go ahead\r\n").await?;
            stream.flush().await?;
            return Ok(Some(stream.into_inner()));
        } else if upper.starts_with("HELO") || upper.starts_with("NOOP") {
            b"250 OK\r\n"
        } else if upper.starts_with("RSET") {
            mail = Mail::default();
            b"250 OK\r\n"
        } else if upper.starts_with("MAIL FROM:") {
            mail.from = command[10..].trim().to_owned();
            b"250 OK\r\n"
        } else if upper.starts_with("RCPT TO:") {
            mail.to.push(command[8..].trim().to_owned());
            b"250 OK\r\n"
        } else if upper.starts_with("DATA") {
            stream.write_all(b"354 go ahead\r\n").await?;
            loop {
                line.clear();
                if stream.read_line(&mut line).await? == 0 {
                    return Ok(None);
                }
                let l = line.trim_end_matches(['\r', '\n']);
                if l == "." {
                    break;
                }
                mail.data.push_str(l.strip_prefix('.').unwrap_or(l));
                mail.data.push('\n');
            }
            mail.tls = secure;
            kept.lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(std::mem::take(&mut mail));
            b"250 OK queued\r\n"
        } else if upper.starts_with("QUIT") {
            stream.write_all(b"221 bye\r\n").await?;
            return Ok(None);
        } else {
            b"502 not implemented\r\n"
        };
        stream.write_all(reply).await?;
    }
}
