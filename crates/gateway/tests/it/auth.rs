//! Authentication against a real auth server, and the seed incident's failure contained:
//! an auth provider whose host only a black-hole DNS server can answer.

use crate::common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use rampart_testkit::EchoServer;
use rampart_testkit::auth::{AuthServer, Mode, now_secs};
use rampart_testkit::client::{self, Answer, call};
use rampart_testkit::dns::BlackHoleDns;
use rampart_testkit::load::{LoadPlan, run};

use common::*;

const KEY: &str = "s3cret-key";
/// sha256("s3cret-key")
fn key_hash() -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(KEY.as_bytes()))
}

/// A gateway whose routes call `auth` (introspection and JWKS) before `backend`.
async fn behind(backend: &EchoServer, auth: &AuthServer) -> rampart_gateway::Gateway {
    start(&yaml(
        backend.addr,
        &format!("http://{}/introspect", auth.addr),
        &format!("http://{}/.well-known/jwks.json", auth.addr),
        "",
    ))
    .await
}

fn yaml(
    backend: std::net::SocketAddr,
    auth_endpoint: &str,
    jwks_url: &str,
    resolver: &str,
) -> String {
    format!(
        r#"
listeners: [{{ name: public, address: "127.0.0.1:0" }}]
admin: {{ address: "127.0.0.1:0" }}
{resolver}
auth_providers:
  - {{ name: main, type: introspection, endpoint: "{auth_endpoint}", timeout: 250ms, cache_ttl: 30s, on_failure: deny }}
  - {{ name: partners, type: jwt, jwks_url: "{jwks_url}", issuer: "https://auth.example.com", audience: api, refresh: 200ms, timeout: 300ms }}
  - {{ name: keys, type: api_key, header: x-api-key, keys_sha256: ["{}"] }}
upstreams: [{{ name: backend, endpoints: ["{backend}"] }}]
routes:
  - {{ name: secure, match: {{ path_prefix: /secure }}, upstream: backend, auth: main }}
  - {{ name: admin-only, match: {{ path_prefix: /admin-api }}, upstream: backend, auth: main, scopes: [admin] }}
  - {{ name: partners, match: {{ path_prefix: /partners }}, upstream: backend, auth: partners }}
  - {{ name: keyed, match: {{ path_prefix: /keyed }}, upstream: backend, auth: keys }}
  - {{ name: public, match: {{ path_prefix: /public }}, upstream: backend }}
limits: {{ max_inflight: 64 }}
"#,
        key_hash()
    )
}

async fn get_with(url: &str, headers: &[(&str, &str)]) -> (Answer, Duration) {
    let mut req = Request::get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let t = Instant::now();
    let a = call(
        &client::http1(),
        req.body(Full::new(Bytes::new())).expect("req"),
        Duration::from_secs(10),
    )
    .await
    .expect("answer");
    (a, t.elapsed())
}

#[tokio::test]
async fn seed_failure_is_contained() {
    let backend = EchoServer::start("b").await.expect("backend");
    let dns = BlackHoleDns::start().await.expect("dns");
    let resolver = format!(
        "resolver: {{ nameservers: [\"{}\"], timeout: 100ms, attempts: 1, negative_ttl: 1s }}",
        dns.addr
    );
    let gw = start(&yaml(
        backend.addr,
        "http://auth.blackhole.test:9000/introspect",
        "http://auth.blackhole.test:9000/jwks.json",
        &resolver,
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
    );
    let secure_load = tokio::spawn(async move { run(&client::http1(), &secure).await });
    let public_load = tokio::spawn(async move { run(&client::http1(), &public).await });

    // While both loads run, the admin listener answers at once. (That the in-flight limit holds
    // is pinned where requests outnumber it: admin::admin_answers_while_inflight_is_at_its_limit.)
    let c = client::http1();
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let t = Instant::now();
        let h = client::get(&c, &format!("{admin}/healthz"))
            .await
            .expect("healthz");
        assert_eq!(h.status, StatusCode::OK);
        let m = client::get(&c, &format!("{admin}/metrics"))
            .await
            .expect("metrics");
        // Bounded by scheduling alone, never by the black hole (which holds auth calls for
        // their whole deadline).
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "admin took {:?}",
            t.elapsed()
        );
        assert!(m.text().contains("rampart_inflight_requests "));
    }
    let secure = secure_load.await.expect("join");
    let public = public_load.await.expect("join");

    // Every authenticated request failed fast with 503, bounded by the 250 ms auth deadline.
    assert!(secure.sent > 50, "secure requests: {}", secure.sent);
    assert_eq!(
        secure.by_status.get(&503).copied(),
        Some(secure.sent),
        "{:?}",
        secure.by_status
    );
    let worst = secure.percentile(1.0);
    assert!(
        worst < Duration::from_secs(1),
        "slowest auth failure took {worst:?}"
    );
    // Public traffic is untouched.
    assert_eq!(
        public.failed(),
        0,
        "{:?} {:?}",
        public.by_status,
        public.errors
    );
    assert!(
        public.percentile(0.99) < Duration::from_millis(100),
        "public p99 {:?}",
        public.percentile(0.99)
    );
    assert!(
        dns.queries() > 0,
        "the gateway never asked the black-hole DNS"
    );
    // The answer says what failed, without internal addresses.
    let (a, _) = get_with(&format!("{base}/secure"), &[("authorization", "Bearer t")]).await;
    assert_eq!(a.json()["error"], "auth_unavailable");
    assert_eq!(a.json()["phase"], "auth");
    assert!(
        !a.text().contains("blackhole"),
        "internal address leaked: {}",
        a.text()
    );
    assert_eq!(a.header("retry-after"), Some("1"));
}

