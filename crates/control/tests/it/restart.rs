//! A rolling restart of a five-gateway fleet under steady load, behind a balancer that follows
//! each gateway's `/readyz` (and its warm-up weight), as a load balancer in front of a fleet
//! does: no request is lost, never more than one batch is out at a time, every gateway restarts,
//! and a restarted gateway ramps up instead of taking full load at once.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::StatusCode;
use rampart_api::ApiClient;
use rampart_gateway::watchdog::WatchdogSettings;
use rampart_testkit::EchoServer;
use rampart_testkit::client;

use crate::common;
use common::{Agent, document, first_version, free_addr, start_agent_at, temp, wait_until};

/// `n` gateways (`prefix`0, `prefix`1, …) serving a first version whose upstream is `backend`,
/// every one of them reported running it. Returns the gateways, their agents and the version.
async fn serving_fleet(
    control: &str,
    backend: SocketAddr,
    prefix: &str,
    n: usize,
) -> (
    Vec<(SocketAddr, SocketAddr)>,
    Vec<Agent>,
    rampart_api::VersionId,
) {
    let op = ApiClient::new(control, Some("op".into()));
    let approver = ApiClient::new(control, Some("ap".into()));
    let (gateways, agents) = start_gateways(control, prefix, n);
    let listens: Vec<SocketAddr> = gateways.iter().map(|g| g.0).collect();
    let doc = document(backend, 2000);
    let v1 = first_version(&op, &approver, &doc, &listens, Duration::from_secs(10)).await;
    let all_run_it = wait_until(Duration::from_secs(10), async || {
        op.environments().await.is_ok_and(|e| {
            let running = e[0].instances.iter();
            running.filter(|i| i.applied.as_ref() == Some(&v1)).count() == n
        })
    })
    .await;
    assert!(all_run_it, "not every gateway reported {}", v1.short());
    (gateways, agents, v1)
}

/// `n` production gateways named `{prefix}0`…, agents of `control`, each with its own admin
/// listener (a balancer reads its `/readyz`): their (listen, admin) addresses, and the agents.
fn start_gateways(
    control: &str,
    prefix: &str,
    n: usize,
) -> (Vec<(SocketAddr, SocketAddr)>, Vec<Agent>) {
    let gateways: Vec<(SocketAddr, SocketAddr)> =
        (0..n).map(|_| (free_addr(), free_addr())).collect();
    let agents = gateways
        .iter()
        .enumerate()
        .map(|(i, (listen, admin))| {
            start_agent_at(
                control,
                "production",
                &format!("{prefix}{i}"),
                temp("gw"),
                *listen,
                *admin,
                WatchdogSettings::default(),
            )
        })
        .collect();
    (gateways, agents)
}

#[derive(Clone, Copy, Default)]
struct View {
    ready: bool,
    weight: f64,
}

