//! Admission control: route, upstream and connection limits refuse at once; nothing queues.

use crate::common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use http::StatusCode;
use rampart_testkit::EchoServer;
use rampart_testkit::client;

use common::*;

async fn burst(url: &str, n: usize) -> Vec<(StatusCode, Duration)> {
    let mut tasks = Vec::new();
    for _ in 0..n {
        let url = url.to_owned();
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let a = client::get(&client::http1(), &url).await.expect("answer");
            (a.status, t.elapsed())
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.expect("join"));
    }
    out
}

#[tokio::test]
async fn route_and_upstream_limits_shed_at_once() {
    let slow = EchoServer::start("slow").await.expect("slow");
    slow.control.set_latency(Duration::from_millis(800));
    let yaml = format!(
        r#"
listeners: [{{ name: public, address: "127.0.0.1:0" }}]
admin: {{ address: "127.0.0.1:0" }}
upstreams:
  - {{ name: a, endpoints: ["{0}"] }}
  - {{ name: b, endpoints: ["{0}"], max_concurrency: 3 }}
routes:
  - {{ name: limited-route, match: {{ path_prefix: /r }}, upstream: a, max_concurrency: 4 }}
  - {{ name: limited-upstream, match: {{ path_prefix: /u }}, upstream: b }}
"#,
        slow.addr
    );
    let gw = start(&yaml).await;
    let base = base_url(&gw).await;
    for (path, limit) in [("/r", 4), ("/u", 3)] {
        let results = burst(&format!("{base}{path}"), 4 * limit).await;
        let served = results.iter().filter(|(s, _)| *s == StatusCode::OK).count();
        let shed: Vec<_> = results
            .iter()
            .filter(|(s, _)| *s == StatusCode::SERVICE_UNAVAILABLE)
            .collect();
        assert_eq!(served, limit, "{path}");
        assert_eq!(shed.len(), 3 * limit, "{path}");
        assert!(
            shed.iter()
                // The served ones take 800 ms: a shed request never waits for them.
                .all(|(_, took)| *took < Duration::from_millis(600)),
            "{path}: a shed request waited"
        );
    }
    let m = client::get(&client::http1(), &format!("{}/metrics", admin_url(&gw)))
        .await
        .expect("metrics")
        .text();
    assert!(m.contains("rampart_shed_total{scope=\"route\"} 12"), "{m}");
    assert!(
        m.contains("rampart_shed_total{scope=\"upstream\"} 9"),
        "{m}"
    );
}

#[tokio::test]
#[allow(clippy::disallowed_methods)] // plain sockets on a blocking thread, off the runtime
async fn connections_over_the_limit_are_closed() {
    let backend = EchoServer::start("b").await.expect("b");
    let yaml = simple(&[backend.addr], "", "")
        .replace("routes:", "limits: { max_connections: 3 }\nroutes:");
    let gw = start(&yaml).await;
    let addr = gw.listener_addr("public").await.expect("addr");
    let verdicts = tokio::task::spawn_blocking(move || {
        let held: Vec<std::net::TcpStream> = (0..3)
            .map(|_| std::net::TcpStream::connect(addr).expect("connect"))
            .collect();
        std::thread::sleep(Duration::from_millis(100));
        // The fourth is accepted by the kernel, then closed by the gateway without an answer.
        let mut extra = std::net::TcpStream::connect(addr).expect("connect");
        extra
            .set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        let _ = extra.write_all(b"GET /x HTTP/1.1\r\nhost: a\r\n\r\n");
        let mut buf = [0u8; 64];
        let fourth = extra.read(&mut buf).map(|n| n == 0).unwrap_or(true);
        // One of the held connections still works.
        let mut first = &held[0];
        first
            .write_all(b"GET /x HTTP/1.1\r\nhost: a\r\n\r\n")
            .expect("write");
        first
            .set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        let n = first.read(&mut buf).expect("read");
        (
            fourth,
            String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
        )
    })
    .await
    .expect("join");
    assert_eq!(verdicts, (true, true));
    let m = client::get(&client::http1(), &format!("{}/metrics", admin_url(&gw)))
        .await
        .expect("metrics")
        .text();
    assert!(
        m.contains("rampart_shed_total{scope=\"connections\"}"),
        "{m}"
    );
}
