//! Steady traffic through a fleet of gateways, every request sampled: `/users/…` (authenticated
//! with a bearer token) and `/public/…`, taking turns, one worker per gateway. It stops when told
//! to or after its cap, whichever comes first; it only ever targets the addresses it is given.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;

use crate::client;

/// One request as the client saw it.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub at: Instant,
    /// Index of the gateway in the list the traffic was started with.
    pub gateway: usize,
    /// An authenticated `/users/…` request (else `/public/…`).
    pub users: bool,
    /// Answered 2xx within the deadline.
    pub ok: bool,
    pub latency: Duration,
}

/// How many requests, and how many failed, in a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub total: usize,
    pub failed: usize,
}

impl Tally {
    /// The requests sent between two instants.
    pub fn between(samples: &[Sample], from: Instant, to: Instant) -> Tally {
        let window = samples.iter().filter(|s| s.at >= from && s.at <= to);
        let (total, failed) = window.fold((0, 0), |(t, f), s| (t + 1, f + usize::from(!s.ok)));
        Tally { total, failed }
    }

    /// Failed requests as a percentage (0 when nothing was sent).
    pub fn failed_percent(&self) -> f64 {
        self.failed as f64 * 100.0 / self.total.max(1) as f64
    }
}

/// Running traffic; [`Traffic::stop`] ends it.
pub struct Traffic {
    samples: Arc<Mutex<Vec<Sample>>>,
    stop: Arc<AtomicBool>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

/// Deadline of one request.
const REQUEST_DEADLINE: Duration = Duration::from_secs(5);
/// Pause between two requests of one worker.
const PACE: Duration = Duration::from_millis(3);

impl Traffic {
    /// Starts one worker per gateway; each stops after `cap` at the latest.
    pub fn start(gateways: &[SocketAddr], token: &str, cap: Duration) -> Traffic {
        let samples: Arc<Mutex<Vec<Sample>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let workers = gateways
            .iter()
            .enumerate()
            .map(|(gateway, &addr)| {
                let (samples, stop) = (samples.clone(), stop.clone());
                let bearer = format!("Bearer {token}");
                tokio::spawn(async move {
                    let client = client::http1();
                    let began = Instant::now();
                    let mut users = false;
                    while !stop.load(Ordering::Relaxed) && began.elapsed() < cap {
                        users = !users;
                        let path = if users { "/users/me" } else { "/public/ping" };
                        let Ok(req) = http::Request::get(format!("http://{addr}{path}"))
                            .header("authorization", bearer.as_str())
                            .body(Full::new(Bytes::new()))
                        else {
                            break;
                        };
                        let at = Instant::now();
                        let ok = client::call(&client, req, REQUEST_DEADLINE)
                            .await
                            .is_ok_and(|a| a.status.is_success());
                        let sample = Sample {
                            at,
                            gateway,
                            users,
                            ok,
                            latency: at.elapsed(),
                        };
                        lock(&samples).push(sample);
                        tokio::time::sleep(PACE).await;
                    }
                })
            })
            .collect();
        Traffic {
            samples,
            stop,
            workers,
        }
    }

    /// Every sample so far.
    pub fn samples(&self) -> Vec<Sample> {
        lock(&self.samples).clone()
    }

    /// Stops every worker and waits for them; returns every sample.
    pub async fn stop(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        for w in self.workers {
            let _ = w.await;
        }
        lock(&self.samples).clone()
    }
}

fn lock(samples: &Mutex<Vec<Sample>>) -> std::sync::MutexGuard<'_, Vec<Sample>> {
    // A worker that panicked mid-push leaves a valid vector; keep using it.
    samples.lock().unwrap_or_else(|p| p.into_inner())
}