#[tokio::test]
async fn auth_server_failures_are_contained() {
    let backend = EchoServer::start("b").await.expect("backend");
    let auth = AuthServer::start().await.expect("auth");
    let gw = behind(&backend, &auth).await;
    let base = base_url(&gw).await;
    let mut failed_token = String::new();
    for mode in [
        Mode::Hang,
        Mode::Error,
        Mode::Close,
        Mode::Slow(Duration::from_secs(2)),
    ] {
        auth.set_mode(mode);
        let token = auth.mint_opaque("alice", "read", Duration::from_secs(60));
        for _ in 0..3 {
            let (a, took) = get_with(
                &format!("{base}/secure"),
                &[("authorization", &format!("Bearer {token}"))],
            )
            .await;
            assert_eq!(
                a.status,
                StatusCode::SERVICE_UNAVAILABLE,
                "{mode:?}: {}",
                a.text()
            );
            // Bounded by the 250 ms deadline (plus scheduling slack), never by the server.
            assert!(took < Duration::from_secs(1), "{mode:?}: took {took:?}");
        }
        // The public route never waits on auth: faster than the auth deadline itself.
        let (p, took) = get_with(&format!("{base}/public"), &[]).await;
        assert_eq!(p.status, StatusCode::OK, "{mode:?}");
        assert!(
            took < Duration::from_millis(240),
            "{mode:?}: public took {took:?}"
        );
        failed_token = token;
    }
    // Recovery is immediate: failures are not cached, so the very token that just failed
    // is accepted as soon as the server answers again.
    auth.set_mode(Mode::Ok);
    let (a, _) = get_with(
        &format!("{base}/secure"),
        &[("authorization", &format!("Bearer {failed_token}"))],
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
}

#[tokio::test]
async fn a_burst_with_one_token_makes_one_introspection_call() {
    let backend = EchoServer::start("b").await.expect("backend");
    let auth = AuthServer::start().await.expect("auth");
    auth.set_mode(Mode::Slow(Duration::from_millis(100)));
    let gw = start(&yaml(
        backend.addr,
        &format!("http://{}/introspect", auth.addr),
        &format!("http://{}/jwks", auth.addr),
        "",
    ))
    .await;
    let token = auth.mint_opaque("alice", "read", Duration::from_secs(60));
    let url = format!("{}/secure", base_url(&gw).await);
    let plan = LoadPlan::new(url.parse().expect("uri"), 50, 200, Duration::from_secs(5))
        .header("authorization", &format!("Bearer {token}"));
    let report = run(&client::http1(), &plan).await;
    assert_eq!(report.ok(), 200, "{:?}", report.by_status);
    assert_eq!(auth.introspections(), 1);
}

#[tokio::test]
async fn jwks_outage_keeps_last_good_keys_and_rotation_is_picked_up() {
    let backend = EchoServer::start("b").await.expect("backend");
    let auth = AuthServer::start().await.expect("auth");
    let gw = behind(&backend, &auth).await;
    let url = format!("{}/partners", base_url(&gw).await);
    let claims = |sub: &str| serde_json::json!({ "sub": sub, "iss": "https://auth.example.com", "aud": "api", "exp": now_secs() + 600 });
    let first = auth.mint_jwt(&claims("p1"));
    let ok = eventually(Duration::from_secs(3), async || {
        get_with(&url, &[("authorization", &format!("Bearer {first}"))])
            .await
            .0
            .status
            == StatusCode::OK
    })
    .await;
    assert!(ok, "a valid JWT was not accepted");

    // JWKS endpoint hanging for several refresh periods: each refresh ends at its deadline,
    // keys already fetched keep working, for tokens seen before and tokens never seen.
    auth.set_jwks_mode(Mode::Hang);
    let fetches = auth.jwks_fetches();
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        auth.jwks_fetches() > fetches,
        "no refresh was attempted during the outage"
    );
    let second = auth.mint_jwt(&claims("p2"));
    for token in [&first, &second] {
        let (a, _) = get_with(&url, &[("authorization", &format!("Bearer {token}"))]).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    }
    // A token under a key nobody knows asks for an early refresh, which hangs: the answer
    // comes at the 300 ms fetch deadline, not never.
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some("unknown-kid".into());
    let stranger = auth.mint_jwt_with_header(header, &claims("p9"));
    let (a, took) = get_with(&url, &[("authorization", &format!("Bearer {stranger}"))]).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{}", a.text());
    assert!(
        took < Duration::from_secs(2),
        "an unknown kid waited {took:?}"
    );
    auth.set_jwks_mode(Mode::Ok);

    // Rotation: a token under a new key is accepted at once (unknown kid triggers a refresh);
    // tokens under the retired key are refused.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    auth.rotate_key(true).expect("rotate");
    let rotated = auth.mint_jwt(&claims("p3"));
    let (a, _) = get_with(&url, &[("authorization", &format!("Bearer {rotated}"))]).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert_eq!(a.json()["headers"]["x-auth-subject"][0], "p3");
    let (old, _) = get_with(&url, &[("authorization", &format!("Bearer {first}"))]).await;
    assert_eq!(old.status, StatusCode::UNAUTHORIZED, "{}", old.text());
}

