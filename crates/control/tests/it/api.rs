//! The HTTP API's edges: bad input gets a precise JSON error and changes nothing; roles are
//! enforced; the OpenAPI document describes every route.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rampart_control::tokens::{Role, TokenEntry, Tokens};

async fn start() -> rampart_control::Running {
    let dir = std::env::temp_dir().join(format!(
        "rampart-api-{}-{}",
        std::process::id(),
        fastrand::u32(..)
    ));
    std::fs::create_dir_all(&dir).expect("dir");
    let tokens = Tokens::from_entries(&[
        TokenEntry::new("vic", Role::Viewer, "view"),
        TokenEntry::new("gw", Role::Agent, "agt"),
        TokenEntry::new("olivia", Role::Operator, "op"),
    ]);
    rampart_control::spawn(
        &dir,
        &["testing".into(), "production".into()],
        tokens,
        "127.0.0.1:0".parse().expect("addr"),
    )
    .await
    .expect("control plane")
}

async fn call(
    method: &str,
    url: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, serde_json::Value) {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut req = http::Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", "application/json");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let resp = client
        .request(
            req.body(Full::new(Bytes::from(body.to_owned())))
                .expect("req"),
        )
        .await
        .expect("answer");
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

#[tokio::test]
async fn bad_requests_get_precise_errors_and_change_nothing() {
    let server = start().await;
    let url = server.url();
    // (method, path, token, body, status, error code, text the message must contain)
    type Case<'a> = (
        &'a str,
        &'a str,
        Option<&'a str>,
        &'a str,
        u16,
        &'a str,
        &'a str,
    );
    let cases: &[Case] = &[
        (
            "POST",
            "/v1/versions",
            None,
            "{}",
            401,
            "unauthorized",
            "missing bearer token",
        ),
        (
            "POST",
            "/v1/versions",
            Some("nope"),
            "{}",
            401,
            "unauthorized",
            "unknown token",
        ),
        (
            "POST",
            "/v1/versions",
            Some("view"),
            r#"{"document": "x"}"#,
            403,
            "forbidden",
            "needs the operator role",
        ),
        (
            "POST",
            "/v1/versions",
            Some("op"),
            r#"{"document": 5}"#,
            400,
            "bad_request",
            "document",
        ),
        (
            "POST",
            "/v1/versions",
            Some("op"),
            r#"{"document": "#,
            400,
            "bad_request",
            "EOF",
        ),
        (
            "POST",
            "/v1/versions",
            Some("op"),
            r#"{"document": "listeners: []"}"#,
            422,
            "invalid",
            "at least one listener",
        ),
        (
            "POST",
            "/v1/environments/staging/deploy",
            Some("op"),
            r#"{"version": "0000000000000000000000000000000000000000000000000000000000000000"}"#,
            404,
            "not_found",
            "no environment \"staging\"",
        ),
        (
            "POST",
            "/v1/environments/testing/deploy",
            Some("op"),
            r#"{"version": "abc"}"#,
            400,
            "bad_request",
            "\"abc\" is not a version id (64 lowercase hex characters)",
        ),
        (
            "POST",
            "/v1/environments/testing/deploy",
            Some("op"),
            r#"{"version": "0000000000000000000000000000000000000000000000000000000000000000"}"#,
            404,
            "not_found",
            "no version 0000000000000000000000000000000000000000000000000000000000000000",
        ),
        (
            "POST",
            "/v1/environments/production/rollback",
            Some("op"),
            "{}",
            409,
            "pipeline",
            "no last-known-good",
        ),
        (
            "GET",
            "/v1/agents/ghost/desired",
            Some("view"),
            "",
            403,
            "forbidden",
            "takes an agent token",
        ),
        (
            "GET",
            "/v1/agents/ghost/desired",
            Some("agt"),
            "",
            401,
            "unauthorized",
            "x-rampart-instance-credential",
        ),
        (
            "GET",
            "/v1/versions",
            Some("agt"),
            "",
            403,
            "forbidden",
            "role",
        ),
    ];
    // Whatever the router or an extractor refuses answers in the same JSON shape.
    let refused_before_a_handler = [
        (
            "GET",
            "/v1/nowhere",
            Some("view"),
            "",
            404,
            "not_found",
            "no such path",
        ),
        (
            "DELETE",
            "/v1/versions",
            Some("op"),
            "",
            405,
            "method_not_allowed",
            "does not take",
        ),
        (
            "GET",
            "/v1/incidents/abc",
            Some("view"),
            "",
            400,
            "bad_request",
            "abc",
        ),
        (
            "GET",
            "/v1/events?after=soon",
            Some("view"),
            "",
            400,
            "bad_request",
            "after",
        ),
        (
            "POST",
            "/v1/agents/register",
            Some("agt"),
            "[1, 2]",
            400,
            "bad_request",
            "must be a JSON object",
        ),
    ];
    for (method, path, token, body, status, code, needle) in
        cases.iter().chain(&refused_before_a_handler)
    {
        let (got, doc) = call(method, &format!("{url}{path}"), *token, body).await;
        assert_eq!(got, *status, "{method} {path}: {doc}");
        assert_eq!(doc["error"], *code, "{method} {path}: {doc}");
        assert!(
            doc["message"].as_str().unwrap_or_default().contains(needle),
            "{method} {path}: {doc}"
        );
    }
    let (_, versions) = call("GET", &format!("{url}/v1/versions"), Some("view"), "").await;
    assert_eq!(versions, serde_json::json!([]), "nothing was stored");
    let (_, events) = call("GET", &format!("{url}/v1/events"), Some("view"), "").await;
    assert_eq!(events, serde_json::json!([]), "nothing was recorded");
}

#[tokio::test]
async fn openapi_describes_every_route() {
    let server = start().await;
    let url = server.url();
    let (status, doc) = call("GET", &format!("{url}/openapi.json"), None, "").await;
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    for path in [
        "/v1/versions",
        "/v1/versions/{id}",
        "/v1/environments",
        "/v1/environments/{env}/deploy",
        "/v1/environments/{env}/rollback",
        "/v1/approvals",
        "/v1/approvals/{id}/approve",
        "/v1/events",
        "/v1/agents/register",
        "/v1/agents/{id}/desired",
        "/v1/agents/{id}/report",
        "/v1/releases",
        "/v1/components/{name}",
        "/v1/channels/{name}",
        "/v1/alerts",
        "/v1/alertmanager",
        "/v1/incidents",
        "/v1/incidents/{id}/updates",
        "/v1/incidents/{id}/postmortem",
        "/v1/environments/{env}/restart",
        "/v1/maintenances",
        "/v1/subscribers",
        "/v1/tokens",
        "/v1/tokens/{name}",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from /openapi.json"
        );
    }
    // Every $ref points at a schema that exists.
    let text = doc.to_string();
    for r in text.split("#/components/schemas/").skip(1) {
        let name: String = r.chars().take_while(|c| c.is_alphanumeric()).collect();
        assert!(
            doc["components"]["schemas"][&name].is_object(),
            "dangling $ref to {name}"
        );
    }
}
