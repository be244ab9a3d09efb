//! Per-route rate limits: a local GCRA bucket per key, and the same bucket shared by several
//! gateways through a real Redis (Debian's `redis-server`). A Redis that stops answering
//! costs at most its deadline, once a second, and the route's `on_unavailable` says what
//! happens meanwhile.

use crate::common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use rampart_testkit::client::{self, Answer, call};
use rampart_testkit::redis::{BlackHoleTcp, RedisServer};

use common::*;

async fn get_as(base: &str, path: &str, who: Option<&str>) -> Answer {
    let mut req = Request::get(format!("{base}{path}"));
    if let Some(who) = who {
        req = req.header("x-client", who);
    }
    let req = req.body(Full::new(Bytes::new())).expect("request");
    call(&client::http1(), req, Duration::from_secs(5))
        .await
        .expect("answer")
}

fn limited_route(rate: &str, extra: &str) -> String {
    format!(
        "    rate_limit: {{ key: \"header:x-client\", rate: \"{rate}\", burst: 3{extra} }}\n  - name: free\n    match: {{ path_prefix: /free }}\n    upstream: backend\n"
    )
}

#[tokio::test]
async fn a_key_gets_its_burst_then_429_with_retry_after_and_the_ietf_headers() {
    let echo = rampart_testkit::EchoServer::start("echo")
        .await
        .expect("echo");
    let gw = start(&simple(&[echo.addr], "", &limited_route("2/s", ""))).await;
    let base = base_url(&gw).await;
    for left in [2, 1, 0] {
        let a = get_as(&base, "/x", Some("alice")).await;
        assert_eq!(a.status, 200);
        assert_eq!(a.header("ratelimit-policy"), Some("\"main\";q=2;w=1"));
        let state = a.header("ratelimit").expect("RateLimit");
        assert!(
            state.starts_with(&format!("\"main\";r={left};t=")),
            "{state}"
        );
    }
    let refused = get_as(&base, "/x", Some("alice")).await;
    assert_eq!(refused.status, 429);
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert_eq!(refused.header("ratelimit-policy"), Some("\"main\";q=2;w=1"));
    assert_eq!(refused.header("ratelimit"), Some("\"main\";r=0;t=1"));
    assert_eq!(refused.json()["error"], "rate_limited");
    // Another key has its own bucket; requests without the key share one.
    assert_eq!(get_as(&base, "/x", Some("bob")).await.status, 200);
    for _ in 0..3 {
        assert_eq!(get_as(&base, "/x", None).await.status, 200);
    }
    assert_eq!(get_as(&base, "/x", None).await.status, 429);
    // Other routes are not limited.
    assert_eq!(get_as(&base, "/free", Some("alice")).await.status, 200);
    // At 2/s one more fits after half a second.
    tokio::time::sleep(Duration::from_millis(550)).await;
    assert_eq!(get_as(&base, "/x", Some("alice")).await.status, 200);
    assert_eq!(get_as(&base, "/x", Some("alice")).await.status, 429);
    assert_eq!(
        metric(
            &gw,
            "rampart_rate_limited_total{route=\"main\",scope=\"local\"}"
        )
        .await,
        3.0
    );
    // A reload that keeps the limit keeps its buckets.
    let same = simple(&[echo.addr], "", &limited_route("2/s", ""))
        .replace("routes:", "limits: { max_inflight: 1000 }\nroutes:");
    gw.apply(config(&same)).await.expect("apply");
    assert_eq!(get_as(&base, "/x", Some("alice")).await.status, 429);
    gw.shutdown().await;
}

