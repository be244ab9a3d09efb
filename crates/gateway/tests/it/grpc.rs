//! gRPC end to end against Python's grpcio (gRPC's C core) on both sides: HTTP/2 to the
//! upstream (h2c and TLS with ALPN), every streaming shape, trailers and metadata both ways,
//! `grpc-timeout` enforced by the gateway for the whole call, the gateway's own errors as
//! gRPC statuses, and gRPC health checks.

use crate::common;

use std::time::Duration;

use rampart_testkit::peer::{Peer, python_json};
use sha2::Digest;

use common::*;

const KEY: &str = "k-grpc";

async fn grpc_server(name: &str) -> Peer {
    Peer::python_server("grpc_peer.py", &["server", name])
        .await
        .expect("grpc server")
}

/// One grpcio client call through `target`; its JSON report.
async fn call(target: &str, case: &[&str]) -> serde_json::Value {
    let mut args = vec!["client", target];
    args.extend_from_slice(case);
    python_json("grpc_peer.py", &args, Duration::from_secs(30)).await
}

fn yaml(a: std::net::SocketAddr, extra: &str) -> String {
    let key_hash = hex::encode(sha2::Sha256::digest(KEY.as_bytes()));
    format!(
        r#"
listeners: [{{ name: public, address: "127.0.0.1:0" }}]
admin: {{ address: "127.0.0.1:0" }}
auth_providers: [{{ name: keys, type: api_key, header: x-api-key, keys_sha256: ["{key_hash}"] }}]
upstreams:
  - {{ name: grpc, endpoints: ["{a}"], protocol: h2 }}
  - {{ name: down, endpoints: ["127.0.0.1:1"], protocol: h2, connect_timeout: 200ms }}
{extra}
routes:
  - {{ name: echo, match: {{ path_prefix: /rampart.test.Echo }}, upstream: grpc, timeout: 5s }}
  - {{ name: keyed, match: {{ path_prefix: /rampart.test.Echo, headers: {{ x-route: keyed }} }}, upstream: grpc, auth: keys }}
  - {{ name: limited, match: {{ path_prefix: /rampart.test.Echo, headers: {{ x-route: limited }} }}, upstream: grpc, rate_limit: {{ key: "header:x-route", rate: 1/m, burst: 1 }} }}
  - {{ name: down, match: {{ path_prefix: /rampart.test.Echo, headers: {{ x-route: down }} }}, upstream: down }}
  - {{ name: hurried, match: {{ path_prefix: /rampart.test.Echo, headers: {{ x-route: hurried }} }}, upstream: grpc, timeout: 300ms }}
"#
    )
}

#[tokio::test]
async fn unary_and_streaming_calls_pass_with_their_trailers_and_metadata() {
    let a = grpc_server("a").await;
    let gw = start(&yaml(a.addr.expect("addr"), "")).await;
    let target = gw.listener_addr("public").await.expect("addr").to_string();
    let unary = call(&target, &["unary", "x-tenant=acme"]).await;
    assert_eq!(unary["code"], "OK", "{unary}");
    assert_eq!(unary["reply"]["name"], "a");
    assert_eq!(unary["reply"]["request"], "hello");
    let md = &unary["reply"]["metadata"];
    assert_eq!(md["x-tenant"], "acme", "client metadata reaches the server");
    assert_eq!(md["x-forwarded-for"], "127.0.0.1");
    assert!(md["x-request-id"].is_string());
    assert_eq!(
        unary["trailing"]["x-served-by"], "a",
        "the server's trailers reach the client"
    );

    let stream = call(&target, &["server_stream", "100"]).await;
    assert_eq!(stream["code"], "OK", "{stream}");
    assert_eq!(stream["messages"].as_array().map(Vec::len), Some(100));
    assert_eq!(stream["messages"][99], "99");
    let upload = call(&target, &["client_stream", "50"]).await;
    assert_eq!(upload["total"], 50_000, "{upload}");
    let bidi = call(&target, &["bidi", "20"]).await;
    assert_eq!(bidi["echoed"], 20, "{bidi}");

    // A status the server chose, with its details and trailing metadata.
    let fail = call(&target, &["fail"]).await;
    assert_eq!(fail["code"], "NOT_FOUND", "{fail}");
    assert_eq!(fail["details"], "no such thing");
    assert_eq!(fail["trailing"]["x-detail"], "gone");
    gw.shutdown().await;
}

