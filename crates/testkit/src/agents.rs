//! Simulated agents: lightweight stand-ins for gateways that speak the real agent protocol
//! (register, long-poll for the desired version, report once a second), for scale tests and
//! propagation benchmarks. "Applying" a version is recording when it arrived.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rampart_api::{ApiClient, ApplyResult, RegisterRequest, Report};

/// When each agent received each version.
type Arrivals = Arc<Mutex<HashMap<String, Vec<Instant>>>>;

pub struct SimulatedFleet {
    arrivals: Arrivals,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    size: usize,
}

impl SimulatedFleet {
    /// Starts `n` agents in `env`; returns once all have registered (or `within` passed).
    /// `control` may list several replicas' URLs (comma-separated): agent `i` starts at the
    /// `i % count`-th.
    pub async fn start(
        control: &str,
        token: &str,
        env: &str,
        n: usize,
        within: Duration,
    ) -> SimulatedFleet {
        let arrivals: Arrivals = Arc::default();
        let registered = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let prefix = format!("sim-{:08x}", fastrand::u32(..));
        let mut tasks = Vec::with_capacity(n);
        // Several replicas' URLs: each agent starts at a different one, spreading the fleet.
        let replicas: Vec<&str> = control.split(',').collect();
        for i in 0..n {
            let mut mine = replicas.clone();
            mine.rotate_left(i % replicas.len().max(1));
            let client = ApiClient::new(&mine.join(","), Some(token.to_owned()));
            let (arrivals, registered) = (arrivals.clone(), registered.clone());
            let reg = RegisterRequest {
                instance: format!("{prefix}-{i}"),
                environment: env.to_owned(),
                zone: format!("z{}", i % 3),
                build: "simulated".into(),
            };
            tasks.push(tokio::spawn(async move {
                let (wait, client) = loop {
                    match client.register(&reg).await {
                        Ok(r) => {
                            let wait = Duration::from_millis(r.poll_wait_ms);
                            break (wait, client.for_instance(&r.credential));
                        }
                        Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                    }
                };
                registered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let mut current: Option<rampart_api::VersionId> = None;
                let mut last_report = Instant::now() - Duration::from_secs(1);
                loop {
                    if let Ok(d) = client
                        .desired(
                            &reg.instance,
                            current.as_ref().map(|v| v.as_str()),
                            None,
                            None,
                            wait.min(Duration::from_secs(1)),
                        )
                        .await
                        && let Some(v) = d.version.clone()
                        && d.version != current
                    {
                        arrivals
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .entry(v.to_string())
                            .or_default()
                            .push(Instant::now());
                        current = d.version;
                        let report = Report {
                            applied: current.clone(),
                            result: Some(ApplyResult::Applied { version: v }),
                            ..Report::default()
                        };
                        let _ = client.report(&reg.instance, &report).await;
                        last_report = Instant::now();
                    }
                    if last_report.elapsed() >= Duration::from_secs(1) {
                        let report = Report {
                            applied: current.clone(),
                            ..Report::default()
                        };
                        let _ = client.report(&reg.instance, &report).await;
                        last_report = Instant::now();
                    }
                }
            }));
        }
        let start = Instant::now();
        while registered.load(std::sync::atomic::Ordering::Relaxed) < n && start.elapsed() < within
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        SimulatedFleet {
            arrivals,
            tasks,
            size: n,
        }
    }

    /// Forgets the recorded arrivals of a version (to time a later change back to it).
    pub fn forget(&self, version: &str) {
        self.arrivals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(version);
    }

    pub fn size(&self) -> usize {
        self.size
    }

    /// Arrival times of `version`, relative to `since`, sorted; waits until all agents have it
    /// or `within` passes.
    pub async fn arrivals(&self, version: &str, since: Instant, within: Duration) -> Vec<Duration> {
        let start = Instant::now();
        loop {
            let got = self
                .arrivals
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(version)
                .cloned()
                .unwrap_or_default();
            if got.len() >= self.size || start.elapsed() >= within {
                let mut d: Vec<Duration> = got
                    .iter()
                    .map(|t| t.saturating_duration_since(since))
                    .collect();
                d.sort();
                return d;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl Drop for SimulatedFleet {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}
