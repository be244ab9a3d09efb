//! WebSocket tunnelling, with Python's `websockets` on both ends (client and echo server): the
//! handshake is authenticated and forwarded like any request, messages of every size cross in
//! both directions, a tunnel keeps its permits and ends at the idle timeout, and a route that
//! does not allow WebSocket never upgrades.

use crate::common;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rampart_testkit::peer::{Peer, python_json};
use sha2::Digest;
use tokio_tungstenite::tungstenite::Message;

use common::*;

const KEY: &str = "k-ws";

fn yaml(server: std::net::SocketAddr, idle: &str) -> String {
    let key_hash = hex::encode(sha2::Sha256::digest(KEY.as_bytes()));
    format!(
        r#"
listeners: [{{ name: public, address: "127.0.0.1:0" }}]
admin: {{ address: "127.0.0.1:0" }}
auth_providers: [{{ name: keys, type: api_key, header: x-api-key, keys_sha256: ["{key_hash}"] }}]
upstreams: [{{ name: ws, endpoints: ["{server}"] }}]
routes:
  - {{ name: live, match: {{ path_prefix: /live }}, upstream: ws, auth: keys, websocket: true, max_concurrency: 2 }}
  - {{ name: plain, match: {{ path_prefix: /plain }}, upstream: ws }}
limits: {{ idle_timeout: {idle} }}
"#
    )
}

async fn python(args: &[&str]) -> serde_json::Value {
    python_json("ws_peer.py", args, Duration::from_secs(30)).await
}

