//! What upstreams really receive, seen by peers rampart did not write: a raw-TCP recorder
//! (request line and header bytes as sent), Python's http.server and nginx. The gateway
//! routes, authenticates and forwards one normalized path, in origin form, with the Host the
//! route was chosen by.

use crate::common;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use rampart_testkit::client::{self, call};
use rampart_testkit::peer::{Nginx, Peer};
use rampart_testkit::recorder::Recorder;
use sha2::Digest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use common::*;

/// Sends raw request bytes (with `Connection: close`) and returns the whole answer.
async fn raw(addr: SocketAddr, request: &str) -> String {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(request.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

fn status_of(answer: &str) -> u16 {
    answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn body_of(answer: &str) -> &str {
    answer.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

const KEY: &str = "k-secret";

#[tokio::test]
async fn path_tricks_are_normalized_before_routing_as_a_python_backend_sees() {
    let python = Peer::python_server("path_echo.py", &[])
        .await
        .expect("python backend");
    let py = python.addr.expect("addr");
    let key_hash = hex::encode(sha2::Sha256::digest(KEY.as_bytes()));
    let yaml = format!(
        r#"
listeners: [{{ name: public, address: "127.0.0.1:0" }}]
auth_providers: [{{ name: keys, type: api_key, header: x-api-key, keys_sha256: ["{key_hash}"] }}]
upstreams: [{{ name: python, endpoints: ["{py}"] }}]
routes:
  - {{ name: public, upstream: python }}
  - {{ name: secure, match: {{ path_prefix: /secure }}, upstream: python, auth: keys }}
"#
    );
    let gw = start(&yaml).await;
    let addr = gw.listener_addr("public").await.expect("addr");
    // (target as sent, with the key?, status, path the Python server parsed when it got one)
    let table: &[(&str, bool, u16, Option<&str>)] = &[
        ("/x/../secure", false, 401, None),
        ("/x/%2e%2e/secure", false, 401, None),
        ("/x/%2E%2e/secure", false, 401, None),
        ("/x/.%2E/secure/data", false, 401, None),
        ("//secure", false, 401, None),
        ("/./secure", false, 401, None),
        ("/secure/", false, 401, None),
        ("/x/../secure", true, 200, Some("/secure")),
        ("/x/%2e%2e/secure/a/./b", true, 200, Some("/secure/a/b")),
        ("/x/..%2fsecure", false, 400, None),
        ("/x/..%2Fsecure", false, 400, None),
        ("/x/..%5csecure", false, 400, None),
        ("/x/..%5Csecure", false, 400, None),
        ("/x/..;/secure", false, 400, None),
        ("/x/.;/secure", false, 400, None),
        ("/..", false, 400, None),
        ("/a/../../secure", false, 400, None),
        ("/%2e%2e/secure", false, 400, None),
        ("/a%zz", false, 400, None),
        ("/a/./b//c", false, 200, Some("/a/b/c")),
        ("/%7Euser/%41%62%3a", false, 200, Some("/~user/Ab%3A")),
        ("/x;p=1/y", false, 200, Some("/x;p=1/y")),
        (
            "/q/../r?a=../b&c=%2e%2e",
            false,
            200,
            Some("/r?a=../b&c=%2e%2e"),
        ),
        ("/SECURE", false, 200, Some("/SECURE")),
        ("/Secure/../secure", false, 401, None),
    ];
    for (target, with_key, status, seen) in table {
        let key = if *with_key {
            format!("x-api-key: {KEY}\r\n")
        } else {
            String::new()
        };
        let answer = raw(
            addr,
            &format!(
                "GET {target} HTTP/1.1\r\nHost: api.example.com\r\n{key}Connection: close\r\n\r\n"
            ),
        )
        .await;
        assert_eq!(status_of(&answer), *status, "{target}: {answer}");
        if let Some(path) = seen {
            let doc: serde_json::Value = serde_json::from_str(body_of(&answer)).expect("json");
            assert_eq!(doc["path"], *path, "{target}");
            assert_eq!(
                doc["requestline"],
                format!("GET {path} HTTP/1.1"),
                "{target}"
            );
        }
    }
    // A raw backslash never reaches anyone either (refused by the parser or by us).
    let answer = raw(
        addr,
        "GET /x/..\\secure HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&answer), 400, "{answer}");
}

#[tokio::test]
async fn a_listener_may_keep_escaped_slashes_opaque() {
    let rec = Recorder::start().await.expect("recorder");
    let yaml = format!(
        r#"
listeners: [{{ name: public, address: "127.0.0.1:0", escaped_slashes: keep }}]
upstreams: [{{ name: rec, endpoints: ["{}"] }}]
routes:
  - {{ name: files, match: {{ path_prefix: /files }}, upstream: rec }}
"#,
        rec.addr
    );
    let gw = start(&yaml).await;
    let addr = gw.listener_addr("public").await.expect("addr");
    let answer = raw(
        addr,
        "GET /files/a%2fb/..%2F..%2Fetc HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&answer), 200, "{answer}");
    let got = rec.requests();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].target(), "/files/a%2Fb/..%2F..%2Fetc");
}

#[tokio::test]
async fn upstreams_get_origin_form_and_the_host_the_route_was_chosen_by() {
    let rec = Recorder::start().await.expect("recorder");
    let other = Recorder::start().await.expect("recorder");
    let yaml = format!(
        r#"
listeners: [{{ name: public, address: "127.0.0.1:0" }}]
upstreams:
  - {{ name: api, endpoints: ["{}"] }}
  - {{ name: other, endpoints: ["{}"] }}
routes:
  - {{ name: api, match: {{ host: api.example.com }}, upstream: api }}
  - {{ name: rest, upstream: other }}
"#,
        rec.addr, other.addr
    );
    let gw = start(&yaml).await;
    let addr = gw.listener_addr("public").await.expect("addr");

    // Origin form, the path and query as sent, one Host.
    let answer = raw(
        addr,
        "GET /v1/users?id=7 HTTP/1.1\r\nHost: api.example.com:8080\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&answer), 200, "{answer}");
    // Absolute form: routed by its authority, and that authority is the Host forwarded (the
    // client's Host header is ignored, RFC 9112 §3.2.2).
    let answer = raw(
        addr,
        "GET http://api.example.com/v1/x HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&answer), 200, "{answer}");
    let got = rec.requests();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0].request_line(), "GET /v1/users?id=7 HTTP/1.1");
    assert_eq!(got[0].header_values("host"), vec!["api.example.com:8080"]);
    assert_eq!(got[1].request_line(), "GET /v1/x HTTP/1.1");
    assert_eq!(got[1].header_values("host"), vec!["api.example.com"]);
    assert_eq!(
        got[1].header_values("x-forwarded-host"),
        vec!["api.example.com"]
    );
    assert!(other.requests().is_empty(), "{:?}", other.requests());

    // HTTP/2: the :authority is the Host.
    let url = format!("http://{addr}/h2?q=1");
    let req = Request::get(&url)
        .body(Full::new(Bytes::new()))
        .expect("req");
    let a = call(&client::h2c(), req, Duration::from_secs(5))
        .await
        .expect("h2");
    assert_eq!(a.status, StatusCode::OK);
    let got = other.requests();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].request_line(), "GET /h2?q=1 HTTP/1.1");
    assert_eq!(got[0].header_values("host"), vec![addr.to_string()]);

    // Two Host headers, or a Host that is not host[:port]: 400, nothing forwarded.
    other.clear();
    for bad in [
        "Host: a\r\nHost: b\r\n",
        "Host: a b\r\n",
        "Host: user@a\r\n",
    ] {
        let answer = raw(
            addr,
            &format!("GET /x HTTP/1.1\r\n{bad}Connection: close\r\n\r\n"),
        )
        .await;
        assert_eq!(status_of(&answer), 400, "{bad:?}: {answer}");
    }
    assert!(other.requests().is_empty());
}

#[tokio::test]
async fn forwarding_headers_are_extended_only_for_trusted_proxies() {
    let rec = Recorder::start().await.expect("recorder");
    let config = |trusted: &str| {
        format!(
            r#"
listeners: [{{ name: public, address: "127.0.0.1:0" {trusted} }}]
upstreams: [{{ name: rec, endpoints: ["{}"] }}]
routes: [{{ name: all, upstream: rec }}]
"#,
            rec.addr
        )
    };
    let spoof = "GET / HTTP/1.1\r\nHost: api.example.com\r\nX-Forwarded-For: 10.9.9.9\r\n\
                 X-Forwarded-Proto: https\r\nX-Forwarded-Host: admin.internal\r\n\
                 Forwarded: for=10.9.9.9\r\nConnection: close\r\n\r\n";
    // A reload that keeps the listener changes whom it trusts (for new connections).
    let gw = start(&config("")).await;
    let addr = gw.listener_addr("public").await.expect("addr");
    assert_eq!(status_of(&raw(addr, spoof).await), 200);
    gw.apply(common::config(&config(
        ", trusted_proxies: [\"127.0.0.0/8\"]",
    )))
    .await
    .expect("apply");
    assert_eq!(
        gw.listener_addr("public").await,
        Some(addr),
        "listener kept"
    );
    assert_eq!(status_of(&raw(addr, spoof).await), 200);
    let got = rec.requests();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].header_values("x-forwarded-for"), vec!["127.0.0.1"]);
    assert_eq!(
        got[1].header_values("x-forwarded-for"),
        vec!["10.9.9.9, 127.0.0.1"]
    );
    gw.shutdown().await;

    for (trusted, xff, xfp, xfh, fwd) in [
        (
            "",
            "127.0.0.1",
            "http",
            "api.example.com",
            "for=127.0.0.1;proto=http;host=\"api.example.com\"",
        ),
        (
            ", trusted_proxies: [\"127.0.0.0/8\"]",
            "10.9.9.9, 127.0.0.1",
            "https",
            "admin.internal",
            "for=10.9.9.9, for=127.0.0.1;proto=http;host=\"api.example.com\"",
        ),
        (
            ", trusted_proxies: [\"10.0.0.0/8\", \"::1\"]",
            "127.0.0.1",
            "http",
            "api.example.com",
            "for=127.0.0.1;proto=http;host=\"api.example.com\"",
        ),
    ] {
        rec.clear();
        let gw = start(&config(trusted)).await;
        let addr = gw.listener_addr("public").await.expect("addr");
        assert_eq!(status_of(&raw(addr, spoof).await), 200);
        let got = rec.requests();
        assert_eq!(got.len(), 1);
        let r = &got[0];
        assert_eq!(r.header_values("x-forwarded-for"), vec![xff], "{trusted}");
        assert_eq!(r.header_values("x-forwarded-proto"), vec![xfp], "{trusted}");
        assert_eq!(r.header_values("x-forwarded-host"), vec![xfh], "{trusted}");
        assert_eq!(r.header_values("forwarded"), vec![fwd], "{trusted}");
        gw.shutdown().await;
    }
}

