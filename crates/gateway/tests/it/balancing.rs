//! Load balancing, health checking, passive ejection and retry budgets against real backends.

use crate::common;

use std::time::Duration;

use http::StatusCode;
use rampart_testkit::EchoServer;
use rampart_testkit::client;

use common::*;

async fn send(n: usize, url: &str) -> Vec<StatusCode> {
    let c = client::http1();
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(
            client::get(&c, url)
                .await
                .map(|a| a.status)
                .unwrap_or(StatusCode::IM_A_TEAPOT),
        );
    }
    out
}

#[tokio::test]
async fn both_algorithms_spread_load() {
    for balance in ["p2c", "round_robin"] {
        let a = EchoServer::start("a").await.expect("a");
        let b = EchoServer::start("b").await.expect("b");
        let c3 = EchoServer::start("c").await.expect("c");
        let gw = start(&simple(
            &[a.addr, b.addr, c3.addr],
            &format!("    balance: {balance}"),
            "",
        ))
        .await;
        let statuses = send(300, &format!("{}/x", base_url(&gw).await)).await;
        assert!(statuses.iter().all(|s| *s == StatusCode::OK));
        for s in [&a, &b, &c3] {
            let hits = s.control.hits();
            // Sequential requests: round robin is exact, p2c with ties is random but balanced.
            assert!(
                (60..=140).contains(&hits),
                "{balance}: backend {} got {hits} of 300",
                s.name
            );
        }
    }
}

#[tokio::test]
async fn p2c_prefers_the_less_loaded_endpoint() {
    let fast = EchoServer::start("fast").await.expect("fast");
    let slow = EchoServer::start("slow").await.expect("slow");
    slow.control.set_latency(Duration::from_millis(100));
    let gw = start(&simple(&[fast.addr, slow.addr], "    balance: p2c", "")).await;
    let url = format!("{}/x", base_url(&gw).await);
    let report = rampart_testkit::load::run(
        &client::http1(),
        &rampart_testkit::load::LoadPlan {
            uri: url.parse().expect("uri"),
            concurrency: 16,
            max_requests: 400,
            max_duration: Duration::from_secs(10),
            request_timeout: Duration::from_secs(5),
            headers: vec![],
        },
    )
    .await;
    assert_eq!(report.ok(), report.sent, "{:?}", report.errors);
    // Outstanding requests pile up on the slow endpoint, so least-request sends most elsewhere.
    assert!(
        fast.control.hits() > 4 * slow.control.hits(),
        "fast {} slow {}",
        fast.control.hits(),
        slow.control.hits()
    );
}

#[tokio::test]
async fn unhealthy_endpoint_is_skipped_and_comes_back() {
    let a = EchoServer::start("a").await.expect("a");
    let b = EchoServer::start("b").await.expect("b");
    let hc = "    balance: round_robin\n    health_check: { path: /healthz, interval: 50ms, timeout: 200ms, healthy_after: 2, unhealthy_after: 2 }";
    let gw = start(&simple(&[a.addr, b.addr], hc, "")).await;
    let url = format!("{}/x", base_url(&gw).await);
    let admin = admin_url(&gw);

    b.control.set_healthy(false);
    let metrics_say_unhealthy = eventually(Duration::from_secs(3), async || {
        let m = client::get(&client::http1(), &format!("{admin}/metrics"))
            .await
            .map(|a| a.text())
            .unwrap_or_default();
        m.contains(&format!(
            "rampart_upstream_endpoint_healthy{{upstream=\"backend\",endpoint=\"{}\"}} 0",
            b.addr
        ))
    })
    .await;
    assert!(metrics_say_unhealthy, "b was never marked unhealthy");
    b.control.reset_hits();
    a.control.reset_hits();
    let statuses = send(50, &url).await;
    assert!(statuses.iter().all(|s| *s == StatusCode::OK));
    assert_eq!(
        b.control.hits(),
        0,
        "an unhealthy endpoint must get no traffic"
    );
    assert_eq!(a.control.hits(), 50);

    b.control.set_healthy(true);
    let back = eventually(Duration::from_secs(3), async || {
        send(10, &url).await;
        b.control.hits() > 0
    })
    .await;
    assert!(back, "b never came back after passing health checks");
}

#[tokio::test]
async fn consecutive_failures_eject_an_endpoint() {
    let good = EchoServer::start("good").await.expect("good");
    let bad = EchoServer::start("bad").await.expect("bad");
    bad.control.set_error_rate(1.0);
    let extra = "    balance: round_robin\n    outlier: { consecutive_5xx: 3, ejection: 30s }";
    let gw = start(&simple(&[good.addr, bad.addr], extra, "")).await;
    let statuses = send(100, &format!("{}/x", base_url(&gw).await)).await;
    let failures = statuses.iter().filter(|s| s.is_server_error()).count();
    // Exactly the three failures that trip the ejection reach the client; then only `good` serves.
    assert_eq!(failures, 3, "statuses: {statuses:?}");
    assert_eq!(bad.control.hits(), 3);
    let m = client::get(&client::http1(), &format!("{}/metrics", admin_url(&gw)))
        .await
        .expect("metrics")
        .text();
    assert!(
        m.contains("rampart_upstream_endpoint_ejections_total"),
        "{m}"
    );
}

#[tokio::test]
async fn retries_go_elsewhere_and_respect_the_budget() {
    // Retries turn one endpoint's failures into successes.
    let good = EchoServer::start("good").await.expect("good");
    let bad = EchoServer::start("bad").await.expect("bad");
    bad.control.set_error_rate(1.0);
    let extra = "    balance: round_robin\n    outlier: { consecutive_5xx: 1000 }";
    let gw = start(&simple(
        &[good.addr, bad.addr],
        extra,
        "    retries: { attempts: 2, budget_percent: 100 }",
    ))
    .await;
    let statuses = send(40, &format!("{}/x", base_url(&gw).await)).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    assert!(bad.control.hits() > 0);

    // An endpoint that always fails: retries stop at the budget (10% of requests + a reserve of 10).
    let broken = EchoServer::start("broken").await.expect("broken");
    broken.control.set_error_rate(1.0);
    let gw = start(&simple(
        &[broken.addr],
        "    outlier: { consecutive_5xx: 1000 }",
        "    retries: { attempts: 2, budget_percent: 10 }",
    ))
    .await;
    let statuses = send(200, &format!("{}/x", base_url(&gw).await)).await;
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::SERVICE_UNAVAILABLE)
    );
    let retries = broken.control.hits() - 200;
    assert!(retries <= 20 + 10, "{retries} retries exceed the budget");
    assert!(
        retries >= 20,
        "only {retries} retries: the budget allows 10% + reserve"
    );

    // Non-idempotent requests are never retried, even with no body to replay.
    let c = client::http1();
    for method in [http::Method::POST, http::Method::PATCH] {
        broken.control.reset_hits();
        let req = http::Request::builder()
            .method(method.clone())
            .uri(format!("{}/x", base_url(&gw).await))
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .expect("req");
        let a = client::call(&c, req, Duration::from_secs(5))
            .await
            .expect("answer");
        assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{method}");
        assert_eq!(broken.control.hits(), 1, "{method} was retried");
    }
}
