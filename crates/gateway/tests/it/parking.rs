//! Idle HTTP/1.1 connections are parked (their protocol state dropped, the socket kept) and
//! serve their next request as if nothing happened: whole, in pieces, pipelined. The client's
//! deadlines still hold while parked. The client here writes raw bytes (no HTTP library), the
//! backend is Python's http.server.

use crate::common;

use std::time::{Duration, Instant};

use rampart_testkit::peer::Peer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use common::*;

/// Reads HTTP/1.1 responses (with Content-Length bodies) off one connection, keeping what it
/// read past the one it returns.
struct Responses {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Responses {
    /// The next response's status and body, or none when the connection closed first.
    async fn next(&mut self) -> Option<(u16, serde_json::Value)> {
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end]).to_string();
                let length: usize = head
                    .lines()
                    .find_map(|l| {
                        let (name, value) = l.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse().ok())?
                    })
                    .unwrap_or(0);
                if self.buf.len() >= end + 4 + length {
                    let body: Vec<u8> = self.buf.drain(..end + 4 + length).skip(end + 4).collect();
                    let status = head.get(9..12)?.parse().ok()?;
                    return Some((status, serde_json::from_slice(&body).unwrap_or_default()));
                }
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout(Duration::from_secs(5), self.stream.read(&mut chunk))
                .await
                .expect("a response within 5 s")
                .ok()?;
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: parked.test\r\n\r\n").into_bytes()
}

async fn parked_reaches(gw: &rampart_gateway::Gateway, n: f64) {
    let reached = eventually(Duration::from_secs(5), async || {
        metric(gw, "rampart_connections_parked_total").await >= n
    })
    .await;
    assert!(reached, "the connection was parked ({n})");
}

/// A gateway in front of Python's http.server with `limits`, its listener on TLS with `tls`'s
/// certificate when given.
async fn gateway(limits: &str, tls: Option<&TestCert>) -> (Peer, rampart_gateway::Gateway) {
    let python = Peer::python_server("path_echo.py", &[])
        .await
        .expect("python backend");
    let py = python.addr.expect("addr");
    let tls = tls.map_or(String::new(), |c| {
        format!(
            r#", tls: {{ cert_file: "{}", key_file: "{}" }}"#,
            c.cert_path.display(),
            c.key_path.display()
        )
    });
    let gw = start(&format!(
        r#"
listeners: [{{ name: public, address: "127.0.0.1:0"{tls} }}]
admin: {{ address: "127.0.0.1:0" }}
limits: {limits}
upstreams: [{{ name: python, endpoints: ["{py}"] }}]
routes: [{{ name: all, upstream: python }}]
"#
    ))
    .await;
    (python, gw)
}

/// A gateway (see [`gateway`]) and a raw connection to it.
async fn gateway_and_connection(limits: &str) -> (Peer, rampart_gateway::Gateway, Responses) {
    let (python, gw) = gateway(limits, None).await;
    let addr = gw.listener_addr("public").await.expect("listener");
    let conn = Responses {
        stream: TcpStream::connect(addr).await.expect("connect"),
        buf: Vec::new(),
    };
    (python, gw, conn)
}

#[tokio::test]
async fn idle_connections_are_parked_and_serve_their_next_requests_whole_in_pieces_and_pipelined() {
    let (_python, gw, mut conn) =
        gateway_and_connection("{ header_timeout: 2s, idle_timeout: 6s }").await;

    conn.send(&get("/first")).await;
    let (status, body) = conn.next().await.expect("first response");
    assert_eq!((status, body["path"].as_str()), (200, Some("/first")));
    parked_reaches(&gw, 1.0).await;

    // The next head arrives in pieces on the parked connection.
    let second = get("/second");
    let (a, b) = second.split_at(12);
    conn.send(a).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    conn.send(b).await;
    let (status, body) = conn.next().await.expect("second response, same connection");
    assert_eq!((status, body["path"].as_str()), (200, Some("/second")));
    parked_reaches(&gw, 2.0).await;

    // Two requests in one write: both answered, in order.
    conn.send(&[get("/third"), get("/fourth")].concat()).await;
    for path in ["/third", "/fourth"] {
        let (status, body) = conn.next().await.expect("pipelined response");
        assert_eq!((status, body["path"].as_str()), (200, Some(path)));
    }
    parked_reaches(&gw, 3.0).await;

    // A head started on a parked connection and never finished ends at the header deadline.
    conn.send(b"GET /stalled HTTP/1.1\r\n").await;
    let started = Instant::now();
    assert!(conn.next().await.is_none(), "closed, no response");
    let after = started.elapsed();
    assert!(
        after >= Duration::from_millis(1500) && after < Duration::from_secs(4),
        "closed at the header deadline (2 s), not {after:?}"
    );
}

