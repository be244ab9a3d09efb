//! The seed's containment with every gateway feature switched on at once: the auth server's
//! name resolvable only by a black-hole DNS (the 2013 outage), the Redis of global rate
//! limits black-holed, the OTLP receiver hanging, the access log on a full disk. Requests on
//! the seed's route fail fast; every other route keeps serving, none waits beyond its
//! deadline; the admin listener answers throughout.

use crate::common;

use std::time::{Duration, Instant};

use http::StatusCode;
use rampart_testkit::EchoServer;
use rampart_testkit::client;
use rampart_testkit::dns::BlackHoleDns;
use rampart_testkit::load::{LoadPlan, run};
use rampart_testkit::peer::Peer;
use rampart_testkit::redis::BlackHoleTcp;

use common::*;

#[tokio::test]
async fn the_seed_is_contained_with_every_feature_switched_on() {
    let backend = EchoServer::start("b").await.expect("backend");
    let dns = BlackHoleDns::start().await.expect("dns");
    let redis = BlackHoleTcp::start().await.expect("redis black hole");
    let otlp = Peer::python_server("otlp_receiver.py", &["hang"])
        .await
        .expect("hanging receiver");
    let gw = start(&format!(
        r#"
listeners: [{{ name: public, address: "127.0.0.1:0" }}]
admin: {{ address: "127.0.0.1:0" }}
resolver: {{ nameservers: ["{dns}"], timeout: 100ms, attempts: 1, negative_ttl: 1s }}
access_log: {{ path: /dev/full }}
tracing: {{ otlp_endpoint: "http://{otlp}/v1/traces", sample: 1.0, timeout: 200ms }}
redis: {{ address: "{redis}", timeout: 25ms }}
auth_providers:
  - {{ name: main, type: introspection, endpoint: "http://auth.blackhole.test:9000/introspect", timeout: 250ms, on_failure: deny }}
upstreams: [{{ name: backend, endpoints: ["{backend}"] }}]
routes:
  - name: secure
    match: {{ path_prefix: /secure }}
    upstream: backend
    auth: main
    rate_limit: {{ key: client_ip, rate: 100000/s, global: true }}
  - name: public
    match: {{ path_prefix: /public }}
    upstream: backend
    rate_limit: {{ key: client_ip, rate: 100000/s, global: true, on_unavailable: allow }}
    cors: {{ origins: ["https://app.example.com"] }}
    websocket: true
limits: {{ max_inflight: 64 }}
"#,
        dns = dns.addr,
        otlp = otlp.addr.expect("addr"),
        redis = redis.addr,
        backend = backend.addr,
    ))
    .await;
    let base = base_url(&gw).await;
    let admin = admin_url(&gw);
    let secure = LoadPlan::new(
        format!("{base}/secure").parse().expect("uri"),
        16,
        4000,
        Duration::from_secs(3),
    )
    .header("authorization", "Bearer some-token");
    let public = LoadPlan::new(
        format!("{base}/public").parse().expect("uri"),
        16,
        100_000,
        Duration::from_secs(3),
    )
    .header("origin", "https://app.example.com");
    let secure_load = tokio::spawn(async move { run(&client::http1(), &secure).await });
    let public_load = tokio::spawn(async move { run(&client::http1(), &public).await });
    let c = client::http1();
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let t = Instant::now();
        let m = client::get(&c, &format!("{admin}/metrics"))
            .await
            .expect("metrics");
        assert_eq!(m.status, StatusCode::OK);
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "admin took {:?}",
            t.elapsed()
        );
    }
    let secure = secure_load.await.expect("join");
    let public = public_load.await.expect("join");
    // The seed's route: every request 503 at the auth deadline, none held longer.
    assert!(secure.sent > 50, "secure requests: {}", secure.sent);
    assert_eq!(
        secure.by_status.get(&503).copied(),
        Some(secure.sent),
        "{:?}",
        secure.by_status
    );
    assert!(
        secure.percentile(1.0) < Duration::from_secs(1),
        "{:?}",
        secure.percentile(1.0)
    );
    // Every other route serves, every request within its bounds.
    assert_eq!(
        public.failed(),
        0,
        "{:?} {:?}",
        public.by_status,
        public.errors
    );
    assert!(public.sent > 500, "public requests: {}", public.sent);
    assert!(
        public.percentile(0.99) < Duration::from_millis(250),
        "public p99 {:?}",
        public.percentile(0.99)
    );
    assert!(
        public.percentile(1.0) < Duration::from_secs(1),
        "{:?}",
        public.percentile(1.0)
    );
    // Each dependency was tried, failed, and was counted rather than waited for.
    assert!(dns.queries() > 0);
    assert!(metric(&gw, "rampart_rate_limit_store_total{outcome=\"failed\"}").await >= 1.0);
    assert!(metric(&gw, "rampart_rate_limit_store_total{outcome=\"skipped\"}").await > 100.0);
    assert!(
        metric(
            &gw,
            "rampart_access_log_dropped_total{reason=\"write_error\"}"
        )
        .await
            > 500.0
    );
    let spans_lost = metric(&gw, "rampart_trace_spans_total{outcome=\"dropped\"}").await
        + metric(&gw, "rampart_trace_spans_total{outcome=\"failed\"}").await;
    assert!(spans_lost > 500.0, "spans lost: {spans_lost}");
    assert_eq!(
        metric(&gw, "rampart_trace_spans_total{outcome=\"exported\"}").await,
        0.0
    );
    gw.shutdown().await;
}
