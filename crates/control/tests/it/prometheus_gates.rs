//! Prometheus gates against a real Prometheus (Debian's package) scraping the gateways' admin
//! `/metrics` and a downstream service's (nginx serving a metrics file the test writes). A
//! release whose agents report nothing wrong fails on the downstream's errors; once they are
//! gone a release passes; a release someone promoted past a pause fails when the downstream
//! breaks, and its postmortem tells the policy and the judgement; a query with no data holds the
//! release and never passes, not even when the policy says `on_inconclusive: promote`.

use std::path::Path;
use std::time::Duration;

use rampart_api::ApiClient;
use rampart_rollout::Plan;
use rampart_testkit::EchoServer;
use rampart_testkit::peer::Nginx;
use rampart_testkit::prometheus::Prometheus;

use crate::common;
use common::{document, wait_until};

/// Two short waves.
const QUICK: &str = "waves:\n  - { instances: 1, bake: 2s }\n  - { percent: 100, bake: 1s }\n";
/// A pause after the canary, then a long bake: someone promotes, then the downstream breaks.
const PAUSED: &str =
    "waves:\n  - { instances: 1, bake: 2s, pause: true }\n  - { percent: 100, bake: 5m }\n";

fn policy(waves: &str, prometheus: &str, extra_query: &str, on_inconclusive: &str) -> String {
    format!(
        "{waves}gates: {{ min_requests: 0 }}\n{on_inconclusive}\
         prometheus:\n  url: {prometheus}\n  interval: 1s\n  deadline: 2s\n  queries:\n\
         \x20   - {{ name: gateways-scraped, query: 'count(up{{job=\"gateways\"}} == 1)', comparison: '>=', threshold: 2 }}\n\
         \x20   - {{ name: downstream-errors, query: 'max(downstream_errors_ratio)', comparison: '<', threshold: 0.05 }}\n\
         {extra_query}"
    )
}

/// Replaces the downstream's metrics file at once (a rename), as a service's exporter would.
async fn downstream_says(dir: &Path, ratio: f64) {
    let tmp = dir.join("metrics.tmp");
    tokio::fs::write(
        &tmp,
        format!("# TYPE downstream_errors_ratio gauge\ndownstream_errors_ratio {ratio}\n"),
    )
    .await
    .expect("write metrics");
    tokio::fs::rename(&tmp, dir.join("metrics"))
        .await
        .expect("rename");
}

/// Waits until Prometheus's answer to `query` contains `value`.
async fn prometheus_sees(prom: &Prometheus, query: &str, value: &str) -> bool {
    let url = format!(
        "{}/api/v1/query?query={}",
        prom.url(),
        common::urlencode(query)
    );
    let client = rampart_testkit::client::http1();
    wait_until(Duration::from_secs(20), async || {
        rampart_testkit::client::get(&client, &url)
            .await
            .is_ok_and(|a| String::from_utf8_lossy(&a.body).contains(&format!(",\"{value}\"]")))
    })
    .await
}

