//! Helpers shared by the control plane's tests: temporary directories, free ports, polling,
//! and real gateways running as agents.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rampart_control::tokens::{Role, TokenEntry, Tokens};
use rampart_gateway::agent::{AgentOptions, run};
use rampart_gateway::watchdog::WatchdogSettings;

pub fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "rampart-control-{name}-{}-{}",
        std::process::id(),
        fastrand::u32(..)
    ));
    std::fs::create_dir_all(&dir).expect("dir");
    dir
}

pub fn free_addr() -> SocketAddr {
    rampart_testkit::ports::free_loopback_addr().expect("free port")
}

/// Polls `f` every 25 ms until it returns true or `within` passes.
pub async fn wait_until(within: Duration, mut f: impl AsyncFnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < within {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    false
}

/// A real gateway running as an agent (token "agent"), serving on `listen`.
pub struct Agent {
    pub listen: SocketAddr,
    pub state_dir: PathBuf,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

pub fn start_agent(
    control: &str,
    env: &str,
    instance: &str,
    state_dir: PathBuf,
    listen: SocketAddr,
    watchdog: WatchdogSettings,
) -> Agent {
    let admin = "127.0.0.1:0".parse().expect("addr");
    start_agent_at(control, env, instance, state_dir, listen, admin, watchdog)
}

/// Like [`start_agent`], with the admin listener on a known address.
pub fn start_agent_at(
    control: &str,
    env: &str,
    instance: &str,
    state_dir: PathBuf,
    listen: SocketAddr,
    admin: SocketAddr,
    watchdog: WatchdogSettings,
) -> Agent {
    let opts = AgentOptions {
        control: control.into(),
        ca: None,
        token: Some("agent".into()),
        environment: env.into(),
        instance: instance.into(),
        zone: "z1".into(),
        state_dir: state_dir.clone(),
        gateway: rampart_gateway::Options {
            listen: vec![("public".into(), listen)],
            admin: Some(admin),
            drain: Duration::from_millis(500),
            probe_secret: None,
        },
        watchdog,
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _ = run(opts, async move {
            let _ = stopped.await;
        })
        .await;
    });
    Agent {
        listen,
        state_dir,
        stop,
        task,
    }
}

impl Agent {
    /// Drains and stops the gateway; returns its address and state directory for a restart.
    pub async fn stop(self) -> (SocketAddr, PathBuf) {
        let _ = self.stop.send(());
        let _ = self.task.await;
        (self.listen, self.state_dir)
    }
}

/// `target/artifacts`, created: where tests leave what people look at (screenshots, pictures).
pub fn artifacts_dir() -> PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/artifacts");
    std::fs::create_dir_all(&dir).expect("artifacts dir");
    dir
}