#[tokio::test]
async fn a_python_client_talks_through_the_gateway_to_a_python_server() {
    let server = Peer::python_server("ws_peer.py", &["server"])
        .await
        .expect("websocket server");
    let gw = start(&yaml(server.addr.expect("addr"), "60s")).await;
    let ws = base_url(&gw).await.replace("http://", "ws://");
    let key = format!("x-api-key={KEY}");
    let got = python(&["client", &format!("{ws}/live/./room//7"), &key]).await;
    assert_eq!(got["ok"], true, "{got}");
    assert_eq!(got["echoed"], 100);
    let hello = &got["hello"];
    assert_eq!(hello["path"], "/live/room/7", "the normalized path");
    let header = |name: &str| {
        hello["headers"]
            .as_array()
            .expect("headers")
            .iter()
            .find(|h| h[0] == name)
            .map(|h| h[1].as_str().unwrap_or_default().to_owned())
    };
    assert_eq!(header("upgrade").as_deref(), Some("websocket"));
    assert_eq!(header("x-forwarded-for").as_deref(), Some("127.0.0.1"));
    assert!(header("x-auth-subject").is_some_and(|s| s.starts_with("apikey:")));
    assert!(header("x-request-id").is_some());
    assert!(header("sec-websocket-key").is_some());
    assert!(
        eventually(Duration::from_secs(5), async || {
            metric(&gw, "rampart_websocket_tunnels ").await == 0.0
        })
        .await,
        "the tunnel is gone once the client closed"
    );
    assert_eq!(
        metric(&gw, "rampart_websocket_tunnels_opened_total").await,
        1.0
    );

    // Without a key the handshake is refused like any request; a route without `websocket`
    // never upgrades (the upstream sees no Upgrade header and refuses).
    let refused = python(&["client", &format!("{ws}/live/room")]).await;
    assert_eq!(refused["refused"], 401, "{refused}");
    let plain = python(&["client", &format!("{ws}/plain/room")]).await;
    assert_eq!(plain["ok"], false, "{plain}");
    assert_ne!(plain["refused"], 101);
    assert_eq!(
        metric(&gw, "rampart_websocket_tunnels_opened_total").await,
        1.0
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn a_websocket_over_tls_crosses_the_gateway() {
    let server = Peer::python_server("ws_peer.py", &["server"])
        .await
        .expect("websocket server");
    let cert = TestCert::new("websocket-tls");
    let tls = format!(
        r#"listeners: [{{ name: public, address: "127.0.0.1:0", tls: {{ cert_file: "{}", key_file: "{}" }} }}]"#,
        cert.cert_path.display(),
        cert.key_path.display()
    );
    let config = yaml(server.addr.expect("addr"), "60s").replace(
        r#"listeners: [{ name: public, address: "127.0.0.1:0" }]"#,
        &tls,
    );
    assert!(config.contains("tls:"), "{config}");
    let gw = start(&config).await;
    let addr = gw.listener_addr("public").await.expect("listener");
    // Python's websockets over Python's ssl (OpenSSL): the upgrade on a TLS connection's
    // HTTP/1.1 path, then 100 messages both ways.
    let got = python(&[
        "client",
        &format!("wss://{addr}/live/room"),
        &format!("--ca={}", cert.cert_path.display()),
        &format!("x-api-key={KEY}"),
    ])
    .await;
    assert_eq!(got["ok"], true, "{got}");
    assert_eq!(got["echoed"], 100);
    assert_eq!(
        metric(&gw, "rampart_websocket_tunnels_opened_total").await,
        1.0
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn a_quiet_tunnel_ends_at_the_idle_timeout_and_tunnels_hold_their_permits() {
    let server = Peer::python_server("ws_peer.py", &["server"])
        .await
        .expect("websocket server");
    let gw = start(&yaml(server.addr.expect("addr"), "1s")).await;
    let ws = base_url(&gw).await.replace("http://", "ws://");
    let key = format!("x-api-key={KEY}");
    let idle = python(&["idle", &format!("{ws}/live/quiet"), "2.5", &key]).await;
    assert_eq!(idle["closed"], true, "{idle}");
    let busy = python(&["idle", &format!("{ws}/live/busy"), "0.5", &key]).await;
    assert_eq!(busy["closed"], false, "a tunnel in use stays open: {busy}");

    // Two tunnels fill the route's max_concurrency; a third handshake is shed with 503.
    let connect = || async {
        let mut req =
            tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
                format!("{ws}/live/held"),
            )
            .expect("request");
        req.headers_mut()
            .insert("x-api-key", KEY.parse().expect("key"));
        tokio_tungstenite::connect_async(req).await
    };
    let (mut first, _) = connect().await.expect("first tunnel");
    let (mut second, _) = connect().await.expect("second tunnel");
    assert!(first.next().await.is_some(), "greeting");
    assert!(second.next().await.is_some(), "greeting");
    match connect().await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), 503)
        }
        other => panic!("expected 503, got {:?}", other.map(|_| ())),
    }
    assert_eq!(metric(&gw, "rampart_websocket_tunnels ").await, 2.0);
    first.send(Message::text("ping")).await.expect("send");
    assert_eq!(
        first.next().await.and_then(Result::ok),
        Some(Message::text("ping"))
    );
    first.close(None).await.expect("close");
    drop(first);
    // The closed tunnel's permit is back.
    assert!(
        eventually(Duration::from_secs(5), async || connect().await.is_ok()).await,
        "a tunnel fits again"
    );
    drop(second);
    gw.shutdown().await;
}

#[tokio::test]
async fn an_http2_client_opens_a_websocket_with_extended_connect() {
    let server = Peer::python_server("ws_peer.py", &["server"])
        .await
        .expect("websocket server");
    let gw = start(&yaml(server.addr.expect("addr"), "60s")).await;
    let target = gw.listener_addr("public").await.expect("addr").to_string();
    let key = format!("x-api-key={KEY}");
    let got = python(&["h2", &target, "/live/h2//room", &key]).await;
    assert_eq!(got["ok"], true, "{got}");
    assert_eq!(got["status"], 200);
    assert_eq!(got["echoed"], 20);
    let hello = &got["hello"];
    assert_eq!(hello["path"], "/live/h2/room");
    let has = |name: &str| {
        hello["headers"]
            .as_array()
            .expect("headers")
            .iter()
            .any(|h| h[0] == name)
    };
    // The upstream got an RFC 6455 handshake the gateway made (and checked).
    assert!(has("sec-websocket-key") && has("upgrade") && has("x-auth-subject"));
    let refused = python(&["h2", &target, "/live/room"]).await;
    assert_eq!(refused["status"], 401, "{refused}");
    let plain = python(&["h2", &target, "/plain/room", &key]).await;
    assert_ne!(plain["status"], 200, "{plain}");
    gw.shutdown().await;
}
