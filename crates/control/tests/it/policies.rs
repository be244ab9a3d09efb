//! Rollout policies people write: stored and audited per environment, checked with paths,
//! followed by the next release — its waves, its bakes, its pause until someone promotes — and
//! synthetic probes that let a release without users be judged, counted apart from user traffic.

use std::time::{Duration, Instant};

use rampart_api::{ApiClient, ClientError};
use rampart_gateway::watchdog::WatchdogSettings;
use rampart_testkit::EchoServer;

use crate::common;
use common::{Agent, document, start_fleet, wait_until};

/// Four waves, the second paused for a person, the third with a long bake; gates need no
/// traffic (so only the policy's own steps hold the release).
const PAUSED: &str = "\
waves:
  - instances: 1
    bake: 1s
  - percent: 50
    bake: 1s
    pause: true
  - percent: 75
    bake: 10m
  - percent: 100
gates:
  min_requests: 0
";

async fn on(op: &ApiClient, v: &rampart_api::VersionId) -> usize {
    op.environments().await.expect("envs")[0]
        .instances
        .iter()
        .filter(|i| i.applied.as_ref() == Some(v))
        .count()
}

#[tokio::test]
async fn a_written_policy_is_followed_paused_until_promoted_and_a_wave_skipped() {
    let backend = EchoServer::start("b").await.expect("backend");
    let control = common::quick_production("policy").await;
    let op = ApiClient::new(&control.url(), Some("op".into()));
    let approver = ApiClient::new(&control.url(), Some("ap".into()));
    let viewer = ApiClient::new(&control.url(), Some("viewer".into()));

    // Before any is stored, the default is shown written out, and it reads back as a policy.
    let default = op.policy("production").await.expect("default policy");
    assert_eq!(default.revision, None);
    assert!(
        rampart_rollout::policy::load(&default.text).is_ok(),
        "{}",
        default.text
    );

    // Refused: an invalid policy (every problem, with its path), a viewer, an unknown place.
    let bad = op
        .set_policy("production", "waves:\n  - percent: 0\n  - instances: 2\n")
        .await;
    match bad {
        Err(ClientError::Api {
            status: 422,
            message,
            ..
        }) => {
            assert!(
                message.contains("waves[0].percent: 0 is not in 1–100"),
                "{message}"
            );
            assert!(
                message.contains("waves[1]: the last wave must cover every instance"),
                "{message}"
            );
        }
        other => panic!("an invalid policy was not refused: {other:?}"),
    }
    let refused = viewer.set_policy("production", PAUSED).await;
    assert!(
        matches!(refused, Err(ClientError::Api { status: 403, .. })),
        "{refused:?}"
    );
    let unknown = op.set_policy("staging", PAUSED).await;
    assert!(
        matches!(unknown, Err(ClientError::Api { status: 404, .. })),
        "{unknown:?}"
    );

    let stored = op.set_policy("production", PAUSED).await.expect("set");
    assert_eq!(stored.revision, Some(1));
    assert!(
        stored.changes.iter().any(|c| c.starts_with("~ waves")),
        "{:?}",
        stored.changes
    );
    let again = op.set_policy("production", PAUSED).await;
    assert!(
        matches!(again, Err(ClientError::Api { status: 409, .. })),
        "{again:?}"
    );

    let gateways: Vec<Agent> = start_fleet(&control.url(), 4, WatchdogSettings::quiet());
    common::serving_v1(&op, &approver, backend.addr, &gateways).await;

    // The release follows revision 1: one instance, then half, then its pause.
    let v2 = common::pushed(&op, &document(backend.addr, 2500), "v2").await;
    let started = Instant::now();
    op.deploy("production", &v2, None).await.expect("deploy v2");
    let release = async || op.releases().await.expect("releases")[0].clone();
    let paused = wait_until(Duration::from_secs(15), async || {
        release()
            .await
            .reason
            .is_some_and(|r| r.starts_with("paused by policy after wave 2"))
    })
    .await;
    let r = release().await;
    assert!(paused, "{r:?}");
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "two bakes of 1 s came first"
    );
    assert_eq!((r.waves, r.wave, on(&op, &v2).await), (4, 1, 2), "{r:?}");
    assert_eq!(r.policy, "production policy r1");
    assert_eq!(r.step, "wave 2 of 4: 50%, bake 1s, then a pause");
    let svg = op.release_picture(r.id).await.expect("picture");
    assert!(
        svg.contains("policy production policy r1 · now wave 2 of 4: 50%, bake 1s, then a pause"),
        "{svg}"
    );
    // It stays paused (no timer moves it on).
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!((release().await.wave, on(&op, &v2).await), (1, 2));

    // A viewer can neither promote nor skip; an operator promotes with a reason.
    for action in ["promote", "skip"] {
        let refused = viewer.release_judgement(r.id, action, "looked").await;
        assert!(
            matches!(refused, Err(ClientError::Api { status: 403, .. })),
            "{action}: {refused:?}"
        );
    }
    op.release_judgement(r.id, "promote", "dashboards clean")
        .await
        .expect("promote");
    assert!(wait_until(Duration::from_secs(10), async || on(&op, &v2).await == 3).await);
    // Wave 3 bakes for ten minutes; skip it.
    assert!(
        release()
            .await
            .step
            .starts_with("wave 3 of 4: 75%, bake 10m")
    );
    op.release_judgement(r.id, "skip", "bake proven elsewhere")
        .await
        .expect("skip");
    let done = wait_until(Duration::from_secs(10), async || {
        release().await.state == "succeeded" && on(&op, &v2).await == 4
    })
    .await;
    assert!(done, "{:?}", release().await);

    // Everything the policy and the judgements changed is in the event log.
    let events = op.events(0).await.expect("events");
    let set = events
        .iter()
        .find(|e| e.kind == "policy.set")
        .expect("policy.set");
    assert_eq!(
        (set.actor.as_str(), set.data["revision"].as_i64()),
        ("olivia", Some(1))
    );
    let start = events
        .iter()
        .find(|e| e.data["release"].as_i64() == Some(r.id) && e.data["policy"].is_string())
        .expect("the release's start event");
    assert_eq!(start.data["policy"], "production policy r1");
    for (kind, reason) in [
        ("release.promoted", "dashboards clean"),
        ("release.skipped", "bake proven elsewhere"),
    ] {
        assert!(
            events
                .iter()
                .any(|e| e.kind == kind && e.actor == "olivia" && e.data["reason"] == reason),
            "{kind}"
        );
    }
    let history = op.policy_history("production").await.expect("history");
    assert_eq!(history.len(), 1);
    for g in gateways {
        g.stop().await;
    }
    control.kill().await;
}

