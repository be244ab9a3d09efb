//! Semantic checks on push: the seed incident's bad address is refused before it reaches any
//! gateway, in about one DNS deadline; an approver may override it, and that is recorded.

use std::time::{Duration, Instant};

use rampart_api::{ApiClient, ClientError};
use rampart_testkit::auth::AuthServer;
use rampart_testkit::dns::{BlackHoleDns, StaticDns};

use crate::common;

async fn control() -> (ApiClient, ApiClient, rampart_control::Running) {
    let dir = common::temp("semantic");
    let tokens = common::tokens();
    let running = rampart_control::spawn(
        &dir,
        &["testing".into(), "production".into()],
        tokens,
        "127.0.0.1:0".parse().expect("addr"),
    )
    .await
    .expect("control plane");
    (
        ApiClient::new(&running.url(), Some("op".into())),
        ApiClient::new(&running.url(), Some("ap".into())),
        running,
    )
}

fn doc(resolver: &str, endpoint: &str) -> String {
    format!(
        r#"
listeners: [{{ name: public, address: "127.0.0.1:8080" }}]
{resolver}
auth_providers: [{{ name: main, type: introspection, endpoint: "{endpoint}", timeout: 300ms }}]
upstreams: [{{ name: b, endpoints: ["127.0.0.1:9000"] }}]
routes: [{{ name: r, upstream: b, auth: main }}]
"#
    )
}

#[tokio::test]
async fn unresolvable_and_silent_auth_endpoints_are_refused() {
    let (op, approver, task) = control().await;
    let dns = BlackHoleDns::start().await.expect("dns");
    let resolver = format!(
        "resolver: {{ nameservers: [\"{}\"], timeout: 200ms, attempts: 1 }}",
        dns.addr
    );
    let bad = doc(&resolver, "http://auth.blackhole.test:9000/introspect");

    let t = Instant::now();
    let err = op.push(&bad, "new auth server").await.expect_err("refused");
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "the check took {:?}",
        t.elapsed()
    );
    match &err {
        ClientError::Api {
            status: 422,
            message,
            ..
        } => {
            assert!(message.contains("auth_providers[0].endpoint: host \"auth.blackhole.test\" did not resolve within"), "{message}");
        }
        other => panic!("{other}"),
    }
    assert!(
        op.versions().await.expect("versions").is_empty(),
        "nothing may be stored"
    );

    // An operator cannot override; an approver can, and it is recorded.
    assert!(matches!(
        op.push_with(&bad, "m", Some("drill".into())).await,
        Err(ClientError::Api { status: 403, .. })
    ));
    let pushed = approver
        .push_with(&bad, "m", Some("drill: replaying the incident".into()))
        .await
        .expect("break-glass");
    assert_eq!(pushed.overridden.len(), 1, "{:?}", pushed.overridden);
    let events = op.events(0).await.expect("events");
    let created = events
        .iter()
        .find(|e| e.kind == "version.created")
        .expect("event");
    assert_eq!(created.actor, "amir");
    assert_eq!(
        created.data["break_glass"]["reason"],
        "drill: replaying the incident"
    );

    // A name that resolves, but nothing answers there.
    let silent = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let names = StaticDns::start(&[("auth.internal", std::net::Ipv4Addr::LOCALHOST)])
        .await
        .expect("dns");
    let resolver = format!(
        "resolver: {{ nameservers: [\"{}\"], timeout: 200ms, attempts: 1 }}",
        names.addr
    );
    match op
        .push(
            &doc(
                &resolver,
                &format!("http://auth.internal:{silent}/introspect"),
            ),
            "m",
        )
        .await
    {
        Err(ClientError::Api {
            status: 422,
            message,
            ..
        }) => assert!(message.contains("did not answer"), "{message}"),
        other => panic!("{other:?}"),
    }

    // A real auth server behind a resolvable name passes.
    let auth = AuthServer::start().await.expect("auth");
    let good = doc(
        &resolver,
        &format!("http://auth.internal:{}/introspect", auth.addr.port()),
    );
    assert!(op.push(&good, "good auth").await.expect("push").created);
    task.kill().await;
}