#[tokio::test]
async fn a_rolling_restart_under_load_loses_no_request() {
    let backend = EchoServer::start("b").await.expect("backend");
    let control = common::production("restart", |c| {
        c.with_plan(None).with_tick(Duration::from_millis(200))
    })
    .await;
    let op = ApiClient::new(&control.url(), Some("op".into()));
    let (gateways, agents, _) = serving_fleet(&control.url(), backend.addr, "p", 5).await;

    // The balancer: polls every gateway's /readyz every 50 ms.
    let views: Arc<Mutex<Vec<View>>> = Arc::new(Mutex::new(vec![View::default(); 5]));
    let stop = Arc::new(AtomicBool::new(false));
    let max_out = Arc::new(AtomicU64::new(0));
    let ramps: Arc<Mutex<HashMap<usize, f64>>> = Arc::default();
    let balancer = {
        let (views, stop, max_out, ramps) =
            (views.clone(), stop.clone(), max_out.clone(), ramps.clone());
        let admins: Vec<SocketAddr> = gateways.iter().map(|g| g.1).collect();
        tokio::spawn(async move {
            let c = client::http1();
            let mut seen_draining = [false; 5];
            while !stop.load(Ordering::Relaxed) {
                let mut fresh = vec![];
                for (i, admin) in admins.iter().enumerate() {
                    let answer = client::get(&c, &format!("http://{admin}/readyz")).await;
                    let view = match answer {
                        Ok(a) if a.status == StatusCode::OK => View {
                            ready: true,
                            weight: a
                                .headers
                                .get("x-rampart-weight")
                                .and_then(|v| v.to_str().ok())
                                .and_then(|v| v.parse().ok())
                                .unwrap_or(1.0),
                        },
                        _ => {
                            seen_draining[i] = true;
                            View::default()
                        }
                    };
                    if seen_draining[i] && view.ready {
                        // First readings after a restart: the advertised warm-up weight.
                        ramps.lock().expect("lock").entry(i).or_insert(view.weight);
                    }
                    fresh.push(view);
                }
                let out = fresh.iter().filter(|v| !v.ready).count() as u64;
                max_out.fetch_max(out, Ordering::Relaxed);
                *views.lock().expect("lock") = fresh;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Steady load through the balancer: weighted choice among ready gateways.
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let mut load = vec![];
    for _ in 0..4 {
        let (views, stop, ok, failed) = (views.clone(), stop.clone(), ok.clone(), failed.clone());
        let listens: Vec<SocketAddr> = gateways.iter().map(|g| g.0).collect();
        load.push(tokio::spawn(async move {
            let c = client::http1();
            while !stop.load(Ordering::Relaxed) {
                let pick = {
                    let v = views.lock().expect("lock").clone();
                    let total: f64 = v.iter().filter(|x| x.ready).map(|x| x.weight).sum();
                    let mut r = fastrand::f64() * total;
                    v.iter()
                        .enumerate()
                        .filter(|(_, x)| x.ready)
                        .find_map(|(i, x)| {
                            r -= x.weight;
                            (r <= 0.0).then_some(i)
                        })
                };
                let Some(i) = pick else {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                };
                match client::get(&c, &format!("http://{}/x", listens[i])).await {
                    Ok(a) if a.status == StatusCode::OK => ok.fetch_add(1, Ordering::Relaxed),
                    other => {
                        eprintln!("lost: gateway {i}: {:?}", other.map(|a| a.status));
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Bad input first: refused, nothing starts.
    assert!(op.restart("production", "0%").await.is_err());
    assert!(op.restart("staging", "20%").await.is_err());
    let started = op.restart("production", "20%").await.expect("restart");
    assert_eq!(started.batch_size, 1);
    assert_eq!(started.batches.len(), 5);
    assert!(
        op.restart("production", "20%").await.is_err(),
        "a second restart while one runs"
    );
    let done = wait_until(Duration::from_secs(60), async || {
        op.restart_status("production")
            .await
            .is_ok_and(|s| s.state != "running")
    })
    .await;
    let status = op.restart_status("production").await.expect("status");
    assert!(done && status.state == "succeeded", "{status:?}");
    assert_eq!(status.restarted.len(), 5);
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for l in load {
        l.await.expect("load");
    }
    balancer.await.expect("balancer");

    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    println!(
        "rolling restart under load: {ok} requests served, {failed} lost; at most {} gateway(s) out at once",
        max_out.load(Ordering::Relaxed)
    );
    assert_eq!(failed, 0, "requests were lost during the rolling restart");
    assert!(ok > 500, "too little load to mean anything: {ok}");
    assert_eq!(
        max_out.load(Ordering::Relaxed),
        1,
        "more gateways were out at once than the batch allows"
    );
    let ramps = ramps.lock().expect("lock").clone();
    assert_eq!(
        ramps.len(),
        5,
        "every gateway restarted and came back: {ramps:?}"
    );
    assert!(
        ramps.values().all(|w| *w < 0.5),
        "restarted gateways must ramp up, not take full load at once: {ramps:?}"
    );
    let events = op.events(0).await.expect("events");
    assert_eq!(
        events
            .iter()
            .filter(|e| e.kind == "restart.batch_done")
            .count(),
        5
    );
    assert!(events.iter().any(|e| e.kind == "restart.completed"));
    for a in agents {
        a.stop().await;
    }
    control.kill().await;
}

/// A rolling restart survives the control plane: killed after the first batch, restarted on the
/// same data, it goes on with the next batch and completes, and no batch is told twice.
#[tokio::test]
async fn a_rolling_restart_survives_a_control_plane_restart() {
    let backend = EchoServer::start("b").await.expect("backend");
    let data = temp("restart-resume");
    let addr = free_addr();
    let envs = ["production".to_owned()];
    let spawn = || {
        rampart_control::spawn_with(&data, &envs, common::tokens(), addr, |c| {
            c.with_plan(None).with_tick(Duration::from_millis(200))
        })
    };
    let control = spawn().await.expect("control plane");
    let op = ApiClient::new(&control.url(), Some("op".into()));
    let (_, _agents, _) = serving_fleet(&control.url(), backend.addr, "q", 3).await;
    op.restart("production", "1").await.expect("restart");
    assert!(
        wait_until(Duration::from_secs(30), async || op
            .restart_status("production")
            .await
            .is_ok_and(|s| s.current >= 1))
        .await,
        "the first batch did not come back: {:?}",
        op.restart_status("production").await
    );

    control.kill().await;
    let control = spawn().await.expect("control plane, again");
    let done = wait_until(Duration::from_secs(60), async || {
        op.restart_status("production")
            .await
            .is_ok_and(|s| s.state != "running")
    })
    .await;
    let status = op.restart_status("production").await.expect("status");
    assert!(done && status.state == "succeeded", "{status:?}");
    assert_eq!(status.restarted, ["q0", "q1", "q2"], "{status:?}");

    let events = op.events(0).await.expect("events");
    let batches: Vec<i64> = events
        .iter()
        .filter(|e| e.kind == "restart.batch")
        .filter_map(|e| e.data["batch"].as_i64())
        .collect();
    assert_eq!(batches, [0, 1, 2], "each batch told once, in order");
    assert_eq!(
        events
            .iter()
            .filter(|e| e.kind == "restart.completed")
            .count(),
        1
    );
    control.kill().await;
}
