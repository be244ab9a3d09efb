//! Reload: under load nothing is lost; an invalid config changes nothing; drain on shutdown.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use rampart_gateway::{Options, standalone};
use rampart_testkit::EchoServer;
use rampart_testkit::client;
use rampart_testkit::load::{LoadPlan, run};

use common::*;

fn two_upstreams(
    a: std::net::SocketAddr,
    b: std::net::SocketAddr,
    target: &str,
    timeout: &str,
) -> String {
    format!(
        r#"
listeners: [{{ name: public, address: "127.0.0.1:0" }}]
admin: {{ address: "127.0.0.1:0" }}
upstreams:
  - {{ name: a, endpoints: ["{a}"] }}
  - {{ name: b, endpoints: ["{b}"] }}
routes: [{{ name: main, upstream: {target}, timeout: {timeout} }}]
"#
    )
}

#[tokio::test]
async fn reload_under_steady_load_loses_no_request() {
    let a = EchoServer::start("a").await.expect("a");
    let b = EchoServer::start("b").await.expect("b");
    let gw = Arc::new(start(&two_upstreams(a.addr, b.addr, "a", "5s")).await);
    let url = format!("{}/x", base_url(&gw).await);
    let load = tokio::spawn(async move {
        let plan = LoadPlan {
            uri: url.parse().expect("uri"),
            concurrency: 8,
            max_requests: 20_000,
            max_duration: Duration::from_secs(3),
            request_timeout: Duration::from_secs(5),
            headers: vec![],
        };
        run(&client::http1(), &plan).await
    });
    let mut applied = 0;
    while !load.is_finished() {
        let target = if applied % 2 == 0 { "b" } else { "a" };
        // Alternate the route's upstream and its timeout, so every apply is a new version.
        let yaml = two_upstreams(a.addr, b.addr, target, &format!("{}ms", 5000 + applied));
        gw.apply(config(&yaml)).await.expect("apply");
        applied += 1;
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let report = load.await.expect("load");
    assert!(applied >= 20, "only {applied} reloads happened");
    assert!(report.sent > 500, "too little load: {}", report.sent);
    assert_eq!(
        report.failed(),
        0,
        "lost requests: {:?} {:?}",
        report.by_status,
        report.errors
    );
    assert!(
        a.control.hits() > 0 && b.control.hits() > 0,
        "both versions served"
    );
}

#[tokio::test]
async fn failed_apply_changes_nothing() {
    let a = EchoServer::start("a").await.expect("a");
    let gw = start(&simple(&[a.addr], "", "")).await;
    let before = gw.version();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let busy = taken.local_addr().expect("addr");
    let yaml = format!(
        "{}\n  - {{ name: extra, upstream: backend, match: {{ path_prefix: /extra }} }}\n",
        simple(&[a.addr], "", "")
    )
    .replace("listeners: [{ name: public, address: \"127.0.0.1:0\" }]", &format!("listeners: [{{ name: public, address: \"127.0.0.1:0\" }}, {{ name: second, address: \"{busy}\" }}]"));
    let err = gw
        .apply(config(&yaml))
        .await
        .expect_err("the port is taken");
    assert!(err.reason.contains(&busy.to_string()), "{err}");
    assert_eq!(gw.version(), before, "the old version keeps serving");
    assert!(gw.listener_addr("second").await.is_none());
    let ok = client::get(&client::http1(), &format!("{}/x", base_url(&gw).await))
        .await
        .expect("served");
    assert_eq!(ok.status, StatusCode::OK);
}

#[tokio::test]
async fn listeners_come_and_go_with_the_config() {
    let a = EchoServer::start("a").await.expect("a");
    let gw = start(&simple(&[a.addr], "", "")).await;
    let with_second = simple(&[a.addr], "", "").replace(
        "listeners: [{ name: public, address: \"127.0.0.1:0\" }]",
        "listeners: [{ name: public, address: \"127.0.0.1:0\" }, { name: second, address: \"127.0.0.2:0\" }]",
    );
    let public_before = gw.listener_addr("public").await;
    gw.apply(config(&with_second)).await.expect("apply");
    assert_eq!(
        gw.listener_addr("public").await,
        public_before,
        "an unchanged listener is kept"
    );
    let second = gw.listener_addr("second").await.expect("second listener");
    let a2 = client::get(&client::http1(), &format!("http://{second}/x"))
        .await
        .expect("second serves");
    assert_eq!(a2.status, StatusCode::OK);
    gw.apply(config(&simple(&[a.addr], "", "")))
        .await
        .expect("apply");
    assert!(gw.listener_addr("second").await.is_none());
    let gone = eventually(Duration::from_secs(3), async || {
        std::net::TcpStream::connect(second).is_err()
    })
    .await;
    assert!(gone, "the removed listener still accepts");
}

fn free_port() -> std::net::SocketAddr {
    rampart_testkit::ports::free_loopback_addr().expect("free port")
}

#[tokio::test]
async fn file_reload_applies_valid_and_rejects_invalid() {
    let a = EchoServer::start("a").await.expect("a");
    let b = EchoServer::start("b").await.expect("b");
    let dir = std::env::temp_dir().join(format!("rampart-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("gateway.yaml");
    let (listen, admin) = (free_port(), free_port());
    std::fs::write(&path, two_upstreams(a.addr, b.addr, "a", "5s")).expect("write");
    let options = Options {
        listen: vec![("public".into(), listen)],
        admin: Some(admin),
        drain: Duration::from_secs(2),
        probe_secret: None,
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(standalone::run(path.clone(), options, async move {
        let _ = stopped.await;
    }));
    let c = client::http1();
    let url = format!("http://{listen}/x");
    let admin_url = format!("http://{admin}");
    assert!(
        eventually(Duration::from_secs(5), async || client::get(&c, &url)
            .await
            .is_ok_and(|r| r.status == StatusCode::OK))
        .await
    );
    let v1 = client::get(&c, &format!("{admin_url}/config"))
        .await
        .expect("config")
        .json()["version"]
        .clone();

    // An invalid document: rejected, logged, counted; the old version keeps serving.
    std::fs::write(
        &path,
        "listeners: [{ name: public, address: nowhere }]\nroutes: [{ name: r, upstream: ghost }]\n",
    )
    .expect("write");
    let rejected = eventually(Duration::from_secs(5), async || {
        let m = client::get(&c, &format!("{admin_url}/metrics"))
            .await
            .map(|a| a.text())
            .unwrap_or_default();
        m.contains("rampart_config_reloads_total{result=\"rejected\"} 1")
    })
    .await;
    assert!(rejected, "the invalid file was not seen and rejected");
    assert_eq!(
        client::get(&c, &format!("{admin_url}/config"))
            .await
            .expect("config")
            .json()["version"],
        v1
    );
    let served = client::get(&c, &url).await.expect("still serving");
    assert_eq!(served.header("x-backend"), Some("a"));

    // A valid change is applied.
    std::fs::write(&path, two_upstreams(a.addr, b.addr, "b", "5s")).expect("write");
    let switched = eventually(Duration::from_secs(5), async || {
        client::get(&c, &url)
            .await
            .is_ok_and(|r| r.header("x-backend") == Some("b"))
    })
    .await;
    assert!(switched, "the valid file was not applied");
    let _ = stop.send(());
    task.await.expect("join").expect("clean exit");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn shutdown_drains_requests_in_flight() {
    let slow = EchoServer::start("slow").await.expect("slow");
    slow.control.set_latency(Duration::from_millis(400));
    let gw = start(&simple(&[slow.addr], "", "")).await;
    let url = format!("{}/x", base_url(&gw).await);
    let addr = gw.listener_addr("public").await.expect("addr");
    let inflight = tokio::spawn(async move { client::get(&client::http1(), &url).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    gw.shutdown().await;
    let answer = inflight
        .await
        .expect("join")
        .expect("the request in flight completes");
    assert_eq!(answer.status, StatusCode::OK);
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "no new connections after shutdown"
    );
}
