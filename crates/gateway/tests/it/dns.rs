//! DNS: upstream endpoints given by name, resolved through `rampart-net` and counted in metrics.

use crate::common;

use std::net::Ipv4Addr;

use http::StatusCode;
use rampart_testkit::EchoServer;
use rampart_testkit::client;
use rampart_testkit::dns::StaticDns;

use common::*;

#[tokio::test]
async fn upstream_endpoints_by_name() {
    let backend = EchoServer::start("named").await.expect("backend");
    let dns = StaticDns::start(&[("backend.internal", Ipv4Addr::LOCALHOST)])
        .await
        .expect("dns");
    let yaml = format!(
        r#"
listeners: [{{ name: public, address: "127.0.0.1:0" }}]
admin: {{ address: "127.0.0.1:0" }}
resolver: {{ nameservers: ["{}"], timeout: 200ms, attempts: 1 }}
upstreams: [{{ name: named, endpoints: ["backend.internal:{}"] }}]
routes: [{{ name: main, upstream: named }}]
"#,
        dns.addr,
        backend.addr.port()
    );
    let gw = start(&yaml).await;
    let a = client::get(&client::http1(), &format!("{}/x", base_url(&gw).await))
        .await
        .expect("answer");
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.header("x-backend"), Some("named"));
    let m = client::get(&client::http1(), &format!("{}/metrics", admin_url(&gw)))
        .await
        .expect("metrics")
        .text();
    assert!(
        m.contains("rampart_dns_lookups_total{outcome=\"resolved\"} 1"),
        "{m}"
    );
}
