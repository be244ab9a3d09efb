//! Propagation benchmark: from `rollback` to every simulated agent holding the version.
//!
//!     cargo run --release -p rampart-control --example propagation -- 10 100 1000
//!
//! A control plane on a temporary SQLite file and N simulated agents (real protocol, real HTTP
//! on loopback) in one process; for each N: push two versions, deploy one, then time a rollback
//! to the other until every agent has received it. Five rollbacks per N; prints p50, p99, max.

use std::time::{Duration, Instant};

use rampart_api::ApiClient;
use rampart_control::tokens::{Role, TokenEntry, Tokens};
use rampart_testkit::agents::SimulatedFleet;

fn doc(timeout_ms: u64) -> String {
    format!(
        "listeners: [{{ name: public, address: \"127.0.0.1:8080\" }}]\nupstreams: [{{ name: b, endpoints: [\"127.0.0.1:9000\"] }}]\nroutes: [{{ name: r, upstream: b, timeout: {timeout_ms}ms }}]\n"
    )
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![10, 100, 1000]
    } else {
        sizes
    };
    println!(
        "| agents | rollbacks | p50 ms | p99 ms | max ms (100% received) | rollback answered, max ms |"
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    for n in sizes {
        let dir =
            std::env::temp_dir().join(format!("rampart-propagation-{}-{n}", std::process::id()));
        let _ = tokio::fs::remove_dir_all(&dir).await;
        tokio::fs::create_dir_all(&dir).await.expect("dir");
        let tokens = Tokens::from_entries(&[
            TokenEntry::new("op", Role::Operator, "op"),
            TokenEntry::new("amir", Role::Approver, "ap"),
            TokenEntry::new("fleet", Role::Agent, "agent"),
        ]);
        // Every simulated agent connects from 127.0.0.1: lift the per-client cap.
        let limits = rampart_control::listener::Limits {
            connections: 4 * n + 64,
            per_client: 4 * n + 64,
            ..Default::default()
        };
        let server = rampart_control::spawn_with(
            &dir,
            &["production".into()],
            tokens,
            "127.0.0.1:0".parse().expect("addr"),
            // Releases off: deploys and rollbacks set the version everywhere at once.
            |c| c.with_limits(limits).with_plan(None),
        )
        .await
        .expect("control plane");
        let url = server.url();
        let op = ApiClient::new(&url, Some("op".into()));
        let approver = ApiClient::new(&url, Some("ap".into()));
        let a = op.push(&doc(1000), "a").await.expect("push").version.id;
        let b = op.push(&doc(2000), "b").await.expect("push").version.id;
        eprintln!("starting {n} simulated agents…");
        let fleet =
            SimulatedFleet::start(&url, "agent", "production", n, Duration::from_secs(60)).await;
        // Both versions run in production once (a rollback goes only to a version that did).
        for v in [&b, &a] {
            approver
                .deploy("production", v, Some("benchmark setup".into()))
                .await
                .expect("deploy");
            let _ = fleet
                .arrivals(v, Instant::now(), Duration::from_secs(30))
                .await;
            tokio::time::sleep(Duration::from_millis(1500)).await;
        }
        let mut all = Vec::new();
        let mut worst = Duration::ZERO;
        let mut answered = Duration::ZERO;
        let rounds = 5;
        for round in 0..rounds {
            // Alternate between the two versions, so every rollback is a change for every agent.
            let to = if round % 2 == 0 { &b } else { &a };
            fleet.forget(to);
            let t0 = Instant::now();
            // A rollback that is not answered in time is the finding, not a crash.
            if let Err(e) = op.rollback("production", Some(to.clone())).await {
                eprintln!(
                    "  the rollback request failed after {:?}: {e}",
                    t0.elapsed()
                );
            }
            answered = answered.max(t0.elapsed());
            let arrivals = fleet.arrivals(to, t0, Duration::from_secs(30)).await;
            eprintln!(
                "  {n} agents, rollback {}: {}/{} received, max {:?}",
                round + 1,
                arrivals.len(),
                n,
                arrivals.last()
            );
            if let Some(last) = arrivals.last() {
                worst = worst.max(*last);
            }
            all.extend(arrivals);
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        all.sort();
        println!(
            "| {n} | {rounds} | {:.1} | {:.1} | {:.1} | {:.1} |",
            pct(&all, 0.5).as_secs_f64() * 1000.0,
            pct(&all, 0.99).as_secs_f64() * 1000.0,
            worst.as_secs_f64() * 1000.0,
            answered.as_secs_f64() * 1000.0
        );
        drop(fleet);
        server.kill().await;
        let _ = tokio::fs::remove_dir_all(&dir).await;
    }
}
