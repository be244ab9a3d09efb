//! Three control-plane replicas (`rampart control --replica`) on one real PostgreSQL server, as
//! processes, with three gateways (processes, agents of all three replicas) serving a Python
//! backend under steady load. The leader is killed with SIGKILL in the middle of a release:
//! another replica takes over within the lease's life, the release goes on to the end on a
//! request sent to a follower, every gateway serves throughout, nothing in the event log is
//! lost, and every page is delivered — once, by its idempotency key.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rampart_api::{ApiClient, ChannelKind, ChannelSpec, Severity};

use crate::common::{self, Spawned, bootstrap_token, free_port};

/// The lease's life in these tests: short, so a takeover is quick to wait for.
const LEASE: &str = "3s";

struct Cluster {
    _pg: rampart_testkit::postgres::PostgresServer,
    data: std::path::PathBuf,
    database: String,
    ports: Vec<u16>,
    replicas: Vec<Option<Spawned>>,
}

impl Cluster {
    async fn start(name: &str) -> Cluster {
        let pg = rampart_testkit::postgres::PostgresServer::start()
            .await
            .expect("a PostgreSQL server");
        let data = std::env::temp_dir().join(format!("rampart-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data);
        std::fs::create_dir_all(&data).expect("dir");
        let mut c = Cluster {
            database: pg.url(),
            _pg: pg,
            data,
            ports: (0..3).map(|_| free_port()).collect(),
            replicas: vec![],
        };
        // The first writes the bootstrap tokens the others read.
        c.replicas.push(Some(c.spawn(0)));
        bootstrap_token(&c.data, "operator").await;
        for i in 1..3 {
            c.replicas.push(Some(c.spawn(i)));
        }
        c
    }

    /// Replica `i`, its log in `DATA/r{i}.log` (shown when the test fails).
    fn spawn(&self, i: usize) -> Spawned {
        let log = std::fs::File::create(self.data.join(format!("r{i}.log"))).expect("log");
        Spawned(
            Command::new(env!("CARGO_BIN_EXE_rampart"))
                .args([
                    "control",
                    "--listen",
                    &format!("127.0.0.1:{}", self.ports[i]),
                ])
                .arg("--data")
                .arg(&self.data)
                .args(["--database", &self.database, "--replica", &format!("r{i}")])
                .args(["--lease-ttl", LEASE, "--environments", "production"])
                .args(["--max-connections-per-client", "512"])
                .env("RUST_LOG", "info")
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("spawn replica"),
        )
    }

    /// The replicas' logs, for a failure's message.
    async fn logs(&self) -> String {
        let mut texts = vec![];
        for i in 0..3 {
            let path = self.data.join(format!("r{i}.log"));
            texts.push(tokio::fs::read_to_string(path).await.unwrap_or_default());
        }
        texts
            .iter()
            .enumerate()
            .map(|(i, text)| {
                let tail: Vec<&str> = text.lines().rev().take(30).collect();
                format!(
                    "--- r{i}\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn url(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.ports[i])
    }

    /// Every replica's URL, as agents and the CLI take them.
    fn all(&self) -> String {
        (0..3).map(|i| self.url(i)).collect::<Vec<_>>().join(",")
    }

    /// The replica every live one agrees leads, once they do.
    async fn leader(&self, within: Duration) -> Option<usize> {
        let client = rampart_testkit::client::http1();
        let start = Instant::now();
        while start.elapsed() < within {
            let mut views = vec![];
            for i in (0..3).filter(|i| self.replicas[*i].is_some()) {
                let answer =
                    rampart_testkit::client::get(&client, &format!("{}/v1/replica", self.url(i)))
                        .await;
                views.push(answer.ok().map(|a| a.json()));
            }
            let leaders: Vec<&serde_json::Value> = views
                .iter()
                .flatten()
                .filter(|v| v["role"] == "leader")
                .collect();
            let agreed = views.iter().all(|v| {
                v.as_ref()
                    .is_some_and(|v| leaders.len() == 1 && v["leader"] == leaders[0]["name"])
            });
            if agreed
                && let Some(name) = leaders[0]["name"].as_str()
                && let Some(i) = name.strip_prefix('r').and_then(|n| n.parse().ok())
            {
                return Some(i);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.replicas.clear();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

/// Gateway `i`, an agent of every replica, starting at replica `i mod 3`: the fleet is spread
/// over the replicas.
fn gateway(cluster: &Cluster, i: usize, agent_token: &str, listen: u16, admin: u16) -> Spawned {
    let name = format!("g{i}");
    let mut urls: Vec<String> = (0..3).map(|r| cluster.url(r)).collect();
    urls.rotate_left(i % 3);
    let log = std::fs::File::create(cluster.data.join(format!("{name}.log"))).expect("log");
    Spawned(
        Command::new(env!("CARGO_BIN_EXE_rampart"))
            .args([
                "gateway",
                "--control",
                &urls.join(","),
                "--env",
                "production",
            ])
            .args(["--instance", &name, "--token", agent_token])
            .arg("--state-dir")
            .arg(cluster.data.join(&name))
            .args(["--listen", &format!("public=127.0.0.1:{listen}")])
            .args(["--admin", &format!("127.0.0.1:{admin}")])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn gateway"),
    )
}

fn document(backend: std::net::SocketAddr, tag: &str) -> String {
    format!(
        "listeners: [{{ name: public, address: \"127.0.0.1:1\" }}]\n\
         upstreams: [{{ name: api, endpoints: [\"{backend}\"] }}]\n\
         routes: [{{ name: all-{tag}, upstream: api }}]\n"
    )
}

/// Waits until `check` holds, up to `within`.
async fn until(within: Duration, mut check: impl AsyncFnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < within {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// Alertmanager's webhook, as the control plane receives it.
async fn fire(client: &ApiClient, token: &str, fingerprint: &str) -> bool {
    let body = serde_json::json!({
        "version": "4", "status": "firing", "receiver": "rampart",
        "alerts": [{
            "status": "firing", "fingerprint": fingerprint,
            "labels": { "alertname": "Drill", "severity": "critical", "component": fingerprint },
            "annotations": { "summary": format!("drill {fingerprint}") },
            "startsAt": "2026-11-30T10:00:00Z"
        }]
    });
    let http = rampart_testkit::client::http1();
    let req = http::Request::post(format!("{}/v1/alertmanager", client.base()))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(
            body.to_string(),
        )))
        .expect("request");
    rampart_testkit::client::call(&http, req, Duration::from_secs(5))
        .await
        .is_ok_and(|a| a.status == 200)
}

#[tokio::test]
async fn the_leader_killed_mid_release_is_replaced_and_nothing_is_lost() {
    let mut cluster = Cluster::start("ha").await;
    let op_token = bootstrap_token(&cluster.data, "operator").await;
    let agent_token = bootstrap_token(&cluster.data, "agent").await;
    let op = ApiClient::new(&cluster.all(), Some(op_token.clone()));
    let approver = ApiClient::new(
        &cluster.all(),
        Some(bootstrap_token(&cluster.data, "approver").await),
    );
    common::wait_up(&op).await;
    let leader = cluster
        .leader(Duration::from_secs(15))
        .await
        .expect("one leader all replicas agree on");

    // A pager: the receiver checks idempotency keys.
    let pager = rampart_testkit::receiver::Receiver::start()
        .await
        .expect("receiver");
    op.put_channel(
        "pager",
        &ChannelSpec {
            kind: ChannelKind::Webhook,
            url: pager.url(),
            routing_key: None,
            secret: Some("s3cret".into()),
            to: vec![],
            from: None,
            severities: vec![Severity::Page, Severity::Ticket],
        },
    )
    .await
    .expect("pager channel");

    // Production: one gateway first, a pause for a person, then the rest.
    op.set_policy(
        "production",
        // Latency is not what this test is about: a loaded machine's noise must not fail a gate.
        "waves:\n  - instances: 1\n    bake: 1s\n    pause: true\n  - percent: 100\n    bake: 1s\ngates:\n  min_requests: 3\n  p99_ratio: 100\n",
    )
    .await
    .expect("policy");
    let backend = rampart_testkit::peer::Peer::python_server("path_echo.py", &[])
        .await
        .expect("python backend");
    let backend = backend_addr(&backend);
    let listens: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let admins: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let _gateways: Vec<Spawned> = (0..3)
        .map(|i| gateway(&cluster, i, &agent_token, listens[i], admins[i]))
        .collect();

    // Steady load on every gateway from here to the end; every failure is counted.
    let (stop_load, load) = steady_load(&listens);

    let v1 = op
        .push(&document(backend, "one"), "v1")
        .await
        .expect("push")
        .version
        .id;
    approver
        .deploy("production", &v1, Some("first config".into()))
        .await
        .expect("production");
    // The first version goes everywhere at once: there is nothing to roll back to.
    let everyone_on = async |v: &rampart_api::VersionId| {
        until(Duration::from_secs(30), async || {
            op.environments().await.is_ok_and(|envs| {
                envs.iter().any(|e| {
                    e.name == "production"
                        && e.instances.len() == 3
                        && e.instances.iter().all(|i| i.applied.as_ref() == Some(v))
                })
            })
        })
        .await
    };
    assert!(
        everyone_on(&v1).await,
        "v1 never reached every gateway: {:?}\n{}",
        op.environments().await,
        cluster.logs().await
    );
    let promote_all = async |client: &ApiClient, v: &rampart_api::VersionId| {
        until(Duration::from_secs(40), async || {
            let Ok(releases) = client.releases().await else {
                return false;
            };
            let Some(r) = releases
                .iter()
                .find(|r| &r.version == v && r.environment == "production")
            else {
                return false;
            };
            if r.state == "succeeded" {
                return true;
            }
            if r.reason.as_deref().is_some_and(awaits_judgement) {
                let _ = client.release_judgement(r.id, "promote", "drill").await;
            }
            false
        })
        .await
    };

    // v2 starts, and holds at its pause: the release is in flight.
    let v2 = op
        .push(&document(backend, "two"), "v2")
        .await
        .expect("push")
        .version
        .id;
    approver
        .deploy("production", &v2, Some("second config".into()))
        .await
        .expect("production");
    let paused = until(Duration::from_secs(30), async || {
        op.releases().await.is_ok_and(|rs| {
            rs.iter().any(|r| {
                r.version == v2
                    && r.environment == "production"
                    && r.reason.as_deref().is_some_and(awaits_judgement)
            })
        })
    })
    .await;
    assert!(
        paused,
        "v2 never paused after its first wave: {:?}\n{}",
        op.releases().await,
        cluster.logs().await
    );

    // Pages sent before the kill, and one sent at the moment of it.
    assert!(fire(&op, &op_token, "before-1").await);
    assert!(fire(&op, &op_token, "before-2").await);
    let events_before = op.events(0).await.expect("events");

    // SIGKILL the leader.
    let killed_at = Instant::now();
    if let Some(mut p) = cluster.replicas[leader].take() {
        p.kill().expect("kill");
        let _ = p.wait();
    }
    let survivor = (0..3).find(|i| *i != leader).expect("a survivor");
    let follower_op = ApiClient::new(&cluster.url(survivor), Some(op_token.clone()));
    // A page sent during the takeover: retried by the client until a replica leads.
    let during = until(Duration::from_secs(20), async || {
        fire(&follower_op, &op_token, "during").await
    })
    .await;
    let new_leader = cluster
        .leader(Duration::from_secs(15))
        .await
        .expect("a new leader within 15 s");
    let took_over = killed_at.elapsed();
    assert_ne!(new_leader, leader);
    assert!(took_over < Duration::from_secs(15), "{took_over:?}");
    assert!(during, "a page sent during the takeover was never accepted");

    // The release goes on, promoted through a replica that does not lead.
    let follower = (0..3)
        .find(|i| *i != leader && *i != new_leader)
        .expect("a follower");
    let via_follower = ApiClient::new(&cluster.url(follower), Some(op_token.clone()));
    assert!(
        promote_all(&via_follower, &v2).await,
        "the release never finished after the takeover: {:?}\n{}",
        op.releases().await,
        cluster.logs().await
    );
    assert!(
        everyone_on(&v2).await,
        "{:?}\n{}",
        op.environments().await,
        cluster.logs().await
    );

    // A rollback sent to a replica the gateways do not talk through reaches every one of
    // them within 2 s, as each gateway's own admin listener says.
    let through: Vec<String> = op
        .environments()
        .await
        .expect("environments")
        .iter()
        .flat_map(|e| e.instances.iter().filter_map(|i| i.replica.clone()))
        .collect();
    let elsewhere = (0..3)
        .filter(|i| cluster.replicas[*i].is_some())
        .find(|i| !through.contains(&format!("r{i}")))
        .unwrap_or(follower);
    let other = ApiClient::new(&cluster.url(elsewhere), Some(op_token.clone()));
    let asked = Instant::now();
    other
        .rollback("production", Some(v1.clone()))
        .await
        .expect("rollback");
    assert!(
        serving(&admins, &v1, Duration::from_secs(2)).await,
        "the rollback took more than 2 s to reach every gateway"
    );
    let rolled_back = asked.elapsed();

    // A deploy sent there reaches the gateways' long-polls on another replica within 1 s
    // (the policy now sends a version everywhere at once).
    other
        .set_policy("production", "waves:\n  - percent: 100\n")
        .await
        .expect("policy");
    let v3 = op
        .push(&document(backend, "three"), "v3")
        .await
        .expect("push")
        .version
        .id;
    let other_approver = ApiClient::new(
        &cluster.url(elsewhere),
        Some(bootstrap_token(&cluster.data, "approver").await),
    );
    let asked = Instant::now();
    other_approver
        .deploy("production", &v3, Some("third config".into()))
        .await
        .expect("deploy");
    let first = until(Duration::from_secs(1), async || {
        let client = rampart_testkit::client::http1();
        let url = format!("http://127.0.0.1:{}/config", admins[0]);
        rampart_testkit::client::get(&client, &url)
            .await
            .is_ok_and(|a| a.json()["version"] == v3.as_str())
    })
    .await;
    let deployed = asked.elapsed();
    assert!(first, "the deploy took more than 1 s to reach a gateway");

    // Followers answered their gateways' long-polls themselves, from the database.
    let client = rampart_testkit::client::http1();
    let mut answered = 0;
    for i in (0..3).filter(|i| cluster.replicas[*i].is_some() && *i != new_leader) {
        let view = rampart_testkit::client::get(&client, &format!("{}/v1/replica", cluster.url(i)))
            .await
            .expect("replica view")
            .json();
        answered += view["polls_answered"].as_u64().unwrap_or(0);
    }
    assert!(
        answered > 0,
        "no follower answered a long-poll itself\n{}",
        cluster.logs().await
    );

    // The new leader knew the fleet from the store: no gateway had to register again.
    for g in 0..3 {
        let log = tokio::fs::read_to_string(cluster.data.join(format!("g{g}.log")))
            .await
            .unwrap_or_default();
        let registrations = log.matches("agent: registered").count();
        assert_eq!(
            registrations, 1,
            "g{g} registered {registrations} times:\n{log}"
        );
    }

    // Nothing in the log was lost.
    let events_after = op.events(0).await.expect("events");
    for e in &events_before {
        assert!(
            events_after
                .iter()
                .any(|a| a.seq == e.seq && a.kind == e.kind),
            "event {} ({}) is gone after the takeover",
            e.seq,
            e.kind
        );
    }
    // Every page the control plane queued arrived — some may have come twice across the
    // takeover (at least once), and the receiver knows them by their idempotency keys: one
    // key per page, none unknown.
    let delivered = until(Duration::from_secs(20), async || {
        op.outbox()
            .await
            .is_ok_and(|o| !o.is_empty() && o.iter().all(|e| e.delivered_at.is_some()))
    })
    .await;
    let outbox = op.outbox().await.expect("outbox");
    assert!(delivered, "pages not delivered: {outbox:?}");
    let queued: std::collections::BTreeSet<String> = outbox.iter().map(|e| e.key.clone()).collect();
    let received: std::collections::BTreeSet<String> = pager
        .received()
        .iter()
        .filter_map(|r| r.header("idempotency-key").map(str::to_owned))
        .collect();
    assert_eq!(queued, received, "{outbox:?}");
    // Every alert is there, the one sent during the takeover too, each in an incident.
    let alerts = op.alerts(false).await.expect("alerts");
    for fp in ["before-1", "before-2", "during"] {
        let key = format!("alertmanager:{fp}");
        assert!(
            alerts.iter().any(|a| a.key == key && a.incident.is_some()),
            "{key} is missing: {alerts:?}"
        );
    }

    // Every gateway served every request, throughout.
    let _ = stop_load.send(true);
    let (sent, failed) = load.await.expect("load");
    assert!(sent > 100, "only {sent} requests were sent");
    assert_eq!(failed, 0, "{failed} of {sent} requests failed");
    eprintln!(
        "leader r{leader} killed; r{new_leader} led {took_over:?} later; {sent} gateway requests, none failed; \
         a rollback sent to r{elsewhere} (gateways talk through {through:?}) served everywhere {rolled_back:?} later; \
         a deploy there reached a gateway {deployed:?} later; \
         followers answered {answered} long-polls themselves"
    );
}

/// A hold a person's `promote` ends: the policy's pause, or a wave without enough traffic yet.
fn awaits_judgement(reason: &str) -> bool {
    reason.starts_with("paused") || reason.starts_with("inconclusive")
}

fn backend_addr(peer: &rampart_testkit::peer::Peer) -> std::net::SocketAddr {
    peer.addr.expect("the backend's address")
}

/// Whether every gateway serves `v` (by its admin listener's `/config`) within `within`.
async fn serving(admins: &[u16], v: &rampart_api::VersionId, within: Duration) -> bool {
    let client = rampart_testkit::client::http1();
    until(within, async || {
        for port in admins {
            let url = format!("http://127.0.0.1:{port}/config");
            let on = rampart_testkit::client::get(&client, &url)
                .await
                .is_ok_and(|a| a.json()["version"] == v.as_str());
            if !on {
                return false;
            }
        }
        true
    })
    .await
}

/// Requests to every gateway every 20 ms until told to stop; (sent, failed). A gateway not yet
/// serving (before its first config) is not counted.
fn steady_load(
    listens: &[u16],
) -> (
    tokio::sync::watch::Sender<bool>,
    tokio::task::JoinHandle<(u64, u64)>,
) {
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let urls: Vec<String> = listens
        .iter()
        .map(|p| format!("http://127.0.0.1:{p}/load"))
        .collect();
    let task = tokio::spawn(async move {
        let client = rampart_testkit::client::http1();
        let mut serving = vec![false; urls.len()];
        let (mut sent, mut failed) = (0u64, 0u64);
        loop {
            for (i, url) in urls.iter().enumerate() {
                let ok = rampart_testkit::client::get(&client, url)
                    .await
                    .is_ok_and(|a| a.status == 200);
                if serving[i] {
                    sent += 1;
                    failed += u64::from(!ok);
                } else if ok {
                    serving[i] = true;
                }
            }
            tokio::select! {
                _ = stopped.wait_for(|s| *s) => break,
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
        }
        (sent, failed)
    });
    (stop, task)
}