fn b64(v: &serde_json::Value) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

#[tokio::test]
async fn auth_edge_cases() {
    let backend = EchoServer::start("b").await.expect("backend");
    let auth = AuthServer::start().await.expect("auth");
    let gw = behind(&backend, &auth).await;
    let base = base_url(&gw).await;
    let now = now_secs();
    let good = serde_json::json!({ "sub": "p", "iss": "https://auth.example.com", "aud": "api", "exp": now + 600 });
    let with = |k: &str, v: serde_json::Value| {
        let mut c = good.clone();
        c[k] = v;
        c
    };
    let without = |k: &str| {
        let mut c = good.clone();
        if let Some(map) = c.as_object_mut() {
            map.remove(k);
        }
        c
    };
    let kid = auth.current_kid();
    let mut unknown_kid_header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    unknown_kid_header.kid = Some("no-such-key".into());
    let alg_none = format!(
        "{}.{}.",
        b64(&serde_json::json!({"alg": "none", "kid": kid})),
        b64(&good)
    );
    let hs256 = jsonwebtoken::encode(
        &jsonwebtoken::Header {
            kid: Some(kid.clone()),
            ..jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256)
        },
        &good,
        &jsonwebtoken::EncodingKey::from_secret(b"guessable"),
    )
    .expect("hs256");
    let valid_opaque = auth.mint_opaque("alice", "read", Duration::from_secs(60));
    let admin_opaque = auth.mint_opaque("root", "read admin", Duration::from_secs(60));
    let revoked = auth.mint_opaque("mallory", "read", Duration::from_secs(60));
    auth.revoke(&revoked);

    let bearer = |t: &str| format!("Bearer {t}");
    // (case, path, request headers, expected status, text the answer must contain)
    type Case<'a> = (
        &'a str,
        &'a str,
        Vec<(&'a str, String)>,
        StatusCode,
        &'a str,
    );
    let table: Vec<Case> = vec![
        (
            "jwt valid",
            "/partners",
            vec![("authorization", bearer(&auth.mint_jwt(&good)))],
            StatusCode::OK,
            "",
        ),
        (
            "jwt expired",
            "/partners",
            vec![(
                "authorization",
                bearer(&auth.mint_jwt(&with("exp", (now - 60).into()))),
            )],
            StatusCode::UNAUTHORIZED,
            "token expired",
        ),
        (
            "jwt not yet valid",
            "/partners",
            vec![(
                "authorization",
                bearer(&auth.mint_jwt(&with("nbf", (now + 600).into()))),
            )],
            StatusCode::UNAUTHORIZED,
            "not valid yet",
        ),
        (
            "jwt wrong issuer",
            "/partners",
            vec![(
                "authorization",
                bearer(&auth.mint_jwt(&with("iss", "https://evil.example".into()))),
            )],
            StatusCode::UNAUTHORIZED,
            "wrong issuer",
        ),
        (
            "jwt wrong audience",
            "/partners",
            vec![(
                "authorization",
                bearer(&auth.mint_jwt(&with("aud", "other".into()))),
            )],
            StatusCode::UNAUTHORIZED,
            "wrong audience",
        ),
        (
            "jwt without the configured issuer",
            "/partners",
            vec![("authorization", bearer(&auth.mint_jwt(&without("iss"))))],
            StatusCode::UNAUTHORIZED,
            "missing claim iss",
        ),
        (
            "jwt without the configured audience",
            "/partners",
            vec![("authorization", bearer(&auth.mint_jwt(&without("aud"))))],
            StatusCode::UNAUTHORIZED,
            "missing claim aud",
        ),
        (
            "jwt alg none",
            "/partners",
            vec![("authorization", bearer(&alg_none))],
            StatusCode::UNAUTHORIZED,
            "malformed token",
        ),
        (
            "jwt HS256 not allowed",
            "/partners",
            vec![("authorization", bearer(&hs256))],
            StatusCode::UNAUTHORIZED,
            "not allowed",
        ),
        (
            "jwt unknown kid",
            "/partners",
            vec![(
                "authorization",
                bearer(&auth.mint_jwt_with_header(unknown_kid_header, &good)),
            )],
            StatusCode::UNAUTHORIZED,
            "unknown key id",
        ),
        (
            "jwt malformed",
            "/partners",
            vec![("authorization", bearer("abc.def"))],
            StatusCode::UNAUTHORIZED,
            "malformed token",
        ),
        (
            "no credentials",
            "/partners",
            vec![],
            StatusCode::UNAUTHORIZED,
            "no Authorization header",
        ),
        (
            "basic scheme",
            "/secure",
            vec![("authorization", "Basic YTpi".into())],
            StatusCode::UNAUTHORIZED,
            "not \\\"Bearer",
        ),
        (
            "introspection valid",
            "/secure",
            vec![("authorization", bearer(&valid_opaque))],
            StatusCode::OK,
            "",
        ),
        (
            "introspection revoked",
            "/secure",
            vec![("authorization", bearer(&revoked))],
            StatusCode::UNAUTHORIZED,
            "not active",
        ),
        (
            "introspection unknown token",
            "/secure",
            vec![("authorization", bearer("never-minted"))],
            StatusCode::UNAUTHORIZED,
            "not active",
        ),
        (
            "missing scope",
            "/admin-api",
            vec![("authorization", bearer(&valid_opaque))],
            StatusCode::FORBIDDEN,
            "scope \\\"admin\\\" required",
        ),
        (
            "has scope",
            "/admin-api",
            vec![("authorization", bearer(&admin_opaque))],
            StatusCode::OK,
            "",
        ),
        (
            "api key valid",
            "/keyed",
            vec![("x-api-key", KEY.into())],
            StatusCode::OK,
            "",
        ),
        (
            "api key wrong",
            "/keyed",
            vec![("x-api-key", "guess".into())],
            StatusCode::UNAUTHORIZED,
            "unknown API key",
        ),
        (
            "api key missing",
            "/keyed",
            vec![],
            StatusCode::UNAUTHORIZED,
            "no x-api-key header",
        ),
    ];
    for (name, path, headers, status, needle) in table {
        let hs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (a, _) = get_with(&format!("{base}{path}"), &hs).await;
        assert_eq!(a.status, status, "{name}: {}", a.text());
        assert!(
            a.text().contains(needle),
            "{name}: {:?} lacks {needle:?}",
            a.text()
        );
        if status == StatusCode::UNAUTHORIZED {
            assert!(
                a.header("www-authenticate").is_some(),
                "{name}: no WWW-Authenticate"
            );
        }
    }

    // Identity reaches the backend; identity headers sent by the client do not.
    let (a, _) = get_with(
        &format!("{base}/secure"),
        &[
            ("authorization", &bearer(&valid_opaque)),
            ("x-auth-subject", "root"),
            ("x-auth-scopes", "admin"),
        ],
    )
    .await;
    let doc = a.json();
    assert_eq!(
        doc["headers"]["x-auth-subject"],
        serde_json::json!(["alice"])
    );
    assert_eq!(doc["headers"]["x-auth-scopes"], serde_json::json!(["read"]));
    assert_eq!(
        doc["headers"]["x-auth-provider"],
        serde_json::json!(["main"])
    );
    let (p, _) = get_with(&format!("{base}/public"), &[("x-auth-subject", "root")]).await;
    assert!(
        p.json()["headers"].get("x-auth-subject").is_none(),
        "a spoofed identity reached the backend"
    );
}

