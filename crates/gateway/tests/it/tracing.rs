//! Tracing: W3C `traceparent` propagated or started, spans for the request, its auth call and
//! each upstream attempt, exported over OTLP/HTTP to a receiver that decodes them (Python);
//! a receiver that hangs costs spans, counted, never a request's time.

use crate::common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use rampart_testkit::client::{self, Answer, call};
use rampart_testkit::peer::Peer;
use sha2::Digest;

use common::*;

const KEY: &str = "k-trace";
const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

fn yaml(backend: std::net::SocketAddr, receiver: std::net::SocketAddr, sample: &str) -> String {
    let key_hash = hex::encode(sha2::Sha256::digest(KEY.as_bytes()));
    format!(
        r#"
listeners: [{{ name: public, address: "127.0.0.1:0" }}]
admin: {{ address: "127.0.0.1:0" }}
tracing: {{ otlp_endpoint: "http://{receiver}/v1/traces", sample: {sample}, service_name: edge, timeout: 300ms, buffer: 64 }}
auth_providers: [{{ name: keys, type: api_key, header: x-api-key, keys_sha256: ["{key_hash}"] }}]
upstreams: [{{ name: python, endpoints: ["{backend}"] }}]
routes:
  - {{ name: keyed, match: {{ path_prefix: /keyed }}, upstream: python, auth: keys }}
  - {{ name: open, upstream: python }}
"#
    )
}