/// Steady load on each gateway until `stop` is set: an authenticated `GET /x` every 5 ms per
/// gateway. Each task ends with its counts of 200s and of anything else.
pub fn steady_load(
    listens: &[SocketAddr],
    stop: &Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<(u64, u64)>> {
    listens
        .iter()
        .map(|&l| {
            let stop = stop.clone();
            tokio::spawn(async move {
                let c = rampart_testkit::client::http1();
                let (mut ok, mut failed) = (0u64, 0u64);
                while !stop.load(Ordering::Relaxed) {
                    let req = http::Request::get(format!("http://{l}/x"))
                        .header("authorization", "Bearer user-token")
                        .body(http_body_util::Full::new(bytes::Bytes::new()))
                        .expect("request");
                    match rampart_testkit::client::call(&c, req, Duration::from_secs(5)).await {
                        Ok(a) if a.status == http::StatusCode::OK => ok += 1,
                        _ => failed += 1,
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                (ok, failed)
            })
        })
        .collect()
}

/// The seed incident's bad change: the auth provider moves to a host only a black-hole DNS
/// server can answer.
pub fn blackholed_auth(backend: SocketAddr, dns: SocketAddr) -> String {
    format!(
        r#"
listeners: [{{ name: public, address: "127.0.0.1:8080" }}]
resolver: {{ nameservers: ["{dns}"], timeout: 100ms, attempts: 1 }}
auth_providers: [{{ name: main, type: introspection, endpoint: "http://auth.blackhole.test:9000/introspect", timeout: 250ms }}]
upstreams: [{{ name: b, endpoints: ["{backend}"] }}]
routes: [{{ name: r, upstream: b, timeout: 2s, auth: main }}]
"#
    )
}

pub fn document(backend: SocketAddr, timeout_ms: u64) -> String {
    format!(
        "listeners: [{{ name: public, address: \"127.0.0.1:8080\" }}]\nupstreams: [{{ name: b, endpoints: [\"{backend}\"] }}]\nroutes: [{{ name: r, upstream: b, timeout: {timeout_ms}ms }}]\n"
    )
}

/// Tokens the tests use: "op" (olivia, operator), "ap" (amir, approver), "viewer" (vera,
/// viewer), "agent" (gateways).
pub fn tokens() -> Tokens {
    Tokens::from_entries(&[
        TokenEntry::new("olivia", Role::Operator, "op"),
        TokenEntry::new("amir", Role::Approver, "ap"),
        TokenEntry::new("vera", Role::Viewer, "viewer"),
        TokenEntry::new("agent", Role::Agent, "agent"),
    ])
}

/// `n` production gateways, `p0`…, running as agents of `control`.
pub fn start_fleet(control: &str, n: usize, watchdog: WatchdogSettings) -> Vec<Agent> {
    (0..n)
        .map(|i| {
            start_agent(
                control,
                "production",
                &format!("p{i}"),
                temp("gw"),
                free_addr(),
                watchdog.clone(),
            )
        })
        .collect()
}

/// A control plane with one environment, `production`, on a free port, its data in a fresh
/// folder named after `name`, its settings adjusted by `configure`.
pub async fn production(
    name: &str,
    configure: impl FnOnce(rampart_control::Settings) -> rampart_control::Settings,
) -> rampart_control::Running {
    let addr = "127.0.0.1:0".parse().expect("addr");
    rampart_control::spawn_with(
        &temp(name),
        &["production".into()],
        tokens(),
        addr,
        configure,
    )
    .await
    .expect("control plane")
}

/// [`production`] with short waves (`Plan::short`, a minute's bakes: something else — a
/// policy, a judgement — moves them on) and a fast reconciler.
pub async fn quick_production(name: &str) -> rampart_control::Running {
    production(name, |c| {
        c.with_plan(Some(rampart_rollout::Plan::short(60_000)))
            .with_tick(Duration::from_millis(200))
    })
    .await
}

/// `n` production gateways `p0`… like [`start_fleet`], each with its admin listener (`/metrics`)
/// on a known address; returns them with those addresses.
pub fn start_fleet_with_admins(control: &str, n: usize) -> (Vec<Agent>, Vec<SocketAddr>) {
    let admins: Vec<SocketAddr> = (0..n).map(|_| free_addr()).collect();
    let agents = admins
        .iter()
        .enumerate()
        .map(|(i, admin)| {
            start_agent_at(
                control,
                "production",
                &format!("p{i}"),
                temp("gw"),
                free_addr(),
                *admin,
                WatchdogSettings::quiet(),
            )
        })
        .collect();
    (agents, admins)
}

/// Waits up to `within` for the release of version `v` to end; returns it as it ended.
pub async fn release_ended(
    op: &rampart_api::ApiClient,
    v: &rampart_api::VersionId,
    within: Duration,
) -> Option<rampart_api::ReleaseStatus> {
    let mut found = None;
    wait_until(within, async || {
        found = op
            .releases()
            .await
            .expect("releases")
            .into_iter()
            .find(|r| r.version == *v && matches!(r.state.as_str(), "succeeded" | "rolled_back"));
        found.is_some()
    })
    .await;
    found
}

/// A control plane with `testing` then `production`, deploying everywhere at once (no waves),
/// on a free port, its data in a fresh folder named after `name`.
pub async fn pipeline(name: &str, tokens: Tokens) -> rampart_control::Running {
    let addr = "127.0.0.1:0".parse().expect("addr");
    let envs = ["testing".to_owned(), "production".to_owned()];
    rampart_control::spawn_with(&temp(name), &envs, tokens, addr, |c| c.with_plan(None))
        .await
        .expect("control plane")
}

/// Like [`pipeline`] with the test tokens, the last environment releasing by `plan`, and a
/// fast reconciler.
pub async fn pipeline_with_plan(
    name: &str,
    plan: Option<rampart_rollout::Plan>,
) -> rampart_control::Running {
    let addr = "127.0.0.1:0".parse().expect("addr");
    let envs = ["testing".to_owned(), "production".to_owned()];
    rampart_control::spawn_with(&temp(name), &envs, tokens(), addr, |c| {
        c.with_plan(plan).with_tick(Duration::from_millis(200))
    })
    .await
    .expect("control plane")
}

/// Pushes `document`; returns its version id.
pub async fn pushed(
    op: &rampart_api::ApiClient,
    document: &str,
    message: &str,
) -> rampart_api::VersionId {
    op.push(document, message).await.expect("push").version.id
}

/// An approver pushes `document` past failing semantic checks and deploys it to production,
/// both with a recorded break-glass reason (the seed outage, replayed). Returns its id.
pub async fn break_glass_to_production(
    approver: &rampart_api::ApiClient,
    document: &str,
    message: &str,
) -> rampart_api::VersionId {
    let reason = || Some("drill".to_owned());
    let v = approver
        .push_with(document, message, reason())
        .await
        .expect("push")
        .version
        .id;
    approver
        .deploy("production", &v, reason())
        .await
        .expect("deploy");
    v
}

/// Pushes `document` as the first version and deploys it to production with an approver's
/// reason (a first production config is a high-risk change); waits up to `within` for every
/// gateway in `listens` to answer `GET /x` with 200. Returns the version id.
pub async fn first_version(
    op: &rampart_api::ApiClient,
    approver: &rampart_api::ApiClient,
    document: &str,
    listens: &[SocketAddr],
    within: Duration,
) -> rampart_api::VersionId {
    let v1 = pushed(op, document, "v1").await;
    approver
        .deploy("production", &v1, Some("initial production config".into()))
        .await
        .expect("deploy v1");
    for l in listens {
        let url = format!("http://{l}/x");
        let serving = wait_until(within, async || {
            rampart_testkit::client::get(&rampart_testkit::client::http1(), &url)
                .await
                .is_ok_and(|a| a.status == http::StatusCode::OK)
        })
        .await;
        assert!(serving, "{l} does not serve v1 within {within:?}");
    }
    v1
}

/// [`first_version`] of `document(backend, 2000)` on `gateways`, waiting up to 10 s for each.
pub async fn serving_v1(
    op: &rampart_api::ApiClient,
    approver: &rampart_api::ApiClient,
    backend: SocketAddr,
    gateways: &[Agent],
) -> rampart_api::VersionId {
    let listens: Vec<SocketAddr> = gateways.iter().map(|g| g.listen).collect();
    let doc = document(backend, 2000);
    first_version(op, approver, &doc, &listens, Duration::from_secs(10)).await
}

/// A form `POST`: the status and the body as text.
pub async fn post_form(url: &str, form: &str) -> (u16, String) {
    let req = http::Request::post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(http_body_util::Full::new(bytes::Bytes::from(
            form.to_owned(),
        )))
        .expect("request");
    let a = rampart_testkit::client::call(
        &rampart_testkit::client::http1(),
        req,
        Duration::from_secs(5),
    )
    .await
    .expect("post");
    (
        a.status.as_u16(),
        String::from_utf8_lossy(&a.body).into_owned(),
    )
}

/// A form value, percent-encoded.
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A PagerDuty channel sending to `url` (a receiver on loopback).
pub fn pager_channel(url: String) -> rampart_api::ChannelSpec {
    rampart_api::ChannelSpec {
        kind: rampart_api::ChannelKind::Pagerduty,
        url,
        routing_key: Some("KEY".into()),
        secret: None,
        to: vec![],
        from: None,
        severities: vec![],
    }
}