#[tokio::test]
async fn on_failure_allow_never_skips_required_scopes_and_secrets_stay_hidden() {
    let backend = EchoServer::start("b").await.expect("backend");
    let auth = AuthServer::start().await.expect("auth");
    let yaml = format!(
        r#"
listeners: [{{ name: public, address: "127.0.0.1:0" }}]
admin: {{ address: "127.0.0.1:0" }}
auth_providers:
  - {{ name: lenient, type: introspection, endpoint: "http://{}/introspect", timeout: 200ms, on_failure: allow, client_id: gw, client_secret: hunter2-secret }}
upstreams: [{{ name: backend, endpoints: ["{}"] }}]
routes:
  - {{ name: open, match: {{ path_prefix: /open }}, upstream: backend, auth: lenient }}
  - {{ name: scoped, match: {{ path_prefix: /scoped }}, upstream: backend, auth: lenient, scopes: [admin] }}
"#,
        auth.addr, backend.addr
    );
    let gw = start(&yaml).await;
    let base = base_url(&gw).await;
    let token = auth.mint_opaque("root", "admin", Duration::from_secs(60));
    let bearer = format!("Bearer {token}");
    // Reachable: both routes serve a token with the scope.
    for path in ["/open", "/scoped"] {
        let (a, _) = get_with(&format!("{base}{path}"), &[("authorization", &bearer)]).await;
        assert_eq!(a.status, StatusCode::OK, "{path}: {}", a.text());
    }
    // Unreachable: the route without scopes lets the request in unverified, the scoped one
    // refuses it (a fresh token: nothing cached).
    auth.set_mode(Mode::Error);
    let fresh = format!(
        "Bearer {}",
        auth.mint_opaque("root", "admin", Duration::from_secs(60))
    );
    let (a, _) = get_with(&format!("{base}/open"), &[("authorization", &fresh)]).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert_eq!(a.json()["headers"]["x-auth-verified"][0], "false");
    let (a, _) = get_with(&format!("{base}/scoped"), &[("authorization", &fresh)]).await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{}", a.text());
    assert_eq!(
        backend.control.hits(),
        3,
        "the scoped request reached the backend"
    );

    // The admin's view of the config hides the client secret.
    let config = client::get(&client::http1(), &format!("{}/config", admin_url(&gw)))
        .await
        .expect("config")
        .text();
    assert!(!config.contains("hunter2-secret"), "{config}");
    assert!(config.contains("<redacted>"), "{config}");
}

