//! A webhook receiver (PagerDuty-, Slack- or generic-webhook-shaped): records every POST with
//! its headers and JSON body; can go down (connections refused) and come back on the same port,
//! or answer errors with `Retry-After`. Optionally appends what it receives to a log file.

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Full};

use crate::serve::{Running, serve};

/// One request the receiver took.
#[derive(Debug, Clone)]
pub struct Received {
    pub at: Instant,
    pub path: String,
    /// Lower-case header names.
    pub headers: HashMap<String, String>,
    pub raw: Bytes,
    pub body: serde_json::Value,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}

#[derive(Default)]
struct State {
    received: Vec<Received>,
    /// Status to answer with; 202 when unset.
    answer: Option<(u16, Option<u64>)>,
    log: Option<PathBuf>,
}

pub struct Receiver {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    running: Option<Running>,
}

fn lock(s: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

impl Receiver {
    /// Starts on a free loopback port.
    pub async fn start() -> std::io::Result<Receiver> {
        Receiver::start_on(SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    pub async fn start_on(addr: SocketAddr) -> std::io::Result<Receiver> {
        let mut r = Receiver {
            addr,
            state: Arc::default(),
            running: None,
        };
        r.up().await?;
        Ok(r)
    }

    /// Also appends every request, one JSON line each, to `path`.
    pub fn log_to(&self, path: PathBuf) {
        lock(&self.state).log = Some(path);
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Stops listening: new connections are refused, open ones closed.
    pub fn down(&mut self) {
        self.running = None;
    }

    /// Listens again on the same address.
    pub async fn up(&mut self) -> std::io::Result<()> {
        let state = self.state.clone();
        let running = serve(self.addr, move |req| {
            let state = state.clone();
            async move {
                let path = req.uri().path().to_owned();
                let headers = req
                    .headers()
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.as_str().to_owned(),
                            v.to_str().unwrap_or_default().to_owned(),
                        )
                    })
                    .collect();
                let raw = req
                    .into_body()
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                let body = serde_json::from_slice(&raw).unwrap_or(serde_json::Value::Null);
                let mut st = lock(&state);
                if let Some(path) = &st.log
                    && let Ok(mut f) = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(path)
                {
                    let _ = writeln!(f, "{}", serde_json::json!({ "path": path.display().to_string(), "headers": &headers, "body": &body }));
                }
                st.received.push(Received {
                    at: Instant::now(),
                    path,
                    headers,
                    raw,
                    body,
                });
                let (status, retry_after) = st.answer.unwrap_or((202, None));
                let mut resp = Response::builder()
                    .status(StatusCode::from_u16(status).unwrap_or(StatusCode::ACCEPTED));
                if let Some(s) = retry_after {
                    resp = resp.header("retry-after", s.to_string());
                }
                resp.body(Full::new(Bytes::from_static(b"{\"status\":\"success\"}")))
                    .unwrap_or_default()
            }
        })
        .await?;
        self.addr = running.addr;
        self.running = Some(running);
        Ok(())
    }

    /// Answers every request with `status` (and `Retry-After: secs`); `None` restores 202.
    pub fn answer_with(&self, answer: Option<(u16, Option<u64>)>) {
        lock(&self.state).answer = answer;
    }

    pub fn received(&self) -> Vec<Received> {
        lock(&self.state).received.clone()
    }

    /// Requests taken, the first of each `Idempotency-Key` only (as a receiver that
    /// deduplicates would keep them).
    pub fn distinct(&self) -> Vec<Received> {
        let mut seen = std::collections::HashSet::new();
        self.received()
            .into_iter()
            .filter(|r| match r.header("idempotency-key") {
                Some(k) => seen.insert(k.to_owned()),
                None => true,
            })
            .collect()
    }
}
