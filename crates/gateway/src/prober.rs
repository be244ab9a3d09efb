//! Synthetic probes: while this instance is in the cohort of a release whose policy lists
//! probes, it sends them through its own listener, so an environment without users still gets
//! judged. Each request carries this process's probe secret (`x-rampart-probe`), which the proxy
//! removes and uses to count the request apart from user traffic; the answers are tallied here
//! and reported to the control plane as `Report.probes`, which joins them to the gates.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rampart_api::{Probe, ProbeCounts};

/// The header a probe request carries its secret in.
pub const PROBE_HEADER: &str = "x-rampart-probe";

/// How long one probe may take before it counts as unexpected.
const PROBE_DEADLINE: Duration = Duration::from_secs(5);

/// Answers since the prober started (cumulative; the report sends differences).
#[derive(Default)]
pub struct Tally {
    sent: AtomicU64,
    unexpected: AtomicU64,
}

impl Tally {
    pub fn reading(&self) -> ProbeCounts {
        ProbeCounts {
            sent: self.sent.load(Ordering::Relaxed),
            unexpected: self.unexpected.load(Ordering::Relaxed),
        }
    }
}

/// The probes running now.
pub struct Prober {
    secret: Arc<str>,
    tally: Arc<Tally>,
    running: Vec<Probe>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    client: Client<HttpConnector, Empty<Bytes>>,
}

impl Prober {
    pub fn new(secret: Arc<str>) -> Prober {
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(PROBE_DEADLINE));
        Prober {
            secret,
            tally: Arc::new(Tally::default()),
            running: vec![],
            tasks: vec![],
            client: Client::builder(TokioExecutor::new()).build(http),
        }
    }

    pub fn tally(&self) -> Arc<Tally> {
        self.tally.clone()
    }

    /// How many probes run now.
    pub fn running(&self) -> usize {
        self.running.len()
    }

    /// Runs exactly `probes` against `target` (restarting them only when the list changes);
    /// an empty list, or no plain listener to send through, stops them all.
    pub fn set(&mut self, probes: Vec<Probe>, target: Option<SocketAddr>) {
        if probes == self.running {
            return;
        }
        for t in self.tasks.drain(..) {
            t.abort();
        }
        self.running = probes;
        let Some(target) = target else {
            if !self.running.is_empty() {
                tracing::warn!("probes need a listener without TLS to send through; none sent");
            }
            return;
        };
        for probe in &self.running {
            tracing::info!(probe = %probe.name, rate = probe.per_second, %target, "probing");
            self.tasks.push(tokio::spawn(run(
                self.client.clone(),
                probe.clone(),
                target,
                self.secret.clone(),
                self.tally.clone(),
            )));
        }
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

async fn run(
    client: Client<HttpConnector, Empty<Bytes>>,
    probe: Probe,
    target: SocketAddr,
    secret: Arc<str>,
    tally: Arc<Tally>,
) {
    let period = Duration::from_millis(1000 / u64::from(probe.per_second.clamp(1, 50)));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let (client, probe, secret, tally) =
            (client.clone(), probe.clone(), secret.clone(), tally.clone());
        // Each probe on its own, so a slow answer does not lower the rate.
        tokio::spawn(async move {
            let ok = tokio::time::timeout(PROBE_DEADLINE, once(&client, &probe, target, &secret))
                .await
                .unwrap_or(false);
            tally.sent.fetch_add(1, Ordering::Relaxed);
            if !ok {
                tally.unexpected.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
}

/// Sends one probe; true when the answer has the expected status.
async fn once(
    client: &Client<HttpConnector, Empty<Bytes>>,
    probe: &Probe,
    target: SocketAddr,
    secret: &str,
) -> bool {
    let mut req = http::Request::builder()
        .method(probe.method.as_str())
        .uri(format!("http://{target}{}", probe.path))
        .header(PROBE_HEADER, secret);
    if let Some(host) = &probe.host {
        req = req.header(http::header::HOST, host.as_str());
    }
    for (k, v) in &probe.headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let Ok(req) = req.body(Empty::new()) else {
        return false;
    };
    match client.request(req).await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            // Read the body so the connection is reused.
            let _ = resp.into_body().collect().await;
            status == probe.expect_status
        }
        Err(e) => {
            tracing::debug!(probe = %probe.name, error = %e, "probe got no answer");
            false
        }
    }
}
