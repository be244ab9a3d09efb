//! The admin listener answers while the serving side is saturated or stuck (design §7, invariant 3).

use crate::common;

use std::time::{Duration, Instant};

use http::StatusCode;
use rampart_testkit::EchoServer;
use rampart_testkit::client;

use common::*;

#[tokio::test]
async fn admin_answers_while_inflight_is_at_its_limit() {
    let slow = EchoServer::start("slow").await.expect("slow");
    slow.control.set_latency(Duration::from_millis(1500));
    let yaml =
        simple(&[slow.addr], "", "").replace("routes:", "limits: { max_inflight: 8 }\nroutes:");
    let gw = start(&yaml).await;
    let url = format!("{}/x", base_url(&gw).await);
    let admin = admin_url(&gw);

    // 32 concurrent slow requests against a limit of 8: 8 are served, 24 refused at once.
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let a = client::get(&client::http1(), &url).await.expect("answer");
            (
                a.status,
                a.header("retry-after").map(str::to_owned),
                t.elapsed(),
            )
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let c = client::http1();
    for path in ["/healthz", "/readyz", "/metrics"] {
        let t = Instant::now();
        let a = client::get(&c, &format!("{admin}{path}"))
            .await
            .expect("admin answers");
        assert_eq!(a.status, StatusCode::OK, "{path}");
        // The proxied requests are held 1.5 s by the backend; the admin is never behind them.
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "{path} took {:?}",
            t.elapsed()
        );
        if path == "/metrics" {
            assert!(
                a.text().contains("rampart_inflight_requests 8"),
                "{}",
                a.text()
            );
        }
    }
    let mut served = 0;
    let mut shed = 0;
    for t in tasks {
        let (status, retry_after, took) = t.await.expect("join");
        match status {
            StatusCode::OK => served += 1,
            StatusCode::SERVICE_UNAVAILABLE => {
                shed += 1;
                assert_eq!(retry_after.as_deref(), Some("1"));
                assert!(
                    took < Duration::from_millis(500),
                    "a shed request waited {took:?}"
                );
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!((served, shed), (8, 24));
}

/// The serving runtime's only worker thread is blocked outright; the admin listener, on its
/// own thread and runtime, still answers.
#[test]
#[allow(clippy::disallowed_methods)] // Blocking on purpose: this test has no runtime of its own to stall.
fn admin_answers_while_the_serving_runtime_is_stuck() {
    let serving = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let backend_and_gateway = serving.block_on(async {
        let backend = EchoServer::start("b").await.expect("backend");
        let gw = start(&simple(&[backend.addr], "", "")).await;
        (backend, gw)
    });
    let admin = admin_url(&backend_and_gateway.1);
    let proxy = serving.block_on(base_url(&backend_and_gateway.1));
    // Block the one worker for 3 s.
    // Deliberately blocking the serving runtime: this is the failure under test.
    serving.spawn(async { std::thread::sleep(Duration::from_secs(3)) });
    std::thread::sleep(Duration::from_millis(200));

    let probe = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    probe.block_on(async {
        let c = client::http1();
        for path in ["/healthz", "/metrics"] {
            let t = Instant::now();
            let a = client::get(&c, &format!("{admin}{path}"))
                .await
                .expect("admin answers");
            assert_eq!(a.status, StatusCode::OK);
            assert!(
                t.elapsed() < Duration::from_millis(500),
                "{path} took {:?} while serving was stuck",
                t.elapsed()
            );
        }
        // The proxy itself is stuck: a request to it does not complete quickly.
        let stuck = tokio::time::timeout(
            Duration::from_millis(500),
            client::get(&c, &format!("{proxy}/x")),
        )
        .await;
        assert!(
            stuck.is_err(),
            "the serving runtime was supposed to be blocked"
        );
    });
    drop(backend_and_gateway);
    serving.shutdown_timeout(Duration::from_secs(5));
}