#[tokio::test]
async fn the_gateways_own_errors_are_grpc_statuses() {
    let a = grpc_server("a").await;
    let gw = start(&yaml(a.addr.expect("addr"), "")).await;
    let target = gw.listener_addr("public").await.expect("addr").to_string();
    let unauthenticated = call(&target, &["unary", "x-route=keyed"]).await;
    assert_eq!(
        unauthenticated["code"], "UNAUTHENTICATED",
        "{unauthenticated}"
    );
    assert!(
        unauthenticated["details"]
            .as_str()
            .is_some_and(|d| d.contains("rampart")),
        "{unauthenticated}"
    );
    let key = format!("x-api-key={KEY}");
    let allowed = call(&target, &["unary", "x-route=keyed", &key]).await;
    assert_eq!(allowed["code"], "OK");
    assert_eq!(
        call(&target, &["unary", "x-route=limited"]).await["code"],
        "OK"
    );
    let exhausted = call(&target, &["unary", "x-route=limited"]).await;
    assert_eq!(exhausted["code"], "RESOURCE_EXHAUSTED", "{exhausted}");
    let unavailable = call(&target, &["unary", "x-route=down"]).await;
    assert_eq!(unavailable["code"], "UNAVAILABLE", "{unavailable}");
    let late = call(&target, &["slow", "3", "x-route=hurried"]).await;
    assert_eq!(late["code"], "DEADLINE_EXCEEDED", "{late}");
    assert!(
        late["details"]
            .as_str()
            .is_some_and(|d| d.contains("rampart"))
    );
    assert!(late["seconds"].as_f64().is_some_and(|s| s < 2.0), "{late}");
    gw.shutdown().await;
    // No route at all: UNIMPLEMENTED.
    let gw = start(
        &yaml(a.addr.expect("addr"), "")
            .replace("path_prefix: /rampart.test.Echo", "path_prefix: /other"),
    )
    .await;
    let target = gw.listener_addr("public").await.expect("addr").to_string();
    assert_eq!(call(&target, &["unary"]).await["code"], "UNIMPLEMENTED");
    gw.shutdown().await;
}

#[tokio::test]
async fn grpc_timeout_bounds_the_whole_call_at_the_gateway() {
    // An upstream that ignores grpc-timeout, so only the gateway can end the call in time.
    let bare = Peer::python_server("grpc_peer.py", &["bare-server"])
        .await
        .expect("bare h2 server");
    let gw = start(&yaml(bare.addr.expect("addr"), "")).await;
    let target = gw.listener_addr("public").await.expect("addr").to_string();
    let raw = async |method: &str, request: &str, timeout: &str| {
        python_json(
            "grpc_peer.py",
            &["raw", &target, method, request, timeout],
            Duration::from_secs(30),
        )
        .await
    };
    // The route allows 5 s; the client's grpc-timeout (300 ms) is what holds, enforced here:
    // this client has no deadline of its own.
    let unary = raw("Slow", "3", "300m").await;
    assert_eq!(unary["status"], "4", "{unary}");
    assert!(
        unary["message"]
            .as_str()
            .is_some_and(|m| m.contains("rampart")),
        "{unary}"
    );
    assert!(
        unary["seconds"]
            .as_f64()
            .is_some_and(|s| (0.25..2.0).contains(&s)),
        "{unary}"
    );
    // A stream that outlives its deadline ends there, with DEADLINE_EXCEEDED in its trailers
    // after the messages that came in time.
    let stream = raw("SlowStream", "30", "450m").await;
    assert_eq!(stream["status"], "4", "{stream}");
    assert!(
        stream["message"]
            .as_str()
            .is_some_and(|m| m.contains("rampart")),
        "{stream}"
    );
    let messages = stream["messages"].as_u64().unwrap_or(0);
    assert!((1..30).contains(&messages), "{stream}");
    assert!(
        stream["seconds"].as_f64().is_some_and(|s| s < 2.0),
        "{stream}"
    );
    // Within its deadline a call is untouched.
    let quick = raw("SlowStream", "3", "5S").await;
    assert_eq!(quick["status"], "0", "{quick}");
    gw.shutdown().await;
}

