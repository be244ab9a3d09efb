//! A raw-TCP HTTP/1.1 backend that records each request head byte for byte (request line and
//! headers exactly as they arrived), so tests see what an upstream really receives: a hyper
//! server would hide the request-target's form and normalize headers.
//!
//! Answers every request `200` with the body `ok`, on a kept-alive connection. Request bodies
//! are read by `Content-Length` (chunked bodies are not supported: a test that sends one gets
//! the connection closed).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const MAX_HEAD: usize = 64 * 1024;

/// One request as received.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The request line and headers, up to and including the blank line.
    pub head: String,
    pub body_len: usize,
}

impl Recorded {
    /// The request line: `GET /path HTTP/1.1`.
    pub fn request_line(&self) -> &str {
        self.head.split("\r\n").next().unwrap_or_default()
    }

    /// The request target (second word of the request line).
    pub fn target(&self) -> &str {
        self.request_line().split(' ').nth(1).unwrap_or_default()
    }

    /// Every value of a header (name compared without case), in order.
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        self.head
            .split("\r\n")
            .skip(1)
            .filter_map(|line| line.split_once(':'))
            .filter(|(n, _)| n.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
            .collect()
    }
}

pub struct Recorder {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Recorded>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Recorder {
    pub async fn start() -> std::io::Result<Recorder> {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr()?;
        let seen: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let s = seen.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, s.clone()));
            }
        });
        Ok(Recorder { addr, seen, task })
    }

    /// Everything received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Forgets what was received.
    pub fn clear(&self) {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

async fn serve(mut stream: TcpStream, seen: Arc<Mutex<Vec<Recorded>>>) {
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    loop {
        // Read until the end of a head.
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if buf.len() > MAX_HEAD {
                return;
            }
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(chunk.get(..n).unwrap_or_default()),
            }
        };
        let head = String::from_utf8_lossy(buf.get(..head_end).unwrap_or_default()).into_owned();
        let rec = Recorded { head, body_len: 0 };
        if !rec.header_values("transfer-encoding").is_empty() {
            return;
        }
        let len: usize = rec
            .header_values("content-length")
            .first()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        buf.drain(..head_end);
        while buf.len() < len {
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(chunk.get(..n).unwrap_or_default()),
            }
        }
        buf.drain(..len);
        seen.lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Recorded {
                body_len: len,
                ..rec
            });
        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: text/plain\r\n\r\nok";
        if stream.write_all(answer).await.is_err() {
            return;
        }
    }
}
