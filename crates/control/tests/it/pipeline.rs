//! The control plane with real gateways as agents on loopback: pipeline, break-glass,
//! rollback while every gateway fails, fail-static without the control plane.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use http::StatusCode;
use rampart_api::{ApiClient, ClientError};
use rampart_testkit::EchoServer;
use rampart_testkit::client;

use crate::common;
use common::{Agent, free_addr, temp, wait_until};

/// The control plane under test, with an operator, an approver and an agent token.
struct Control;

impl Control {
    async fn start(data: &std::path::Path, addr: SocketAddr) -> rampart_control::Running {
        let tokens = common::tokens();
        // These tests are about the pipeline, rollback and agents: deploys go everywhere at once.
        // Releases in waves have their own tests (rollout.rs).
        rampart_control::spawn_with(
            data,
            &["testing".into(), "production".into()],
            tokens,
            addr,
            |c| c.with_plan(None),
        )
        .await
        .expect("control plane")
    }
}

fn start_agent(
    control: &str,
    env: &str,
    instance: &str,
    state_dir: PathBuf,
    listen: SocketAddr,
) -> Agent {
    start_agent_with(
        control,
        env,
        instance,
        state_dir,
        listen,
        Duration::from_secs(1),
    )
}

/// An agent whose watchdog watches each new version for `watch`.
fn start_agent_with(
    control: &str,
    env: &str,
    instance: &str,
    state_dir: PathBuf,
    listen: SocketAddr,
    watch: Duration,
) -> Agent {
    let watchdog = rampart_gateway::watchdog::WatchdogSettings {
        window: watch,
        ..Default::default()
    };
    common::start_agent(control, env, instance, state_dir, listen, watchdog)
}

fn document(backend: SocketAddr, tag: &str) -> String {
    format!(
        r#"
listeners: [{{ name: public, address: "127.0.0.1:8080" }}]
upstreams: [{{ name: b, endpoints: ["{backend}"] }}]
routes: [{{ name: {tag}, upstream: b, timeout: 2s }}]
"#
    )
}

async fn status(addr: SocketAddr) -> Option<StatusCode> {
    client::get(&client::http1(), &format!("http://{addr}/x"))
        .await
        .ok()
        .map(|a| a.status)
}

/// Whether the gateway at `addr` answers `GET /x` with `want` within `within`.
async fn answers(addr: SocketAddr, want: StatusCode, within: Duration) -> bool {
    wait_until(within, async || status(addr).await == Some(want)).await
}