#[tokio::test]
async fn grpc_health_checks_take_a_not_serving_endpoint_out_and_back() {
    let (a, b) = (grpc_server("a").await, grpc_server("b").await);
    let (a_addr, b_addr) = (a.addr.expect("a"), b.addr.expect("b"));
    let extra = format!(
        "  - {{ name: checked, endpoints: [\"{a_addr}\", \"{b_addr}\"], protocol: h2, balance: round_robin, health_check: {{ grpc_service: \"\", interval: 100ms, timeout: 500ms, healthy_after: 1, unhealthy_after: 1 }} }}"
    );
    let gw = start(&yaml(a_addr, &extra).replace(
        "{ name: echo, match: { path_prefix: /rampart.test.Echo }, upstream: grpc,",
        "{ name: echo, match: { path_prefix: /rampart.test.Echo }, upstream: checked,",
    ))
    .await;
    let target = gw.listener_addr("public").await.expect("addr").to_string();
    let b_gauge =
        format!("rampart_upstream_endpoint_healthy{{upstream=\"checked\",endpoint=\"{b_addr}\"}}");
    let mut names = std::collections::BTreeSet::new();
    for _ in 0..4 {
        names.insert(call(&target, &["unary"]).await["reply"]["name"].to_string());
    }
    assert_eq!(names.len(), 2, "both serve at first: {names:?}");
    assert_eq!(
        call(&b_addr.to_string(), &["set_health", "2"]).await["code"],
        "OK"
    );
    assert!(
        eventually(Duration::from_secs(5), async || metric(&gw, &b_gauge).await
            == 0.0)
        .await,
        "b is out once it says NOT_SERVING"
    );
    for _ in 0..6 {
        assert_eq!(call(&target, &["unary"]).await["reply"]["name"], "a");
    }
    assert_eq!(
        call(&b_addr.to_string(), &["set_health", "1"]).await["code"],
        "OK"
    );
    assert!(
        eventually(Duration::from_secs(5), async || metric(&gw, &b_gauge).await
            == 1.0)
        .await,
        "b is back once it says SERVING"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn upstreams_over_tls_speak_what_alpn_settles() {
    let cert = TestCert::new("grpc-tls");
    let (cert_path, key_path) = (
        cert.cert_path.to_str().expect("path"),
        cert.key_path.to_str().expect("path"),
    );
    let grpc_tls = Peer::python_server("grpc_peer.py", &["server", "tls", cert_path, key_path])
        .await
        .expect("grpc tls server");
    let http1_tls = Peer::python_server("path_echo.py", &[cert_path, key_path])
        .await
        .expect("https server");
    let ca = cert.cert_path.display();
    let gw = start(&format!(
        r#"
listeners: [{{ name: public, address: "127.0.0.1:0" }}]
upstreams:
  - {{ name: h2, endpoints: ["{g}"], protocol: h2, tls: {{ server_name: localhost, ca_file: "{ca}" }} }}
  - {{ name: auto-h2, endpoints: ["{g}"], protocol: auto, tls: {{ server_name: localhost, ca_file: "{ca}" }} }}
  - {{ name: auto-h1, endpoints: ["{h}"], protocol: auto, tls: {{ server_name: localhost, ca_file: "{ca}" }} }}
  - {{ name: untrusted, endpoints: ["{g}"], protocol: h2, tls: {{ server_name: localhost }} }}
routes:
  - {{ name: h2, match: {{ path_prefix: /rampart.test.Echo }}, upstream: h2 }}
  - {{ name: auto-h2, match: {{ path_prefix: /rampart.test.Echo, headers: {{ x-route: auto }} }}, upstream: auto-h2 }}
  - {{ name: untrusted, match: {{ path_prefix: /rampart.test.Echo, headers: {{ x-route: untrusted }} }}, upstream: untrusted }}
  - {{ name: auto-h1, match: {{ path_prefix: /web }}, upstream: auto-h1 }}
"#,
        g = grpc_tls.addr.expect("addr"),
        h = http1_tls.addr.expect("addr"),
    ))
    .await;
    let addr = gw.listener_addr("public").await.expect("addr");
    let target = addr.to_string();
    let h2 = call(&target, &["unary"]).await;
    assert_eq!(h2["code"], "OK", "{h2}");
    assert_eq!(h2["reply"]["name"], "tls");
    let auto = call(&target, &["unary", "x-route=auto"]).await;
    assert_eq!(auto["code"], "OK", "{auto}");
    // A certificate that chains to nothing the gateway trusts: no connection.
    let untrusted = call(&target, &["unary", "x-route=untrusted"]).await;
    assert_eq!(untrusted["code"], "UNAVAILABLE", "{untrusted}");
    // An HTTPS server that offers only HTTP/1.1: `auto` speaks HTTP/1.1 to it.
    let web = rampart_testkit::client::get(
        &rampart_testkit::client::http1(),
        &format!("http://{addr}/web/page"),
    )
    .await
    .expect("get");
    assert_eq!(web.status, 200, "{}", web.text());
    assert_eq!(web.json()["requestline"], "GET /web/page HTTP/1.1");
    gw.shutdown().await;
}
