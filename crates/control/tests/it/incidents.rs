//! An automatic rollback on a real three-gateway fleet under load opens an incident by itself,
//! pages once (trigger, then resolve with the same dedup_key), moves to monitoring when the
//! fleet is whole, resolves after the quiet period, and yields a postmortem with all five
//! sections, its timeline in order and its impact equal to what the agents reported. The public
//! status page shows the incident within 5 s of the rollback, and a subscriber's webhook gets it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rampart_api::{
    ActionItemSpec, ApiClient, ComponentSpec, IncidentChange, IncidentStatus, SubscriberKind,
    SubscriberSpec,
};
use rampart_gateway::watchdog::WatchdogSettings;
use rampart_rollout::Plan;
use rampart_testkit::EchoServer;
use rampart_testkit::client;
use rampart_testkit::receiver::Receiver;

use crate::common;
use common::{blackholed_auth, document, first_version, start_fleet, steady_load, wait_until};

#[tokio::test]
async fn an_automatic_rollback_writes_its_own_postmortem() {
    automatic_rollback_story(None).await;
}

/// The same story with the control plane's state in PostgreSQL (a real server of its own):
/// releases, alerts, incidents, the outbox, components, SLI minutes and subscribers go through
/// the PostgreSQL backend.
#[tokio::test]
async fn an_automatic_rollback_writes_its_own_postmortem_on_postgresql() {
    let server = rampart_testkit::postgres::PostgresServer::start()
        .await
        .expect("a PostgreSQL server (scripts/install-test-deps.sh installs it)");
    automatic_rollback_story(Some(server.url())).await;
}

