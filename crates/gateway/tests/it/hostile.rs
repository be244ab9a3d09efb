//! Hostile clients: no client holds a slot without making progress. Silent connections,
//! trickled heads, stalled TLS handshakes, idle keep-alives, clients that never read (HTTP/1.1,
//! and HTTP/2 with a zero window), stalled bodies in both directions and an HTTP/2 rapid-reset
//! burst, each against a real gateway on loopback, with raw sockets or Python's h2.

use crate::common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http::StatusCode;
use rampart_testkit::EchoServer;
use rampart_testkit::client;
use rampart_testkit::peer::Peer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use common::*;

/// A config with one echo upstream, a limited route and the given `limits`.
fn hostile_config(backend: SocketAddr, limits: &str, route_extra: &str) -> String {
    format!(
        r#"
listeners: [{{ name: public, address: "127.0.0.1:0" }}]
admin: {{ address: "127.0.0.1:0" }}
upstreams: [{{ name: backend, endpoints: ["{backend}"] }}]
routes:
  - {{ name: main, upstream: backend {route_extra} }}
limits: {limits}
"#
    )
}

/// Reads until the peer closes (EOF or reset) or `within` passes; how long it took, if closed.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 65536];
    loop {
        let left = within.checked_sub(start.elapsed())?;
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(start.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn silent_connections_are_closed_at_the_header_timeout_and_new_clients_served_after() {
    let backend = EchoServer::start("b").await.expect("backend");
    let gw = start(&hostile_config(
        backend.addr,
        "{ max_connections: 50, header_timeout: 1s }",
        "",
    ))
    .await;
    let addr = gw.listener_addr("public").await.expect("addr");
    let mut silent = Vec::new();
    for _ in 0..50 {
        silent.push((
            TcpStream::connect(addr).await.expect("connect"),
            Instant::now(),
        ));
    }
    // They hold every slot: a request now is refused (its connection closed at once).
    let url = format!("http://{addr}/x");
    let refused = eventually(Duration::from_secs(2), async || {
        client::get(&client::http1(), &url).await.is_err()
    })
    .await;
    assert!(refused, "50 silent connections should hold all 50 slots");
    let mut tasks = Vec::new();
    for (mut s, opened) in silent {
        tasks.push(tokio::spawn(async move {
            closed_within(&mut s, Duration::from_secs(10))
                .await
                .map(|_| opened.elapsed())
        }));
    }
    for t in tasks {
        let after = t
            .await
            .expect("join")
            .expect("a silent connection was never closed");
        assert!(
            after >= Duration::from_millis(900),
            "closed before the header timeout: {after:?}"
        );
    }
    // The slots are free again: a new client is served at once.
    let t = Instant::now();
    let a = client::get(&client::http1(), &url).await.expect("served");
    assert_eq!(a.status, StatusCode::OK);
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "took {:?}",
        t.elapsed()
    );
    assert!(metric(&gw, "rampart_deadlines_expired_total{kind=\"header\"}").await >= 50.0);
}

#[tokio::test]
async fn trickled_heads_and_stalled_tls_handshakes_end_at_the_header_timeout() {
    let backend = EchoServer::start("b").await.expect("backend");
    let gw = start(&hostile_config(
        backend.addr,
        "{ header_timeout: 1s, idle_timeout: 30s }",
        "",
    ))
    .await;
    let addr = gw.listener_addr("public").await.expect("addr");

    // A first head that trickles in, a header line every 200 ms, never ending.
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let opened = Instant::now();
    s.write_all(b"GET /x HTTP/1.1\r\nHost: a\r\n")
        .await
        .expect("write");
    let mut closed = None;
    for i in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if s.write_all(format!("X-{i}: y\r\n").as_bytes())
            .await
            .is_err()
        {
            closed = Some(opened.elapsed());
            break;
        }
        let mut b = [0u8; 1024];
        if let Ok(Ok(0) | Err(_)) =
            tokio::time::timeout(Duration::from_millis(1), s.read(&mut b)).await
        {
            closed = Some(opened.elapsed());
            break;
        }
    }
    let closed = closed.expect("a trickled head was never cut");
    assert!(
        closed >= Duration::from_millis(900) && closed < Duration::from_secs(5),
        "first head cut after {closed:?}"
    );

    // A later head on a kept-alive connection: cut one header timeout after its first byte,
    // long before the idle timeout.
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(b"GET /fixed HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .expect("write");
    let mut got = Vec::new();
    let mut b = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("\r\n\r\n") {
        let n = s.read(&mut b).await.expect("read");
        assert!(n > 0, "closed before answering");
        got.extend_from_slice(b.get(..n).unwrap_or_default());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.write_all(b"GET /fixed HTTP/1.1\r\n")
        .await
        .expect("write");
    let after = closed_within(&mut s, Duration::from_secs(10))
        .await
        .expect("a trickled second head was never cut");
    assert!(
        after >= Duration::from_millis(600) && after < Duration::from_secs(5),
        "second head cut after {after:?}"
    );

    // A TLS client that starts a handshake and never finishes it.
    let cert = TestCert::new("hostile-tls");
    let (cert_path, key_path) = (&cert.cert_path, &cert.key_path);
    let tls = start(&format!(
        r#"
listeners: [{{ name: public, address: "127.0.0.1:0", tls: {{ cert_file: "{}", key_file: "{}" }} }}]
upstreams: [{{ name: backend, endpoints: ["{}"] }}]
routes: [{{ name: main, upstream: backend }}]
limits: {{ header_timeout: 1s }}
"#,
        cert_path.display(),
        key_path.display(),
        backend.addr
    ))
    .await;
    let addr = tls.listener_addr("public").await.expect("addr");
    let mut s = TcpStream::connect(addr).await.expect("connect");
    // The first bytes of a TLS record header, then nothing.
    s.write_all(&[0x16, 0x03, 0x01]).await.expect("write");
    let after = closed_within(&mut s, Duration::from_secs(10))
        .await
        .expect("a stalled TLS handshake was never cut");
    assert!(
        after >= Duration::from_millis(900) && after < Duration::from_secs(5),
        "TLS handshake cut after {after:?}"
    );
}

#[tokio::test]
async fn idle_keep_alive_connections_close_at_the_idle_timeout() {
    let backend = EchoServer::start("b").await.expect("backend");
    let gw = start(&hostile_config(
        backend.addr,
        "{ header_timeout: 5s, idle_timeout: 1s }",
        "",
    ))
    .await;
    let addr = gw.listener_addr("public").await.expect("addr");

    // HTTP/1.1: one request answered, then nothing.
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(b"GET /fixed HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .expect("write");
    let mut b = [0u8; 4096];
    let n = s.read(&mut b).await.expect("read");
    assert!(n > 0);
    let after = closed_within(&mut s, Duration::from_secs(10))
        .await
        .expect("an idle HTTP/1.1 connection was never closed");
    assert!(
        after >= Duration::from_millis(700) && after < Duration::from_secs(4),
        "idle HTTP/1.1 closed after {after:?}"
    );

    // HTTP/2 (Python's h2): a GOAWAY once idle, then the close.
    let out = Peer::python_run(
        "h2_abuse.py",
        &[
            "idle",
            "127.0.0.1",
            &addr.port().to_string(),
            "/fixed",
            "10",
        ],
        Duration::from_secs(30),
    )
    .await
    .expect("h2 client");
    let doc: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
    assert_eq!(doc["status"], "200", "{out}");
    let goaway = doc["goaway_after"].as_f64().expect("no GOAWAY");
    assert!((0.7..4.0).contains(&goaway), "GOAWAY after {goaway} s");
    assert!(doc["closed_after"].as_f64().is_some(), "{out}");
    assert!(metric(&gw, "rampart_deadlines_expired_total{kind=\"idle\"}").await >= 2.0);
}

/// Waits until a request on the route is shed: the non-readers hold every slot.
async fn route_is_full(url: &str) -> bool {
    eventually(Duration::from_secs(5), async || {
        client::get(&client::http1(), url)
            .await
            .is_ok_and(|a| a.status == StatusCode::SERVICE_UNAVAILABLE)
    })
    .await
}

/// Waits until the gateway has `n` requests in flight (the stalled ones have arrived).
async fn inflight_reaches(gw: &rampart_gateway::Gateway, n: f64) -> bool {
    eventually(Duration::from_secs(10), async || {
        metric(gw, "rampart_inflight_requests ").await >= n
    })
    .await
}

/// Polls until a request on the route is served; how long that took.
async fn route_serves_again(url: &str, within: Duration) -> Option<Duration> {
    let t = Instant::now();
    eventually(within, async || {
        client::get(&client::http1(), url)
            .await
            .is_ok_and(|a| a.status == StatusCode::OK)
    })
    .await
    .then(|| t.elapsed())
}

#[tokio::test]
async fn clients_that_never_read_lose_their_slots_at_the_send_timeout() {
    let backend = EchoServer::start("b").await.expect("backend");
    let gw = start(&hostile_config(
        backend.addr,
        "{ send_timeout: 1s }",
        ", max_concurrency: 4",
    ))
    .await;
    let addr = gw.listener_addr("public").await.expect("addr");
    let small = format!("http://{addr}/bytes/10");

    // HTTP/1.1: four clients ask for 256 MiB each and never read a byte.
    let mut readers = Vec::new();
    for _ in 0..4 {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        s.write_all(b"GET /bytes/268435456 HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .expect("write");
        readers.push(s);
    }
    assert!(
        inflight_reaches(&gw, 4.0).await && route_is_full(&small).await,
        "the non-readers never held the route"
    );
    let freed = route_serves_again(&small, Duration::from_secs(10))
        .await
        .expect("the non-readers kept their slots");
    assert!(freed < Duration::from_secs(5), "freed after {freed:?}");
    // Every one of them is cut; reading before then would let one not yet cut make progress.
    let all_cut = eventually(Duration::from_secs(5), async || {
        metric(&gw, "rampart_deadlines_expired_total{kind=\"send\"}").await >= 4.0
    })
    .await;
    assert!(all_cut, "not every non-reader was cut");
    for (i, mut s) in readers.into_iter().enumerate() {
        // Their connections were closed: reading drains what was buffered, then ends.
        assert!(
            closed_within(&mut s, Duration::from_secs(10))
                .await
                .is_some(),
            "non-reader {i}'s connection stayed open"
        );
    }

    // HTTP/2: four streams on one connection whose windows never open (zero from the start),
    // or close after the first 64 KiB (the default window, never updated).
    for window in ["0", "65535"] {
        let port = addr.port().to_string();
        let h2 = tokio::spawn(async move {
            Peer::python_run(
                "h2_abuse.py",
                &[
                    "zero-window",
                    "127.0.0.1",
                    &port,
                    "/bytes/1000000",
                    "4",
                    "15",
                    window,
                ],
                Duration::from_secs(30),
            )
            .await
        });
        if !(inflight_reaches(&gw, 4.0).await && route_is_full(&small).await) {
            let out = h2.await.expect("join");
            panic!("window {window}: the stalled streams never held the route: {out:?}");
        }
        let freed = route_serves_again(&small, Duration::from_secs(10))
            .await
            .expect("the stalled streams kept their slots");
        assert!(
            freed < Duration::from_secs(5),
            "window {window}: freed after {freed:?}"
        );
        let out = h2.await.expect("join").expect("h2 client");
        let doc: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
        let limit: u64 = window.parse().expect("number");
        assert!(
            doc["body_bytes"].as_u64().is_some_and(|b| b <= limit),
            "window {window}: {out}"
        );
        let closed = doc["closed_after"].as_f64().expect("never closed");
        assert!(
            (0.9..6.0).contains(&closed),
            "window {window}: closed after {closed} s: {out}"
        );
    }
}

#[tokio::test]
async fn stalled_bodies_end_at_the_body_timeout_in_both_directions() {
    let backend = EchoServer::start("b").await.expect("backend");
    let python = Peer::python_server("path_echo.py", &[])
        .await
        .expect("python backend");
    let py = python.addr.expect("addr");
    let yaml = format!(
        r#"
listeners: [{{ name: public, address: "127.0.0.1:0" }}]
admin: {{ address: "127.0.0.1:0" }}
upstreams:
  - {{ name: echo, endpoints: ["{}"] }}
  - {{ name: python, endpoints: ["{py}"] }}
routes:
  - {{ name: main, upstream: echo }}
  - {{ name: stall, match: {{ path_prefix: /stall-body }}, upstream: python, max_concurrency: 1 }}
limits: {{ body_timeout: 1s }}
"#,
        backend.addr
    );
    let gw = start(&yaml).await;
    let addr = gw.listener_addr("public").await.expect("addr");

    // A client that promises 1000 bytes and sends 10: 408, the slot freed.
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let t = Instant::now();
    s.write_all(b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n0123456789")
        .await
        .expect("write");
    let mut got = Vec::new();
    let mut b = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("\r\n\r\n") {
        match tokio::time::timeout(Duration::from_secs(10), s.read(&mut b)).await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(b.get(..n).unwrap_or_default()),
            _ => break,
        }
    }
    let head = String::from_utf8_lossy(&got);
    assert!(head.starts_with("HTTP/1.1 408"), "{head}");
    assert!(
        t.elapsed() >= Duration::from_millis(900) && t.elapsed() < Duration::from_secs(5),
        "answered after {:?}",
        t.elapsed()
    );

    // An upstream that sends part of a body and stalls: the body ends, the slot is freed.
    let url = format!("http://{addr}/stall-body");
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(b"GET /stall-body HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .expect("write");
    assert!(
        inflight_reaches(&gw, 1.0).await && route_is_full(&url).await,
        "the stalled body never held the route"
    );
    let after = closed_within(&mut s, Duration::from_secs(10))
        .await
        .expect("a stalled upstream body was never cut");
    assert!(after < Duration::from_secs(5), "cut after {after:?}");
    assert!(
        metric(
            &gw,
            "rampart_deadlines_expired_total{kind=\"request_body\"}"
        )
        .await
            >= 1.0
    );
    assert!(
        metric(
            &gw,
            "rampart_deadlines_expired_total{kind=\"upstream_body\"}"
        )
        .await
            >= 1.0
    );
}

#[tokio::test]
async fn an_http2_rapid_reset_burst_does_not_stop_other_clients() {
    let backend = EchoServer::start("b").await.expect("backend");
    let gw = start(&hostile_config(backend.addr, "{ max_inflight: 64 }", "")).await;
    let addr = gw.listener_addr("public").await.expect("addr");
    let port = addr.port().to_string();
    let attack = tokio::spawn(async move {
        Peer::python_run(
            "h2_abuse.py",
            &["rapid-reset", "127.0.0.1", &port, "/fixed", "20000"],
            Duration::from_secs(60),
        )
        .await
    });
    // Meanwhile another client keeps asking, one request after another.
    let url = format!("http://{addr}/fixed");
    let c = client::http1();
    let mut served = 0;
    let mut failed = Vec::new();
    while !attack.is_finished() {
        match client::get(&c, &url).await {
            Ok(a) if a.status == StatusCode::OK => served += 1,
            Ok(a) => failed.push(a.status.to_string()),
            Err(e) => failed.push(e.to_string()),
        }
    }
    let out = attack.await.expect("join").expect("h2 client");
    let doc: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
    assert!(failed.is_empty(), "other client failed: {failed:?} ({out})");
    assert!(served > 0, "{out}");
    // The attacker was told to calm down (GOAWAY ENHANCE_YOUR_CALM = 11) and cut off.
    assert_eq!(doc["goaway"], 11, "{out}");
    let a = client::get(&c, &url).await.expect("served after");
    assert_eq!(a.status, StatusCode::OK);
}

#[tokio::test]
async fn http2_continuation_and_settings_floods_are_cut_off() {
    let backend = EchoServer::start("b").await.expect("backend");
    let gw = start(&hostile_config(
        backend.addr,
        "{ header_timeout: 2s, idle_timeout: 2s }",
        "",
    ))
    .await;
    let addr = gw.listener_addr("public").await.expect("addr");
    let port = addr.port().to_string();
    // CONTINUATION frames for ever (CVE-2024-27316): refused once the header list passes
    // max_header_bytes; what was sent is what the socket buffers took before the close.
    let out = Peer::python_run(
        "h2_abuse.py",
        &["continuation-flood", "127.0.0.1", &port, "/", "256"],
        Duration::from_secs(60),
    )
    .await
    .expect("h2 client");
    let doc: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
    assert_eq!(doc["closed"], true, "{out}");
    let sent = doc["sent_bytes"].as_u64().expect("bytes");
    assert!(
        sent < 32 * 1024 * 1024,
        "the flood went on for {sent} bytes"
    );
    // SETTINGS frames without reading an ACK: the flooder stalls itself, and with no request
    // the header deadline closes it.
    let out = Peer::python_run(
        "h2_abuse.py",
        &["settings-flood", "127.0.0.1", &port, "/", "5000000"],
        Duration::from_secs(60),
    )
    .await
    .expect("h2 client");
    let doc: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
    assert_eq!(doc["closed"], true, "{out}");
    let took = doc["seconds"].as_f64().expect("seconds");
    assert!(took < 10.0, "a SETTINGS flood held its connection {took} s");
    // Others were never stopped.
    let a = client::get(&client::http1(), &format!("http://{addr}/fixed"))
        .await
        .expect("served");
    assert_eq!(a.status, StatusCode::OK);
}