#[tokio::test]
async fn gateways_sharing_redis_share_one_quota() {
    let redis = RedisServer::start().await.expect("redis-server");
    let echo = rampart_testkit::EchoServer::start("echo")
        .await
        .expect("echo");
    // 10 a minute, a burst of 3 ... shared by both gateways; each alone would allow 3 now.
    let yaml = simple(&[echo.addr], "", &limited_route("10/m", ", global: true")).replace(
        "upstreams:",
        &format!(
            "redis: {{ address: \"{}\", timeout: 500ms }}\nupstreams:",
            redis.addr
        ),
    );
    let (a, b) = (start(&yaml).await, start(&yaml).await);
    let (base_a, base_b) = (base_url(&a).await, base_url(&b).await);
    let mut allowed = 0;
    for i in 0..6 {
        let base = if i % 2 == 0 { &base_a } else { &base_b };
        let answer = get_as(base, "/x", Some("carol")).await;
        if answer.status == 200 {
            allowed += 1;
        } else {
            assert_eq!(answer.status, 429);
        }
    }
    assert_eq!(allowed, 3, "one burst of 3 across both gateways");
    let global_refusals = metric(
        &a,
        "rampart_rate_limited_total{route=\"main\",scope=\"global\"}",
    )
    .await
        + metric(
            &b,
            "rampart_rate_limited_total{route=\"main\",scope=\"global\"}",
        )
        .await;
    assert_eq!(global_refusals, 3.0);
    assert!(metric(&a, "rampart_rate_limit_store_total{outcome=\"ok\"}").await >= 3.0);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn a_black_holed_redis_costs_one_deadline_a_second_and_on_unavailable_decides() {
    let hole = BlackHoleTcp::start().await.expect("black hole");
    let echo = rampart_testkit::EchoServer::start("echo")
        .await
        .expect("echo");
    let route = format!(
        "{}  - name: strict\n    match: {{ path_prefix: /strict }}\n    upstream: backend\n    rate_limit: {{ key: client_ip, rate: \"100/s\", global: true, on_unavailable: deny }}\n",
        limited_route("5/s", ", global: true")
    );
    let yaml = simple(&[echo.addr], "", &route).replace(
        "upstreams:",
        &format!(
            "redis: {{ address: \"{}\", timeout: 50ms }}\nupstreams:",
            hole.addr
        ),
    );
    let gw = start(&yaml).await;
    let base = base_url(&gw).await;
    // on_unavailable: allow (the default) — served, within the deadline plus a margin.
    let mut slowest = Duration::ZERO;
    let started = Instant::now();
    for i in 0..20 {
        let t = Instant::now();
        let who = format!("dave-{i}");
        assert_eq!(get_as(&base, "/x", Some(&who)).await.status, 200);
        slowest = slowest.max(t.elapsed());
    }
    assert!(slowest < Duration::from_millis(500), "slowest {slowest:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // The local limit stays as the floor while Redis is away.
    let mut local_refused = false;
    for _ in 0..5 {
        if get_as(&base, "/x", Some("erin")).await.status == 429 {
            local_refused = true;
        }
    }
    assert!(local_refused, "burst 3 still holds locally");
    // on_unavailable: deny — 503 with Retry-After, at once.
    let t = Instant::now();
    let denied = get_as(&base, "/strict", None).await;
    assert_eq!(denied.status, 503);
    assert_eq!(denied.json()["error"], "rate_limit_unavailable");
    assert_eq!(denied.header("retry-after"), Some("1"));
    assert!(t.elapsed() < Duration::from_millis(500));
    // Routes without a limit never touch Redis.
    assert_eq!(get_as(&base, "/free", None).await.status, 200);
    let failed = metric(&gw, "rampart_rate_limit_store_total{outcome=\"failed\"}").await;
    let skipped = metric(&gw, "rampart_rate_limit_store_total{outcome=\"skipped\"}").await;
    assert!(
        (1.0..=4.0).contains(&failed),
        "waited out the deadline {failed} times"
    );
    assert!(skipped >= 20.0, "the rest answered at once ({skipped})");
    gw.shutdown().await;
}

#[tokio::test]
async fn a_redis_that_comes_back_is_used_again() {
    let addr = rampart_testkit::ports::free_loopback_addr().expect("port");
    let echo = rampart_testkit::EchoServer::start("echo")
        .await
        .expect("echo");
    let yaml = simple(&[echo.addr], "", &limited_route("10/m", ", global: true")).replace(
        "upstreams:",
        &format!("redis: {{ address: \"{addr}\", timeout: 200ms }}\nupstreams:"),
    );
    let gw = start(&yaml).await;
    let base = base_url(&gw).await;
    // Nothing listens yet: the local floor alone (burst 3).
    assert_eq!(get_as(&base, "/x", Some("frank")).await.status, 200);
    let redis = RedisServer::start_on(addr).await.expect("redis-server");
    // Within the backoff (1 s) plus a little, the shared bucket is in use again: a second
    // gateway's requests count against it.
    let other = start(&yaml).await;
    let other_base = base_url(&other).await;
    let mut n = 0;
    assert!(
        eventually(Duration::from_secs(5), async || {
            n += 1;
            get_as(&base, "/x", Some(&format!("probe-{n}"))).await;
            metric(&gw, "rampart_rate_limit_store_total{outcome=\"ok\"}").await >= 1.0
        })
        .await,
        "the store answered again"
    );
    for _ in 0..3 {
        assert_eq!(get_as(&other_base, "/x", Some("grace")).await.status, 200);
    }
    assert_eq!(
        get_as(&base, "/x", Some("grace")).await.status,
        429,
        "the shared bucket is spent"
    );
    drop(redis);
    gw.shutdown().await;
    other.shutdown().await;
}