#[tokio::test]
async fn production_refuses_untested_versions_and_rollback_always_works() {
    let backend = EchoServer::start("b").await.expect("backend");
    let data = temp("pipeline");
    let control = Control::start(&data, "127.0.0.1:0".parse().expect("addr")).await;
    let op = ApiClient::new(&control.url(), Some("op".into()));
    let approver = ApiClient::new(&control.url(), Some("ap".into()));
    let testing = start_agent(&control.url(), "testing", "t1", temp("t1"), free_addr());
    let prod: Vec<Agent> = (0..3)
        .map(|i| {
            start_agent(
                &control.url(),
                "production",
                &format!("p{i}"),
                temp("p"),
                free_addr(),
            )
        })
        .collect();

    // v1 goes through testing, then production.
    let v1 = common::pushed(&op, &document(backend.addr, "good"), "first").await;
    // The same content again is the same version: nothing new is stored.
    let again = op
        .push(&document(backend.addr, "good"), "first, again")
        .await
        .expect("push");
    assert!(
        !again.created,
        "re-pushing identical content created a version"
    );
    assert_eq!(again.version.id, v1);
    assert_eq!(op.versions().await.expect("versions").len(), 1);
    let refused = op
        .deploy("production", &v1, None)
        .await
        .expect_err("untested");
    match &refused {
        ClientError::Api {
            status, message, ..
        } => {
            assert_eq!(*status, 409);
            assert!(
                message.contains("has not succeeded in \"testing\""),
                "{message}"
            );
        }
        other => panic!("{other}"),
    }
    op.deploy("testing", &v1, None).await.expect("testing");
    assert!(
        wait_until(Duration::from_secs(5), async || status(testing.listen)
            .await
            == Some(StatusCode::OK))
        .await
    );
    // Once v1 succeeded in testing, production takes it — after a second person approves, since a
    // first production config sets listeners (a high-risk section).
    let passed = wait_until(Duration::from_secs(5), async || {
        match op.deploy("production", &v1, None).await {
            Err(ClientError::Api {
                status: 409,
                code,
                message,
            }) if code == "approval_required" => {
                assert!(message.contains("listeners"), "{message}");
                true
            }
            _ => false,
        }
    })
    .await;
    assert!(
        passed,
        "v1 never passed the pipeline check after succeeding in testing"
    );
    let pending = op.approvals().await.expect("approvals");
    let id = pending[0].id;
    assert_eq!(pending[0].requested_by, "olivia");
    assert!(
        matches!(
            op.approve(id).await,
            Err(ClientError::Api { status: 403, .. })
        ),
        "an operator cannot approve"
    );
    approver
        .approve(id)
        .await
        .expect("a second person approves");
    for a in &prod {
        assert!(answers(a.listen, StatusCode::OK, Duration::from_secs(5)).await);
    }
    assert!(
        wait_until(Duration::from_secs(5), async || {
            op.environments()
                .await
                .is_ok_and(|e| e[1].last_known_good.as_deref() == Some(v1.as_str()))
        })
        .await,
        "v1 did not become production's last-known-good"
    );

    // v2 is bad (its upstream refuses connections). Only break-glass gets it to production,
    // and only for an approver.
    let dead = free_addr();
    let v2 = common::pushed(&op, &document(dead, "bad"), "bad upstream").await;
    assert!(matches!(
        op.deploy("production", &v2, Some("hotfix".into())).await,
        Err(ClientError::Api { status: 403, .. })
    ));
    approver
        .deploy("production", &v2, Some("incident 42 hotfix".into()))
        .await
        .expect("break-glass");
    for a in &prod {
        assert!(answers(a.listen, StatusCode::BAD_GATEWAY, Duration::from_secs(5)).await);
    }

    // Every production gateway is failing; rollback needs nothing from them and is immediate.
    let t = Instant::now();
    op.rollback("production", None).await.expect("rollback");
    for a in &prod {
        assert!(answers(a.listen, StatusCode::OK, Duration::from_secs(2)).await);
    }
    let took = t.elapsed();
    assert!(took < Duration::from_secs(2), "rollback took {took:?}");

    // Everything is in the event log, with actors.
    let events = op.events(0).await.expect("events");
    let kinds: Vec<(&str, &str)> = events
        .iter()
        .map(|e| (e.kind.as_str(), e.actor.as_str()))
        .collect();
    for want in [
        ("version.created", "olivia"),
        ("deploy", "olivia"),
        ("release.succeeded", "control"),
        ("approval.requested", "olivia"),
        ("approval.granted", "amir"),
        ("deploy.break_glass", "amir"),
        ("rollback", "olivia"),
    ] {
        assert!(kinds.contains(&want), "missing event {want:?} in {kinds:?}");
    }
    let glass = events
        .iter()
        .find(|e| e.kind == "deploy.break_glass")
        .expect("break-glass event");
    assert_eq!(glass.data["break_glass"]["reason"], "incident 42 hotfix");

    // Bad input: an invalid document is refused with its errors and stores nothing.
    let before = op.versions().await.expect("versions").len();
    match op
        .push("routes: [{ name: r, upstream: ghost }]\n", "broken")
        .await
    {
        Err(ClientError::Api {
            status: 422,
            message,
            ..
        }) => assert!(message.contains("no upstream named \"ghost\""), "{message}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(op.versions().await.expect("versions").len(), before);

    for a in prod {
        a.stop().await;
    }
    testing.stop().await;
    control.kill().await;
}

#[tokio::test]
async fn gateways_fail_static_without_the_control_plane() {
    let backend = EchoServer::start("b").await.expect("backend");
    let data = temp("failstatic");
    let control_addr = free_addr();
    let control = Control::start(&data, control_addr).await;
    let op = ApiClient::new(&control.url(), Some("op".into()));
    let agent = start_agent(&control.url(), "testing", "t1", temp("fs"), free_addr());
    let v1 = common::pushed(&op, &document(backend.addr, "good"), "first").await;
    op.deploy("testing", &v1, None).await.expect("deploy");
    assert!(answers(agent.listen, StatusCode::OK, Duration::from_secs(5)).await);

    // v1 becomes the last-known-good once it survives the watchdog window (1 s here).
    let lkg_path = rampart_gateway::lkg::path(&agent.state_dir);
    assert!(
        wait_until(Duration::from_secs(5), async || tokio::fs::metadata(
            &lkg_path
        )
        .await
        .is_ok())
        .await,
        "no last-known-good written"
    );

    // The control plane dies: the gateway keeps serving.
    control.kill().await;
    for _ in 0..20 {
        assert_eq!(status(agent.listen).await, Some(StatusCode::OK));
    }
    // Restarted while the control plane is still gone, it comes back on its last-known-good.
    let (listen, state_dir) = agent.stop().await;
    let agent = start_agent(
        &format!("http://{control_addr}"),
        "testing",
        "t1",
        state_dir.clone(),
        listen,
    );
    assert!(
        answers(listen, StatusCode::OK, Duration::from_secs(5)).await,
        "a restarted gateway did not serve its last-known-good"
    );
    let (listen, state_dir) = agent.stop().await;

    // A corrupt last-known-good is detected and never served.
    let path = rampart_gateway::lkg::path(&state_dir);
    let text = tokio::fs::read_to_string(&path).await.expect("lkg");
    tokio::fs::write(&path, text.replace("timeout", "timeouT"))
        .await
        .expect("corrupt");
    assert!(
        matches!(rampart_gateway::lkg::load(&state_dir).await, Err(e) if e.contains("checksum mismatch"))
    );
    let agent = start_agent(
        &format!("http://{control_addr}"),
        "testing",
        "t1",
        state_dir,
        listen,
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        status(listen).await,
        None,
        "a corrupt last-known-good must not be served"
    );

    // The control plane comes back (same data): the agent registers, reports the problem, and
    // applies the desired version again.
    let control = Control::start(&data, control_addr).await;
    assert!(answers(listen, StatusCode::OK, Duration::from_secs(10)).await);
    agent.stop().await;
    control.kill().await;
}

#[tokio::test]
async fn a_version_an_agent_cannot_apply_is_rejected_and_reported() {
    let backend = EchoServer::start("b").await.expect("backend");
    let data = temp("reject");
    let control = Control::start(&data, "127.0.0.1:0".parse().expect("addr")).await;
    let op = ApiClient::new(&control.url(), Some("op".into()));
    let agent = start_agent(&control.url(), "testing", "t1", temp("rj"), free_addr());
    let v1 = common::pushed(&op, &document(backend.addr, "good"), "first").await;
    op.deploy("testing", &v1, None).await.expect("deploy");
    assert!(answers(agent.listen, StatusCode::OK, Duration::from_secs(5)).await);

    // v2 adds a listener on an address this machine cannot bind: valid on paper, unappliable here.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let busy = taken.local_addr().expect("addr");
    let doc = document(backend.addr, "v2").replace(
        "listeners: [{ name: public, address: \"127.0.0.1:8080\" }]",
        &format!("listeners: [{{ name: public, address: \"127.0.0.1:8080\" }}, {{ name: extra, address: \"{busy}\" }}]"),
    );
    let v2 = common::pushed(&op, &doc, "second listener").await;
    op.deploy("testing", &v2, None).await.expect("deploy");
    let rejected = wait_until(Duration::from_secs(5), async || {
        op.environments().await.is_ok_and(|e| {
            e[0].instances.iter().any(|i| {
                matches!(&i.last_result, Some(rampart_api::ApplyResult::Rejected { version, error }) if *version == v2 && error.contains(&busy.to_string()))
            })
        })
    })
    .await;
    assert!(rejected, "the rejection was not reported");
    // Reports carry traffic: requests by class and a latency histogram.
    let reported = wait_until(Duration::from_secs(5), async || {
        op.environments().await.is_ok_and(|e| {
            e[0].instances
                .iter()
                .any(|i| i.requests[1] > 0 && i.latency.iter().sum::<u64>() >= i.requests[1])
        })
    })
    .await;
    assert!(reported, "no traffic in the agent's reports");
    let envs = op.environments().await.expect("envs");
    assert_eq!(
        envs[0].instances[0].applied.as_deref(),
        Some(v1.as_str()),
        "still serving v1"
    );
    assert_eq!(status(agent.listen).await, Some(StatusCode::OK));
    agent.stop().await;
    control.kill().await;
}

#[tokio::test]
async fn the_watchdog_reverts_a_failing_version_without_the_control_plane() {
    let backend = EchoServer::start("b").await.expect("backend");
    let data = temp("watchdog");
    let control = Control::start(&data, "127.0.0.1:0".parse().expect("addr")).await;
    let op = ApiClient::new(&control.url(), Some("op".into()));
    let agent = start_agent_with(
        &control.url(),
        "testing",
        "t1",
        temp("wd"),
        free_addr(),
        Duration::from_secs(10),
    );
    let listen = agent.listen;
    let v1 = common::pushed(&op, &document(backend.addr, "good"), "good").await;
    op.deploy("testing", &v1, None).await.expect("deploy");
    assert!(answers(listen, StatusCode::OK, Duration::from_secs(5)).await);

    // Steady traffic, as production would have.
    let traffic = tokio::spawn(async move {
        let c = client::http1();
        let mut seen = Vec::new();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(8) {
            seen.push(
                client::get(&c, &format!("http://{listen}/x"))
                    .await
                    .map(|a| a.status)
                    .ok(),
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        seen
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // v2 breaks every request; once the agent has it, the control plane goes away.
    let v2 = common::pushed(&op, &document(free_addr(), "bad"), "bad").await;
    op.deploy("testing", &v2, None).await.expect("deploy");
    assert!(answers(listen, StatusCode::BAD_GATEWAY, Duration::from_secs(5)).await);
    let broke = Instant::now();
    control.kill().await;

    // The watchdog sees the 5xx rate jump and reverts by itself.
    assert!(
        answers(listen, StatusCode::OK, Duration::from_secs(5)).await,
        "the watchdog did not revert"
    );
    let reverted_after = broke.elapsed();
    assert!(
        reverted_after < Duration::from_secs(4),
        "revert took {reverted_after:?}"
    );
    // And it stays on v1: the vetoed version is not applied again.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(status(listen).await, Some(StatusCode::OK));
    let seen = traffic.await.expect("traffic");
    let failed = seen.iter().filter(|s| **s != Some(StatusCode::OK)).count();
    assert!(
        failed > 0 && failed < seen.len() / 2,
        "{failed} of {} requests failed",
        seen.len()
    );
    agent.stop().await;
}