/// Probes, as a policy lists them, make a quiet environment's gates judge: the release needs
/// 20 requests per wave and gets them from its cohort's own probes. The probes show in the
/// gateways' `rampart_probe_requests`, not in `rampart_requests` (user traffic, the SLIs).
/// A probe answered with another status than expected counts as an error.
#[tokio::test]
async fn probes_let_a_quiet_environment_be_judged_and_are_counted_apart() {
    let backend = EchoServer::start("b").await.expect("backend");
    let control = common::quick_production("probes").await;
    let op = ApiClient::new(&control.url(), Some("op".into()));
    let approver = ApiClient::new(&control.url(), Some("ap".into()));
    let (gateways, admins) = common::start_fleet_with_admins(&control.url(), 2);
    common::serving_v1(&op, &approver, backend.addr, &gateways).await;
    let policy = |expect: u16| {
        format!(
            "waves:\n  - {{ instances: 1, bake: 1s }}\n  - {{ percent: 100, bake: 1s }}\n\
             gates: {{ min_requests: 20 }}\n\
             on_inconclusive: {{ after: 30s, action: rollback }}\n\
             probes:\n  - {{ name: health, path: /probe, expect_status: {expect}, rate: 20 }}\n"
        )
    };
    op.set_policy("production", &policy(200))
        .await
        .expect("policy");
    let v2 = common::pushed(&op, &document(backend.addr, 2500), "v2").await;
    op.deploy("production", &v2, None).await.expect("deploy v2");
    let ended = async || {
        let r = op.releases().await.expect("releases")[0].clone();
        matches!(r.state.as_str(), "succeeded" | "rolled_back").then_some(r)
    };
    let mut release = None;
    wait_until(Duration::from_secs(20), async || {
        release = ended().await;
        release.is_some()
    })
    .await;
    let release = release.expect("the probed release ended");
    assert_eq!(release.state, "succeeded", "{release:?}");

    // Counted apart: probes in rampart_probe_requests, none in rampart_requests.
    let metrics = rampart_testkit::client::get(
        &rampart_testkit::client::http1(),
        &format!("http://{}/metrics", admins[0]),
    )
    .await
    .expect("metrics");
    let text = String::from_utf8_lossy(&metrics.body).into_owned();
    let sum = |prefix: &str| -> f64 {
        text.lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    assert!(sum("rampart_probe_requests_total{") >= 20.0, "{text}");
    let user_2xx = sum("rampart_requests_total{route=\"r\",class=\"2xx\"}");
    assert!(
        user_2xx <= 2.0,
        "probe traffic leaked into user metrics: {user_2xx} ({text})"
    );

    // A probe expecting another status fails the next release at its canary.
    op.set_policy("production", &policy(201))
        .await
        .expect("policy r2");
    let v3 = common::pushed(&op, &document(backend.addr, 3000), "v3").await;
    op.deploy("production", &v3, None).await.expect("deploy v3");
    let mut release = None;
    wait_until(Duration::from_secs(20), async || {
        release = ended().await.filter(|r| r.version == v3);
        release.is_some()
    })
    .await;
    let release = release.expect("the failing release ended");
    assert_eq!(release.state, "rolled_back", "{release:?}");
    assert!(
        release
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("error_ceiling")),
        "{release:?}"
    );
    for g in gateways {
        g.stop().await;
    }
    control.kill().await;
}