async fn automatic_rollback_story(database: Option<String>) {
    let backend = EchoServer::start("b").await.expect("backend");
    let pager = Receiver::start().await.expect("pager");
    let control = common::production("incident", |c| {
        let c = c
            .with_plan(Some(Plan::short(1_000)))
            .with_tick(Duration::from_millis(200))
            .with_incident_quiet(Duration::from_secs(2))
            .with_private_webhooks(true); // the subscriber is a receiver on loopback
        match &database {
            Some(url) => c.with_database(url),
            None => c,
        }
    })
    .await;
    let op = ApiClient::new(&control.url(), Some("op".into()));
    let approver = ApiClient::new(&control.url(), Some("ap".into()));
    op.put_component(
        "Users API",
        &ComponentSpec {
            description: "users and sessions".into(),
            routes: vec!["r".into()],
            environment: None,
            // With seconds of history, a 99.9 % objective's 6 h window dilutes a burst only
            // after tens of thousands of good requests; 99 % clears in seconds.
            slo: 99.0,
        },
    )
    .await
    .expect("component");
    op.put_channel("pager", &common::pager_channel(pager.url()))
        .await
        .expect("channel");

    let subscriber = Receiver::start().await.expect("subscriber");
    op.add_subscriber(&SubscriberSpec {
        kind: SubscriberKind::Webhook,
        target: subscriber.url(),
    })
    .await
    .expect("subscriber");

    let gateways = start_fleet(&control.url(), 3, WatchdogSettings::quiet());
    let listens: Vec<_> = gateways.iter().map(|g| g.listen).collect();
    first_version(
        &op,
        &approver,
        &document(backend.addr, 2000),
        &listens,
        Duration::from_secs(15),
    )
    .await;
    let stop = Arc::new(AtomicBool::new(false));
    let load = steady_load(&listens, &stop);

    let dns = rampart_testkit::dns::BlackHoleDns::start()
        .await
        .expect("dns");
    let bad = blackholed_auth(backend.addr, dns.addr);
    let v2 = common::break_glass_to_production(&approver, &bad, "v2 new auth server").await;

    // rampart rolls the release back; the public page shows the incident within 5 s.
    assert!(
        wait_until(Duration::from_secs(20), async || op
            .releases()
            .await
            .is_ok_and(|r| r[0].state == "rolled_back"))
        .await,
        "no automatic rollback: {:?}",
        op.releases().await
    );
    // The page and its JSON show the rollback's incident (an SLO page may have opened it a
    // moment earlier under another title; the rollback names its cause).
    let rolled_back = std::time::Instant::now();
    let page_url = format!("{}/", control.url());
    let json_url = format!("{}/api/v2/incidents/unresolved.json", control.url());
    let on_page = wait_until(Duration::from_secs(5), async || {
        let html = client::get(&client::http1(), &page_url).await;
        let json = client::get(&client::http1(), &json_url).await;
        html.is_ok_and(|a| {
            String::from_utf8_lossy(&a.body).contains("Automatic rollback in production")
        }) && json
            .ok()
            .and_then(|a| serde_json::from_slice::<serde_json::Value>(&a.body).ok())
            .is_some_and(|v| {
                v["incidents"].as_array().is_some_and(|l| {
                    l.iter().any(|i| {
                        i["name"]
                            .as_str()
                            .is_some_and(|n| n.contains("Automatic rollback"))
                    })
                })
            })
    })
    .await;
    assert!(
        on_page,
        "the status page did not show the rollback's incident within 5 s of the rollback"
    );
    println!(
        "status page showed the incident {:?} after the rollback was observed",
        rolled_back.elapsed()
    );
    assert!(
        wait_until(Duration::from_secs(5), async || subscriber
            .received()
            .iter()
            .any(|r| r.body["incident"]["name"]
                .as_str()
                .is_some_and(|n| n.contains("Automatic rollback"))))
        .await,
        "the subscriber's webhook did not receive the incident"
    );
    let incident = op.incidents().await.expect("incidents").remove(0);
    assert_eq!(incident.environment.as_deref(), Some("production"));
    assert_eq!(incident.components, vec!["Users API".to_string()]);
    assert!(
        incident.cause.get("release").is_some(),
        "{:?}",
        incident.cause
    );

    // Monitoring once the fleet is whole, then resolved after the quiet period.
    assert!(
        wait_until(Duration::from_secs(90), async || op
            .incident(incident.id)
            .await
            .is_ok_and(|i| i.status == IncidentStatus::Resolved))
        .await,
        "the incident did not resolve: {:?}",
        op.incident(incident.id).await
    );
    stop.store(true, Ordering::Relaxed);
    for l in load {
        l.await.expect("load");
    }
    let incident = op.incident(incident.id).await.expect("incident");
    // An SLO page may open the incident a moment before the gate fails (investigating); the
    // rollback then identifies the cause.
    let statuses: Vec<IncidentStatus> = incident.updates.iter().map(|u| u.status).collect();
    let tail = [
        IncidentStatus::Identified,
        IncidentStatus::Monitoring,
        IncidentStatus::Resolved,
    ];
    assert!(
        statuses.ends_with(&tail)
            && (statuses.len() == 3
                || statuses.len() == 4 && statuses[0] == IncidentStatus::Investigating),
        "{statuses:?}"
    );

    // Paged once: trigger, then resolve with the same dedup_key.
    assert!(wait_until(Duration::from_secs(5), async || pager.received().len() >= 2).await);
    let pages = pager.received();
    assert_eq!(
        pages.len(),
        2,
        "{:?}",
        pages.iter().map(|p| &p.body).collect::<Vec<_>>()
    );
    assert_eq!(pages[0].body["event_action"], "trigger");
    assert_eq!(pages[1].body["event_action"], "resolve");
    assert_eq!(pages[0].body["dedup_key"], pages[1].body["dedup_key"]);

    // Impact equals what the agents reported: every 5xx happened during the incident.
    let env = op.environments().await.expect("envs").remove(0);
    let reported_5xx: u64 = env.instances.iter().map(|i| i.requests[4]).sum();
    let reported_all: u64 = env
        .instances
        .iter()
        .map(|i| i.requests.iter().sum::<u64>())
        .sum();
    println!(
        "incident impact: {} failed of {} requests; agents reported {} 5xx of {} requests since they started",
        incident.traffic.failed, incident.traffic.total, reported_5xx, reported_all
    );
    assert!(reported_5xx > 0, "the canary failed no request");
    assert_eq!(incident.traffic.failed, reported_5xx);
    assert!(
        incident.traffic.total <= reported_all && incident.traffic.total > incident.traffic.failed
    );

    // People add the narrative and the action items; the generated parts stay.
    op.update_incident(
        incident.id,
        &IncidentChange {
            summary: Some("The canary could not reach the new auth server.".into()),
            ..Default::default()
        },
    )
    .await
    .expect("narrative");
    op.add_action_item(
        incident.id,
        &ActionItemSpec {
            title: "Resolve auth hosts in CI before merge".into(),
            owner: "olivia".into(),
            state: "open".into(),
        },
    )
    .await
    .expect("action item");
    let bad_item = op
        .add_action_item(
            incident.id,
            &ActionItemSpec {
                title: "x".into(),
                owner: "".into(),
                state: "open".into(),
            },
        )
        .await
        .expect_err("an action item needs an owner");
    assert!(bad_item.to_string().contains("owner"), "{bad_item}");

    let md = op
        .postmortem(incident.id, "md")
        .await
        .expect("postmortem")
        .text;
    println!("{md}");
    let sections = [
        "## Issue Summary",
        "## Timeline",
        "## Root Cause",
        "## Resolution and recovery",
        "## Corrective and preventive measures",
    ];
    let mut at = 0;
    for s in sections {
        let found = md[at..]
            .find(s)
            .unwrap_or_else(|| panic!("no {s:?} after byte {at}"));
        at += found;
    }
    assert!(md.contains(&format!(
        "{} of {} requests",
        incident.traffic.failed, incident.traffic.total
    )));
    assert!(md.contains("Users API"));
    assert!(md.contains(v2.as_str()), "the root cause names the version");
    assert!(
        md.contains("auth.blackhole.test"),
        "the diff shows the changed endpoint"
    );
    assert!(
        md.contains("gate failed in wave"),
        "the failing gate with its numbers"
    );
    assert!(md.contains("Resolve auth hosts in CI before merge"));
    assert!(md.contains("The canary could not reach the new auth server."));

    // The timeline is in time order and tells the story in its order.
    let timeline: Vec<&str> = md
        .split("## Timeline")
        .nth(1)
        .and_then(|t| t.split("## Root Cause").next())
        .expect("timeline")
        .lines()
        .filter(|l| l.starts_with("- "))
        .collect();
    let times: Vec<&str> = timeline.iter().map(|l| &l[2..14]).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{timeline:#?}");
    let position = |needle: &str| {
        timeline
            .iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no {needle:?} in {timeline:#?}"))
    };
    // The story in order. (Whether the SLO page or the rollback's page opened the incident
    // depends on which came first; both are in the timeline.)
    let story = [
        "pushed version",
        "release 1 of",
        &format!("p0 applied {}", &v2[..12]),
        "gate: fail",
        "rolled release 1 back",
        "every instance of production runs",
        "incident monitoring",
        "incident resolved",
    ];
    let positions: Vec<usize> = story.iter().map(|s| position(s)).collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "story out of order: {:?}\n{timeline:#?}",
        story.iter().zip(&positions).collect::<Vec<_>>()
    );
    for s in ["alert fired (page)", "incident opened", "paged pager"] {
        assert!(
            position(s) > position("release 1 of") && position(s) < position("incident monitoring"),
            "{s:?} outside the incident: {timeline:#?}"
        );
    }

    let html = op.postmortem(incident.id, "html").await.expect("html").text;
    assert!(html.contains("<svg") && html.contains("<h2>Root Cause</h2>"));
    assert!(op.postmortem(incident.id, "pdf").await.is_err());

    for g in gateways {
        g.stop().await;
    }
    control.kill().await;
}