#[tokio::test]
async fn a_parked_connection_still_ends_at_the_idle_deadline() {
    let (_python, gw, mut conn) = gateway_and_connection("{ idle_timeout: 3s }").await;
    conn.send(&get("/once")).await;
    let started = Instant::now();
    assert_eq!(conn.next().await.map(|r| r.0), Some(200));
    parked_reaches(&gw, 1.0).await;
    assert!(conn.next().await.is_none(), "closed by the gateway");
    let after = started.elapsed();
    assert!(
        after >= Duration::from_millis(2500) && after < Duration::from_secs(5),
        "closed at the idle deadline (3 s), not {after:?}"
    );
}

#[tokio::test]
async fn idle_tls_connections_are_parked_keeping_their_session() {
    let cert = TestCert::new("parking-tls");
    let (_python, gw) = gateway("{ idle_timeout: 10s }", Some(&cert)).await;
    let addr = gw.listener_addr("public").await.expect("listener");
    // OpenSSL (Python's ssl) on one TLS connection: a request, idle past parking, the next in
    // pieces, idle again, two pipelined.
    let got = rampart_testkit::peer::python_json(
        "tls_keepalive.py",
        &[
            &addr.to_string(),
            &cert.cert_path.display().to_string(),
            "2.2",
        ],
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(got["alpn"], "http/1.1", "{got}");
    assert_eq!(got["closed_early"], false, "{got}");
    assert_eq!(
        got["responses"],
        serde_json::json!([
            [200, "/first"],
            [200, "/second"],
            [200, "/third"],
            [200, "/fourth"]
        ]),
        "every request answered, in order, on the one TLS session"
    );
    parked_reaches(&gw, 2.0).await;
}

/// Waits until the metric (its line's start) reads `n`.
async fn metric_reaches(gw: &rampart_gateway::Gateway, line_start: &str, n: f64) -> bool {
    eventually(Duration::from_secs(5), async || {
        metric(gw, line_start).await == n
    })
    .await
}

#[tokio::test]
async fn a_parked_connection_keeps_its_slot_until_the_client_closes_it() {
    let (_python, gw, mut conn) =
        gateway_and_connection("{ max_connections: 1, idle_timeout: 30s }").await;
    let addr = gw.listener_addr("public").await.expect("listener");
    conn.send(&get("/first")).await;
    assert_eq!(conn.next().await.map(|r| r.0), Some(200));
    parked_reaches(&gw, 1.0).await;
    assert!(metric_reaches(&gw, "rampart_parked_connections ", 1.0).await);
    assert_eq!(metric(&gw, "rampart_connections_active ").await, 1.0);

    // Parked, it still holds the listener's only slot: a second connection is closed unanswered.
    let mut second = Responses {
        stream: TcpStream::connect(addr).await.expect("connect"),
        buf: Vec::new(),
    };
    second.send(&get("/refused")).await;
    assert!(
        second.next().await.is_none(),
        "over max_connections: closed"
    );

    // Its next request takes it out of the lot, and it goes back once idle.
    conn.send(&get("/again")).await;
    let (status, body) = conn.next().await.expect("served after parking");
    assert_eq!((status, body["path"].as_str()), (200, Some("/again")));
    parked_reaches(&gw, 2.0).await;
    assert!(metric_reaches(&gw, "rampart_parked_connections ", 1.0).await);

    // The client closes it while parked: the slot is free again.
    drop(conn);
    assert!(
        metric_reaches(&gw, "rampart_connections_active ", 0.0).await,
        "the closed connection left the lot"
    );
    assert_eq!(metric(&gw, "rampart_parked_connections ").await, 0.0);
    let mut third = Responses {
        stream: TcpStream::connect(addr).await.expect("connect"),
        buf: Vec::new(),
    };
    third.send(&get("/third")).await;
    assert_eq!(third.next().await.map(|r| r.0), Some(200));
}

#[tokio::test]
async fn shutdown_closes_parked_connections_without_waiting_out_the_drain() {
    let (_python, gw, mut conn) = gateway_and_connection("{ idle_timeout: 30s }").await;
    conn.send(&get("/once")).await;
    assert_eq!(conn.next().await.map(|r| r.0), Some(200));
    assert!(metric_reaches(&gw, "rampart_parked_connections ", 1.0).await);
    let started = Instant::now();
    // The drain allows 5 s for requests in flight; a parked connection has none.
    gw.shutdown().await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "shutdown took {:?}",
        started.elapsed()
    );
    assert!(
        conn.next().await.is_none(),
        "the parked connection was closed"
    );
}

#[tokio::test]
async fn a_connection_parks_only_after_park_after_without_a_request() {
    let (_python, gw, mut conn) =
        gateway_and_connection("{ park_after: 1s, idle_timeout: 30s }").await;
    // A request every 100 ms for a second and a half: idle most of the time, never a second.
    for i in 0..15 {
        conn.send(&get(&format!("/{i}"))).await;
        assert_eq!(conn.next().await.map(|r| r.0), Some(200));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        metric(&gw, "rampart_connections_parked_total").await,
        0.0,
        "parked between requests 100 ms apart"
    );
    parked_reaches(&gw, 1.0).await;
}
