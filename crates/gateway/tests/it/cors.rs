//! CORS: preflights answered by the gateway (before auth, never forwarded), the response
//! headers added for allowed origins only, and a real browser (headless Chromium) that reads
//! what the policy allows and is refused what it does not.

use crate::common;

use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use rampart_testkit::client::{self, Answer, call};
use rampart_testkit::peer::Peer;
use sha2::Digest;

use common::*;

const KEY: &str = "k-cors";

async fn send(req: http::request::Builder) -> Answer {
    let req = req.body(Full::new(Bytes::new())).expect("request");
    call(&client::http1(), req, Duration::from_secs(5))
        .await
        .expect("answer")
}

fn yaml(echo: std::net::SocketAddr, origins: &str) -> String {
    let key_hash = hex::encode(sha2::Sha256::digest(KEY.as_bytes()));
    format!(
        r#"
listeners: [{{ name: public, address: "127.0.0.1:0" }}]
admin: {{ address: "127.0.0.1:0" }}
auth_providers: [{{ name: keys, type: api_key, header: x-api-key, keys_sha256: ["{key_hash}"] }}]
upstreams: [{{ name: backend, endpoints: ["{echo}"] }}]
routes:
  - name: api
    match: {{ path_prefix: /api, methods: [GET, PUT] }}
    upstream: backend
    auth: keys
    rate_limit: {{ key: api_key, rate: "2/m", burst: 2 }}
    cors: {{ origins: [{origins}], headers: [x-api-key, content-type], expose_headers: [ratelimit, x-request-id], max_age: 5m, credentials: true }}
  - {{ name: plain, match: {{ path_prefix: /plain }}, upstream: backend }}
"#
    )
}

