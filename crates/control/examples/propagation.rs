//! Propagation benchmark: from `rollback` to every simulated agent holding the version.
//!
//!     cargo build --release -p rampart
//!     cargo run --release -p rampart-control --example propagation -- 1000 3000 10000
//!     cargo run --release -p rampart-control --example propagation -- --replicas 3 10000
//!
//! The control plane runs as `rampart control` processes (the binary at `RAMPART_BIN`, default
//! `target/release/rampart`): one on a temporary SQLite store, or with `--replicas K` K replicas
//! on a PostgreSQL server of the benchmark's own (initdb into a temporary folder). N simulated
//! agents (real protocol, real HTTP on loopback) run in this process, spread over the replicas.
//! For each N: push two versions, deploy both once, then time five rollbacks (alternating, sent
//! to a replica the first agent does not start at) until every agent has the version. Prints
//! p50, p99 and max arrival, and the slowest answer to the rollback request itself.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rampart_api::ApiClient;
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

/// Control-plane processes, killed when dropped.
struct Processes(Vec<Child>);

impl Drop for Processes {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Processes {
    /// CPU time (user + system, milliseconds) and resident memory (KiB) of every process,
    /// from `/proc`.
    async fn usage(&self) -> (u64, u64) {
        let (mut cpu, mut rss) = (0, 0);
        // Clock ticks per second: 100 on Linux unless the kernel was built otherwise.
        const TICKS: u64 = 100;
        for c in &self.0 {
            let pid = c.id();
            if let Ok(stat) = tokio::fs::read_to_string(format!("/proc/{pid}/stat")).await
                && let Some(after) = stat.rsplit_once(')').map(|(_, a)| a)
            {
                let fields: Vec<&str> = after.split_whitespace().collect();
                // utime and stime are fields 14 and 15 of stat; 12 and 13 after the name.
                let t = |i: usize| {
                    fields
                        .get(i)
                        .and_then(|v| v.parse::<u64>().ok())
                        .unwrap_or(0)
                };
                cpu += (t(11) + t(12)) * 1000 / TICKS;
            }
            if let Ok(status) = tokio::fs::read_to_string(format!("/proc/{pid}/status")).await {
                rss += status
                    .lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.split_whitespace().next())
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
        (cpu, rss)
    }
}

fn free_port() -> u16 {
    rampart_testkit::ports::free_loopback_addr()
        .expect("free port")
        .port()
}

/// A bootstrap token of `role` from `DATA/tokens.json`, once the control plane wrote it.
async fn token(data: &std::path::Path, role: &str) -> String {
    for _ in 0..200 {
        if let Ok(bytes) = tokio::fs::read(data.join("tokens.json")).await
            && let Ok(list) = serde_json::from_slice::<Vec<serde_json::Value>>(&bytes)
            && let Some(t) = list.iter().find(|t| t["role"] == role)
        {
            return t["token"].as_str().unwrap_or_default().to_owned();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no tokens.json in {}", data.display());
}

/// Starts the control plane for `n` agents: `replicas` processes on `database`, or one on
/// SQLite in `data`. Returns the processes and their URLs.
async fn control(
    bin: &str,
    data: &std::path::Path,
    n: usize,
    replicas: usize,
    database: Option<&str>,
) -> (Processes, Vec<String>) {
    let cap = (4 * n + 64).to_string();
    let mut children = vec![];
    let mut urls = vec![];
    for i in 0..replicas.max(1) {
        let port = free_port();
        let mut cmd = Command::new(bin);
        cmd.args(["control", "--listen", &format!("127.0.0.1:{port}")])
            .arg("--data")
            .arg(data)
            .args(["--environments", "production"])
            // Every simulated agent connects from 127.0.0.1: lift the caps.
            .args([
                "--max-connections",
                &cap,
                "--max-connections-per-client",
                &cap,
            ])
            .stdout(Stdio::null())
            .stderr(
                std::fs::File::create(data.join(format!("r{i}.log")))
                    .map(Stdio::from)
                    .unwrap_or(Stdio::null()),
            )
            .env("RUST_LOG", "warn");
        if let Some(url) = database {
            cmd.args(["--database", url, "--replica", &format!("r{i}")]);
        }
        children.push(cmd.spawn().expect("start rampart control (build it first)"));
        urls.push(format!("http://127.0.0.1:{port}"));
        if i == 0 {
            // The first writes the bootstrap tokens the others read.
            token(data, "operator").await;
        }
    }
    (Processes(children), urls)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let replicas = args
        .iter()
        .position(|a| a == "--replicas")
        .and_then(|i| args.get(i + 1))
        .and_then(|k| k.parse::<usize>().ok())
        .unwrap_or(0);
    let sizes: Vec<usize> = args
        .iter()
        .enumerate()
        .filter(|(i, _)| *i == 0 || args[i - 1] != "--replicas")
        .filter_map(|(_, a)| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![10, 100, 1000]
    } else {
        sizes
    };
    let bin = std::env::var("RAMPART_BIN").unwrap_or_else(|_| "target/release/rampart".into());
    let store = match replicas {
        0 => "one process, SQLite".to_owned(),
        k => format!("{k} replicas, PostgreSQL"),
    };
    let mut costs: Vec<String> = vec![];
    println!(
        "| control plane | agents | rollbacks | p50 ms | p99 ms | max ms (100% received) | rollback answered, max ms |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for n in sizes {
        let data =
            std::env::temp_dir().join(format!("rampart-propagation-{}-{n}", std::process::id()));
        let _ = tokio::fs::remove_dir_all(&data).await;
        tokio::fs::create_dir_all(&data).await.expect("dir");
        // A fresh PostgreSQL server per size, as a fresh SQLite file.
        let server = match replicas {
            0 => None,
            _ => Some(
                rampart_testkit::postgres::PostgresServer::start()
                    .await
                    .expect("a PostgreSQL server"),
            ),
        };
        let database = server.as_ref().map(|s| s.url());
        let (processes, urls) = control(&bin, &data, n, replicas, database.as_deref()).await;
        let all = urls.join(",");
        let op = ApiClient::new(&all, Some(token(&data, "operator").await));
        let approver = ApiClient::new(&all, Some(token(&data, "approver").await));
        let agent = token(&data, "agent").await;
        let mut a = None;
        for _ in 0..100 {
            if let Ok(r) = op.push(&doc(1000), "a").await {
                a = Some(r.version.id);
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let a = a.expect("the control plane never answered");
        let b = op.push(&doc(2000), "b").await.expect("push").version.id;
        // A deploy goes everywhere at once and passes without traffic: what is timed is the
        // rollback, not a release.
        op.set_policy(
            "production",
            "waves:\n  - percent: 100\n    bake: 1s\ngates:\n  min_requests: 0\n",
        )
        .await
        .expect("policy");
        eprintln!("starting {n} simulated agents…");
        let fleet =
            SimulatedFleet::start(&all, &agent, "production", n, Duration::from_secs(120)).await;
        // Both versions run in production once (a rollback goes only to a version that did).
        for v in [&b, &a] {
            approver
                .deploy("production", v, Some("benchmark setup".into()))
                .await
                .expect("deploy");
            let _ = fleet
                .arrivals(v, Instant::now(), Duration::from_secs(60))
                .await;
            // Until it is production's last-known-good (the release, if any, has ended).
            for _ in 0..600 {
                let envs = op.environments().await.unwrap_or_default();
                if envs.iter().any(|e| e.last_known_good.as_ref() == Some(v)) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        // Rollbacks go to the last replica: most agents reach the leader through another one.
        let rollback_to = ApiClient::new(
            urls.last().map(String::as_str).unwrap_or_default(),
            Some(token(&data, "operator").await),
        );
        // The fleet at rest (long-polling, reporting each second): the control plane's cost.
        let (cpu_before, _) = processes.usage().await;
        let rest = Duration::from_secs(5);
        tokio::time::sleep(rest).await;
        let (cpu_after, rss) = processes.usage().await;
        let busy = (cpu_after - cpu_before) as f64 / rest.as_millis() as f64;
        eprintln!(
            "  at rest: the control plane used {:.1}% of a core ({:.2} ms of CPU a second per agent), {} MiB resident ({:.1} KiB per agent)",
            busy * 100.0,
            busy * 1000.0 / n as f64,
            rss / 1024,
            rss as f64 / n as f64
        );
        costs.push(format!(
            "| {store} | {n} | {:.1}% | {:.3} | {} | {:.1} |",
            busy * 100.0,
            busy * 1000.0 / n as f64,
            rss / 1024,
            rss as f64 / n as f64
        ));
        let mut all_arrivals = Vec::new();
        let mut worst = Duration::ZERO;
        let mut answered = Duration::ZERO;
        let rounds = 5;
        for round in 0..rounds {
            // Alternate between the two versions, so every rollback is a change for every agent.
            let to = if round % 2 == 0 { &b } else { &a };
            fleet.forget(to);
            let t0 = Instant::now();
            // A rollback that is not answered in time is the finding, not a crash.
            if let Err(e) = rollback_to.rollback("production", Some(to.clone())).await {
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
            all_arrivals.extend(arrivals);
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        all_arrivals.sort();
        println!(
            "| {store} | {n} | {rounds} | {:.1} | {:.1} | {:.1} | {:.1} |",
            pct(&all_arrivals, 0.5).as_secs_f64() * 1000.0,
            pct(&all_arrivals, 0.99).as_secs_f64() * 1000.0,
            worst.as_secs_f64() * 1000.0,
            answered.as_secs_f64() * 1000.0
        );
        drop(fleet);
        drop(processes);
        drop(server);
        if std::env::var_os("KEEP").is_none() {
            let _ = tokio::fs::remove_dir_all(&data).await;
        }
    }
    println!(
        "\n| control plane | agents | CPU at rest (one core = 100%) | ms of CPU a second per agent | resident MiB (all its processes) | KiB per agent |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for c in costs {
        println!("{c}");
    }
}
