//! A bounded load generator: a fixed number of workers sending requests until a request count
//! or a duration is reached, whichever comes first. Only for loopback targets.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Uri};
use http_body_util::Full;

use crate::client::{Client, call};

#[derive(Debug, Clone)]
pub struct LoadPlan {
    pub uri: Uri,
    pub concurrency: usize,
    /// Stop after this many requests in total.
    pub max_requests: u64,
    /// Stop after this long.
    pub max_duration: Duration,
    /// Deadline of one request.
    pub request_timeout: Duration,
    /// Extra request headers.
    pub headers: Vec<(String, String)>,
}

impl LoadPlan {
    /// A plan with no extra headers.
    pub fn new(
        uri: Uri,
        concurrency: usize,
        max_requests: u64,
        max_duration: Duration,
    ) -> LoadPlan {
        LoadPlan {
            uri,
            concurrency,
            max_requests,
            max_duration,
            request_timeout: Duration::from_secs(10),
            headers: vec![],
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> LoadPlan {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
}

#[derive(Debug, Default, Clone)]
pub struct LoadReport {
    pub sent: u64,
    /// Answers by status code; 0 for transport errors and timeouts.
    pub by_status: BTreeMap<u16, u64>,
    pub errors: Vec<String>,
    /// Latencies in microseconds, sorted.
    pub latencies_us: Vec<u64>,
    pub elapsed: Duration,
}

impl LoadReport {
    pub fn ok(&self) -> u64 {
        self.by_status
            .iter()
            .filter(|(s, _)| (200..300).contains(*s))
            .map(|(_, n)| n)
            .sum()
    }

    pub fn failed(&self) -> u64 {
        self.sent - self.ok()
    }

    pub fn percentile(&self, p: f64) -> Duration {
        if self.latencies_us.is_empty() {
            return Duration::ZERO;
        }
        let i = ((self.latencies_us.len() as f64 - 1.0) * p).round() as usize;
        Duration::from_micros(self.latencies_us[i])
    }
}

/// Runs the plan against `client` and reports.
pub async fn run(client: &Client, plan: &LoadPlan) -> LoadReport {
    let host = plan.uri.host().unwrap_or("");
    assert!(
        host == "localhost" || host.starts_with("127.") || host == "[::1]",
        "load generator only targets loopback, not {host}"
    );
    let start = Instant::now();
    let counter = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut workers = Vec::new();
    for _ in 0..plan.concurrency.max(1) {
        let client = client.clone();
        let plan = plan.clone();
        let counter = counter.clone();
        workers.push(tokio::spawn(async move {
            let mut report = LoadReport::default();
            while start.elapsed() < plan.max_duration
                && counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < plan.max_requests
            {
                let mut req = Request::get(plan.uri.clone());
                for (k, v) in &plan.headers {
                    req = req.header(k.as_str(), v.as_str());
                }
                let Ok(req) = req.body(Full::new(Bytes::new())) else {
                    break;
                };
                let t = Instant::now();
                let result = call(&client, req, plan.request_timeout).await;
                report.sent += 1;
                report.latencies_us.push(t.elapsed().as_micros() as u64);
                match result {
                    Ok(a) => *report.by_status.entry(a.status.as_u16()).or_default() += 1,
                    Err(e) => {
                        *report.by_status.entry(0).or_default() += 1;
                        if report.errors.len() < 10 {
                            report.errors.push(e.to_string());
                        }
                    }
                }
            }
            report
        }));
    }
    let mut total = LoadReport::default();
    for w in workers {
        if let Ok(r) = w.await {
            total.sent += r.sent;
            for (s, n) in r.by_status {
                *total.by_status.entry(s).or_default() += n;
            }
            total.errors.extend(r.errors);
            total.latencies_us.extend(r.latencies_us);
        }
    }
    total.latencies_us.sort_unstable();
    total.elapsed = start.elapsed();
    total
}