#[tokio::test]
async fn a_prometheus_gate_fails_what_agents_pass_and_no_data_never_passes() {
    let backend = EchoServer::start("b").await.expect("backend");
    let dir = common::temp("downstream");
    downstream_says(&dir, 0.3).await;
    let downstream = Nginx::start(&format!(
        "location = /metrics {{ default_type text/plain; alias {}/metrics; }}",
        dir.display()
    ))
    .await
    .expect("nginx");
    // A short quiet period: the first rollback's incident resolves once production settles,
    // so the second rollback opens an incident of its own.
    let control = common::production("prom", |c| {
        c.with_plan(Some(Plan::short(60_000)))
            .with_tick(Duration::from_millis(200))
            .with_incident_quiet(Duration::from_secs(1))
    })
    .await;
    let op = ApiClient::new(&control.url(), Some("op".into()));
    let approver = ApiClient::new(&control.url(), Some("ap".into()));
    let (gateways, admins) = common::start_fleet_with_admins(&control.url(), 2);
    common::serving_v1(&op, &approver, backend.addr, &gateways).await;
    let prom = Prometheus::start(&[
        ("gateways", admins.to_vec()),
        ("downstream", vec![downstream.addr]),
    ])
    .await
    .expect("prometheus");
    assert!(
        prometheus_sees(&prom, "downstream_errors_ratio", "0.3").await
            && prometheus_sees(&prom, "count(up{job=\"gateways\"} == 1)", "2").await,
        "prometheus never scraped its targets: {}",
        prom.log().await
    );

    // The downstream fails 30% of its work; the agents see nothing wrong. The gate fails.
    op.set_policy("production", &policy(QUICK, &prom.url(), "", ""))
        .await
        .expect("policy");
    let v2 = common::pushed(&op, &document(backend.addr, 2500), "v2").await;
    op.deploy("production", &v2, None).await.expect("deploy v2");
    let r = common::release_ended(&op, &v2, Duration::from_secs(20))
        .await
        .expect("v2 ended");
    assert_eq!(r.state, "rolled_back", "{r:?}");
    let reason = r.reason.clone().unwrap_or_default();
    assert!(
        reason.contains("gate prometheus:downstream-errors failed"),
        "{reason}"
    );
    assert!(
        reason.contains("max(downstream_errors_ratio) = 0.3, must be < 0.05"),
        "{reason}"
    );

    // The downstream recovers: the same gates pass a release.
    downstream_says(&dir, 0.0).await;
    assert!(prometheus_sees(&prom, "downstream_errors_ratio", "0").await);
    let v3 = common::pushed(&op, &document(backend.addr, 3000), "v3").await;
    op.deploy("production", &v3, None).await.expect("deploy v3");
    let r = common::release_ended(&op, &v3, Duration::from_secs(20))
        .await
        .expect("v3 ended");
    assert_eq!(r.state, "succeeded", "{r:?}");

    // The first rollback's incident resolves once production is whole and quiet.
    let quiet = wait_until(Duration::from_secs(15), async || {
        op.incidents()
            .await
            .expect("incidents")
            .iter()
            .all(|i| i.status == rampart_api::IncidentStatus::Resolved)
    })
    .await;
    assert!(quiet, "{:?}", op.incidents().await);

    // Someone promotes past a pause; the downstream then breaks and the next wave fails. The
    // postmortem tells the policy revision and the judgement as well as the gate.
    op.set_policy("production", &policy(PAUSED, &prom.url(), "", ""))
        .await
        .expect("policy r2");
    let v4 = common::pushed(&op, &document(backend.addr, 3200), "v4").await;
    op.deploy("production", &v4, None).await.expect("deploy v4");
    let paused = wait_until(Duration::from_secs(20), async || {
        op.releases().await.expect("releases")[0]
            .reason
            .as_deref()
            .is_some_and(|r| r.starts_with("paused by policy"))
    })
    .await;
    let r = op.releases().await.expect("releases")[0].clone();
    assert!(paused, "{r:?}");
    op.release_judgement(r.id, "promote", "canary dashboards clean")
        .await
        .expect("promote");
    downstream_says(&dir, 0.4).await;
    let r = common::release_ended(&op, &v4, Duration::from_secs(20))
        .await
        .expect("v4 ended");
    assert_eq!(r.state, "rolled_back", "{r:?}");
    let mut incident = None;
    wait_until(Duration::from_secs(10), async || {
        incident = op
            .incidents()
            .await
            .expect("incidents")
            .into_iter()
            .find(|i| i.cause["release"].as_i64() == Some(r.id));
        incident.is_some()
    })
    .await;
    let incident = incident.expect("an incident of its own for the promoted release");
    let md = op
        .postmortem(incident.id, "md")
        .await
        .expect("postmortem")
        .text;
    for told in [
        "The release followed production policy r2, set by olivia at",
        "that revision changed: ~ waves",
        "(2 waves, production policy r2)",
        "olivia promoted release",
        "canary dashboards clean",
        "prometheus:downstream-errors",
    ] {
        assert!(md.contains(told), "{told:?} missing from\n{md}");
    }
    downstream_says(&dir, 0.0).await;
    assert!(prometheus_sees(&prom, "downstream_errors_ratio", "0").await);

    // A query with no data holds, even past `on_inconclusive: promote`'s deadline.
    let empty = "\x20   - { name: checkout, query: 'sum(rate(checkout_orders_total[1m]))', comparison: '>', threshold: 0 }\n";
    let promote = "on_inconclusive: { after: 2s, action: promote }\n";
    op.set_policy("production", &policy(QUICK, &prom.url(), empty, promote))
        .await
        .expect("policy r3");
    let v5 = common::pushed(&op, &document(backend.addr, 3500), "v5").await;
    op.deploy("production", &v5, None).await.expect("deploy v5");
    let held = wait_until(Duration::from_secs(20), async || {
        op.releases().await.expect("releases")[0]
            .reason
            .as_deref()
            .is_some_and(|r| {
                r.contains("waiting for a person")
                    && r.contains("query checkout: no series matched")
            })
    })
    .await;
    let r = op.releases().await.expect("releases")[0].clone();
    assert!(held, "{r:?}");
    tokio::time::sleep(Duration::from_secs(4)).await;
    let r = op.releases().await.expect("releases")[0].clone();
    assert_eq!(
        (r.version.clone(), r.state.as_str(), r.wave),
        (v5.clone(), "rolling", 0),
        "{r:?}"
    );
    let events = op.events(0).await.expect("events");
    assert!(
        events
            .iter()
            .any(|e| e.kind == "release.overdue" && e.data["then"] == "hold"),
        "no overdue event"
    );
    let ticket = wait_until(Duration::from_secs(10), async || {
        op.alerts(true)
            .await
            .expect("alerts")
            .iter()
            .any(|a| a.key == "held:production")
    })
    .await;
    assert!(ticket, "no ticket for the held release");
    let svg = op.release_picture(r.id).await.expect("picture");
    assert!(
        svg.contains("inconclusive past the policy&#39;s deadline: hold"),
        "{svg}"
    );
    assert!(
        svg.contains("policy production policy r3 · now wave 1 of 2"),
        "{svg}"
    );
    op.release_action(r.id, "abort").await.expect("abort");
    for g in gateways {
        g.stop().await;
    }
    control.kill().await;
}