async fn get(base: &str, path: &str, headers: &[(&str, &str)]) -> Answer {
    let mut req = Request::get(format!("{base}{path}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    call(
        &client::http1(),
        req.body(Full::new(Bytes::new())).expect("request"),
        Duration::from_secs(5),
    )
    .await
    .expect("answer")
}

/// The traceparent the Python backend received.
fn upstream_traceparent(answer: &Answer) -> String {
    answer.json()["headers"]
        .as_array()
        .expect("headers")
        .iter()
        .find(|h| h[0] == "traceparent")
        .and_then(|h| h[1].as_str())
        .expect("the upstream got a traceparent")
        .to_owned()
}

async fn spans(receiver: std::net::SocketAddr) -> Vec<serde_json::Value> {
    client::get(&client::http1(), &format!("http://{receiver}/spans"))
        .await
        .expect("spans")
        .json()
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// A Python backend, a decoding OTLP receiver (its address) and a gateway tracing to it.
async fn traced(sample: &str) -> (Peer, Peer, std::net::SocketAddr, rampart_gateway::Gateway) {
    let backend = Peer::python_server("path_echo.py", &[])
        .await
        .expect("backend");
    let receiver = Peer::python_server("otlp_receiver.py", &[])
        .await
        .expect("receiver");
    let r = receiver.addr.expect("addr");
    let gw = start(&yaml(backend.addr.expect("addr"), r, sample)).await;
    (backend, receiver, r, gw)
}

#[tokio::test]
async fn a_request_is_traced_through_auth_and_upstream_and_its_spans_exported() {
    let (_backend, _receiver, r, gw) = traced("1.0").await;
    let base = base_url(&gw).await;
    let parent = format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01");
    let answer = get(
        &base,
        "/keyed/item",
        &[
            ("traceparent", &parent),
            ("tracestate", "vendor=1"),
            ("x-api-key", KEY),
        ],
    )
    .await;
    assert_eq!(answer.status, 200);
    // The upstream is a child of the gateway's attempt span, in the client's trace.
    let seen = upstream_traceparent(&answer);
    let parts: Vec<&str> = seen.split('-').collect();
    assert_eq!(parts[0], "00");
    assert_eq!(parts[1], CLIENT_TRACE);
    assert_ne!(parts[2], CLIENT_SPAN);
    assert_eq!(parts[3], "01");
    let tracestate = answer.json()["headers"]
        .as_array()
        .expect("headers")
        .iter()
        .any(|h| h[0] == "tracestate" && h[1] == "vendor=1");
    assert!(tracestate, "tracestate passes");

    assert!(
        eventually(Duration::from_secs(5), async || spans(r).await.len() >= 3).await,
        "three spans exported"
    );
    let got = spans(r).await;
    assert_eq!(got.len(), 3, "{got:#?}");
    let find = |kind: u64| {
        got.iter()
            .find(|s| s["kind"] == kind)
            .unwrap_or_else(|| panic!("no span of kind {kind}: {got:#?}"))
    };
    let (server, auth, upstream) = (find(2), find(1), find(3));
    for s in [server, auth, upstream] {
        assert_eq!(s["trace_id"], CLIENT_TRACE);
        assert_eq!(s["service"], "edge");
    }
    assert_eq!(
        server["parent_id"], CLIENT_SPAN,
        "the server span is the client's child"
    );
    assert_eq!(server["name"], "GET keyed");
    assert_eq!(server["attributes"]["http.response.status_code"], 200);
    assert_eq!(server["attributes"]["http.route"], "keyed");
    assert_eq!(auth["parent_id"], server["span_id"]);
    assert_eq!(auth["name"], "auth keys");
    assert_eq!(auth["attributes"]["rampart.auth.result"], "ok");
    assert_eq!(upstream["parent_id"], server["span_id"]);
    assert_eq!(
        upstream["span_id"], parts[2],
        "the upstream's parent is the attempt span"
    );
    assert_eq!(upstream["attributes"]["http.response.status_code"], 200);
    assert!(server["start"].as_u64() <= upstream["start"].as_u64());
    assert!(upstream["end"].as_u64() <= server["end"].as_u64());
    assert_eq!(
        metric(&gw, "rampart_trace_spans_total{outcome=\"exported\"}").await,
        3.0
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn new_traces_are_sampled_at_the_configured_share_and_parents_decide_for_theirs() {
    let (_backend, _receiver, r, gw) = traced("0").await;
    let base = base_url(&gw).await;
    // No traceparent, sample 0: a trace is started and propagated, not recorded.
    let fresh = upstream_traceparent(&get(&base, "/x", &[]).await);
    assert!(
        fresh.starts_with("00-") && fresh.ends_with("-00"),
        "{fresh}"
    );
    assert_ne!(&fresh[3..35], CLIENT_TRACE);
    // A sampled parent is followed whatever the share.
    let parent = format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01");
    let followed = upstream_traceparent(&get(&base, "/x", &[("traceparent", &parent)]).await);
    assert!(followed.ends_with("-01"), "{followed}");
    // An unsampled parent is not recorded.
    let unsampled = format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-00");
    get(&base, "/x", &[("traceparent", &unsampled)]).await;
    assert!(eventually(Duration::from_secs(5), async || spans(r).await.len() >= 2).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = spans(r).await;
    assert_eq!(
        got.len(),
        2,
        "only the sampled request's two spans: {got:#?}"
    );
    assert!(got.iter().all(|s| s["trace_id"] == CLIENT_TRACE));
    gw.shutdown().await;
}

#[tokio::test]
async fn a_hanging_receiver_costs_spans_never_requests() {
    let backend = rampart_testkit::EchoServer::start("echo")
        .await
        .expect("echo");
    let receiver = Peer::python_server("otlp_receiver.py", &["hang"])
        .await
        .expect("receiver");
    let gw = start(&yaml(backend.addr, receiver.addr.expect("addr"), "1.0")).await;
    let base = base_url(&gw).await;
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    for _ in 0..300 {
        let t = Instant::now();
        assert_eq!(get(&base, "/x", &[]).await.status, 200);
        slowest = slowest.max(t.elapsed());
    }
    assert!(slowest < Duration::from_millis(500), "slowest {slowest:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
    // 300 requests, two spans each, a 64-span queue and exports that time out at 300 ms:
    // every span is lost — dropped at the queue or failed with its export — and counted.
    let lost = async || {
        metric(&gw, "rampart_trace_spans_total{outcome=\"dropped\"}").await
            + metric(&gw, "rampart_trace_spans_total{outcome=\"failed\"}").await
    };
    assert!(
        eventually(Duration::from_secs(10), async || lost().await == 600.0).await,
        "lost {}",
        lost().await
    );
    assert!(metric(&gw, "rampart_trace_spans_total{outcome=\"failed\"}").await > 0.0);
    assert_eq!(
        metric(&gw, "rampart_trace_spans_total{outcome=\"exported\"}").await,
        0.0
    );
    gw.shutdown().await;
}