#[tokio::test]
async fn auth_calls_hold_admission_permits_so_a_black_hole_sheds_the_excess() {
    let backend = EchoServer::start("b").await.expect("backend");
    let dns = BlackHoleDns::start().await.expect("dns");
    let resolver = format!(
        "resolver: {{ nameservers: [\"{}\"], timeout: 200ms, attempts: 1, negative_ttl: 0s }}",
        dns.addr
    );
    let yaml = yaml(
        backend.addr,
        "http://auth.blackhole.test:9000/introspect",
        "http://auth.blackhole.test:9000/jwks.json",
        &resolver,
    )
    .replace("max_inflight: 64", "max_inflight: 8");
    let gw = start(&yaml).await;
    let base = base_url(&gw).await;
    // 32 concurrent authenticated requests, each of whose auth call waits on the black hole
    // for its deadline while holding its permit: 8 get in, the rest are shed at once.
    let plan = LoadPlan::new(
        format!("{base}/secure").parse().expect("uri"),
        32,
        32,
        Duration::from_secs(10),
    )
    .header("authorization", "Bearer some-token");
    let report = run(&client::http1(), &plan).await;
    assert_eq!(
        report.by_status.get(&503).copied(),
        Some(32),
        "{:?}",
        report.by_status
    );
    let shed = metric(&gw, "rampart_shed_total{scope=\"global\"}").await;
    assert!(shed >= 1.0, "nothing was shed: auth ran outside admission");
    let unavailable = metric(
        &gw,
        "rampart_auth_decisions_total{provider=\"main\",result=\"unavailable\"}",
    )
    .await;
    assert!(
        (1.0..=32.0).contains(&unavailable),
        "auth calls: {unavailable}"
    );
}