#[tokio::test]
async fn health_probes_are_origin_form_with_a_host_and_pass_against_nginx() {
    let nginx =
        Nginx::start("location = /healthz { return 200 'ok'; } location / { return 200 'hello'; }")
            .await
            .expect("nginx (scripts/install-test-deps.sh installs it)");
    let rec = Recorder::start().await.expect("recorder");
    let yaml = format!(
        r#"
listeners: [{{ name: public, address: "127.0.0.1:0" }}]
admin: {{ address: "127.0.0.1:0" }}
upstreams:
  - name: web
    endpoints: ["{}"]
    health_check: {{ path: /healthz, interval: 100ms, healthy_after: 1, unhealthy_after: 1 }}
  - name: rec
    endpoints: ["{}"]
    health_check: {{ path: /healthz, host: svc.internal, interval: 100ms }}
routes:
  - {{ name: web, upstream: web }}
  - {{ name: rec, match: {{ path_prefix: /rec }}, upstream: rec }}
"#,
        nginx.addr, rec.addr
    );
    let gw = start(&yaml).await;
    let probed = eventually(Duration::from_secs(5), async || {
        nginx
            .access_log()
            .await
            .iter()
            .filter(|(_, r)| r.starts_with("GET /healthz"))
            .count()
            >= 5
    })
    .await;
    assert!(
        probed,
        "nginx saw no probes: {:?}",
        nginx.access_log().await
    );
    let probes: Vec<_> = nginx
        .access_log()
        .await
        .into_iter()
        .filter(|(_, r)| r.starts_with("GET /healthz"))
        .collect();
    assert!(
        probes
            .iter()
            .all(|(status, r)| *status == 200 && r == "GET /healthz HTTP/1.1"),
        "{probes:?}"
    );
    let metrics = client::get(&client::http1(), &format!("{}/metrics", admin_url(&gw)))
        .await
        .expect("metrics")
        .text();
    let healthy = format!(
        "rampart_upstream_endpoint_healthy{{upstream=\"web\",endpoint=\"{}\"}} 1",
        nginx.addr
    );
    assert!(metrics.contains(&healthy), "{metrics}");
    let base = base_url(&gw).await;
    let a = client::get(&client::http1(), &format!("{base}/"))
        .await
        .expect("get");
    assert_eq!(a.text(), "hello");

    let seen = eventually(Duration::from_secs(5), async || !rec.requests().is_empty()).await;
    assert!(seen);
    let probe = &rec.requests()[0];
    assert_eq!(probe.request_line(), "GET /healthz HTTP/1.1");
    assert_eq!(probe.header_values("host"), vec!["svc.internal"]);
}