#[tokio::test]
async fn preflights_are_answered_here_and_only_allowed_origins_get_the_headers() {
    let echo = rampart_testkit::EchoServer::start("echo")
        .await
        .expect("echo");
    let gw = start(&yaml(
        echo.addr,
        "\"https://app.example.com\", \"https://*.tenant.example\"",
    ))
    .await;
    let base = base_url(&gw).await;
    let preflight = |origin: &str, method: &str, headers: &str| {
        Request::options(format!("{base}/api/items"))
            .header("origin", origin)
            .header("access-control-request-method", method)
            .header("access-control-request-headers", headers)
    };
    let before = echo.control.hits();
    let ok = send(preflight(
        "https://app.example.com",
        "PUT",
        "X-Api-Key, Content-Type",
    ))
    .await;
    assert_eq!(ok.status, 204, "{}", ok.text());
    assert_eq!(
        ok.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(ok.header("access-control-allow-methods"), Some("GET, PUT"));
    assert_eq!(
        ok.header("access-control-allow-headers"),
        Some("x-api-key, content-type")
    );
    assert_eq!(ok.header("access-control-max-age"), Some("300"));
    assert_eq!(ok.header("access-control-allow-credentials"), Some("true"));
    assert!(ok.header("vary").is_some_and(|v| v.contains("Origin")));
    let sub = send(preflight("https://a.b.tenant.example", "GET", "x-api-key")).await;
    assert_eq!(sub.status, 204);
    for (origin, method, headers, why) in [
        (
            "https://evil.example.com",
            "GET",
            "x-api-key",
            "origin not allowed",
        ),
        (
            "https://tenant.example",
            "GET",
            "x-api-key",
            "origin not allowed",
        ),
        (
            "https://app.example.com",
            "DELETE",
            "x-api-key",
            "method DELETE not allowed",
        ),
        (
            "https://app.example.com",
            "GET",
            "x-secret",
            "header x-secret not allowed",
        ),
    ] {
        let refused = send(preflight(origin, method, headers)).await;
        assert_eq!(refused.status, 403, "{origin} {method} {headers}");
        assert_eq!(refused.json()["error"], "cors_refused");
        assert!(refused.text().contains(why), "{}", refused.text());
        assert_eq!(refused.header("access-control-allow-origin"), None);
    }
    assert_eq!(
        echo.control.hits(),
        before,
        "no preflight reached the upstream"
    );

    // The real request: headers for an allowed origin, on the upstream's answer and on the
    // gateway's own (a 429), none for another origin.
    let get = |origin: &str| {
        Request::get(format!("{base}/api/items"))
            .header("origin", origin)
            .header("x-api-key", KEY)
    };
    let allowed = send(get("https://app.example.com")).await;
    assert_eq!(allowed.status, 200);
    assert_eq!(
        allowed.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(
        allowed.header("access-control-expose-headers"),
        Some("ratelimit, x-request-id")
    );
    assert_eq!(
        allowed.header("access-control-allow-credentials"),
        Some("true")
    );
    let other = send(get("https://evil.example.com")).await;
    assert_eq!(
        other.status, 200,
        "CORS is the browser's rule: the request is served"
    );
    assert_eq!(other.header("access-control-allow-origin"), None);
    let limited = send(get("https://app.example.com")).await;
    assert_eq!(limited.status, 429);
    assert_eq!(
        limited.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    // A route without CORS forwards OPTIONS like any other request.
    let plain = send(
        Request::options(format!("{base}/plain"))
            .header("origin", "https://app.example.com")
            .header("access-control-request-method", "GET"),
    )
    .await;
    assert_eq!(plain.header("access-control-allow-origin"), None);
    gw.shutdown().await;
}

#[tokio::test]
async fn a_browser_reads_what_the_policy_allows_and_is_refused_the_rest() {
    if rampart_testkit::browser::chromium().is_none() {
        panic!("headless Chromium is missing: run scripts/install-test-deps.sh");
    }
    let echo = rampart_testkit::EchoServer::start("echo")
        .await
        .expect("echo");
    let dir = std::env::temp_dir().join(format!("rampart-cors-page-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    // The page's origin is only known once it listens; the gateway learns it from a reload.
    let page_file = dir.join("index.html");
    std::fs::write(&page_file, "placeholder").expect("write");
    let page = Peer::python_server("page.py", &[page_file.to_str().expect("path")])
        .await
        .expect("page server");
    let page_origin = format!("http://{}", page.addr.expect("addr"));
    let gw = start(&yaml(echo.addr, &format!("\"{page_origin}\""))).await;
    let api = base_url(&gw).await;
    // Synchronous requests, so the page's load event waits for their answers.
    let html = format!(
        r#"<!doctype html><html><body><pre id="out"></pre><script>
function ask(method, path, key) {{
  var x = new XMLHttpRequest();
  x.open(method, "{api}" + path, false);
  if (key) x.setRequestHeader("x-api-key", key);
  try {{ x.send(); return x.status + " " + (x.getResponseHeader("ratelimit") || "-"); }}
  catch (e) {{ return "refused"; }}
}}
document.getElementById("out").textContent = [
  "put=" + ask("PUT", "/api/items", "{KEY}"),
  "delete=" + ask("DELETE", "/api/items", "{KEY}"),
  "plain=" + ask("GET", "/plain", null),
].join("\n");
</script></body></html>"#
    );
    std::fs::write(&page_file, html).expect("write page");
    let rendered = rampart_testkit::browser::render(&format!("{page_origin}/"), 800, 600, true)
        .await
        .expect("render");
    let out = rendered
        .html
        .split("<pre id=\"out\">")
        .nth(1)
        .and_then(|s| s.split("</pre>").next())
        .unwrap_or_default()
        .to_owned();
    // PUT with a custom header: preflight passed, the answer readable, the exposed header too.
    assert!(
        out.contains("put=200 \"api\";r=1;t="),
        "{out}\n{}",
        rendered.html
    );
    // DELETE is not in the policy: the browser's preflight is refused.
    assert!(out.contains("delete=refused"), "{out}");
    // A route without CORS: the browser refuses the answer to the page.
    assert!(out.contains("plain=refused"), "{out}");
    gw.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
