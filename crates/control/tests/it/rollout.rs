//! Releases in waves on a five-gateway production fleet under steady load: a bad version
//! reaches only the canary and is rolled back automatically; a good one passes every wave.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rampart_api::{ApiClient, ClientError};
use rampart_gateway::watchdog::WatchdogSettings;
use rampart_rollout::Plan;
use rampart_testkit::EchoServer;

use crate::common;
use common::{
    Agent, blackholed_auth, document, first_version, free_addr, start_agent, start_fleet,
    steady_load, temp, wait_until,
};

#[tokio::test]
async fn a_bad_version_reaches_only_the_canary_and_a_good_one_every_gateway() {
    let backend = EchoServer::start("b").await.expect("backend");
    let control = common::production("cp", |c| {
        c.with_plan(Some(Plan::short(1_000)))
            .with_tick(Duration::from_millis(200))
    })
    .await;
    let op = ApiClient::new(&control.url(), Some("op".into()));
    let approver = ApiClient::new(&control.url(), Some("ap".into()));

    // The agents' own watchdog is out of the way: this test is about the control plane's gates.
    let gateways: Vec<Agent> = start_fleet(&control.url(), 5, WatchdogSettings::quiet());
    let listens: Vec<SocketAddr> = gateways.iter().map(|g| g.listen).collect();

    // v1 everywhere (a first version goes out at once), with a second person's approval.
    let v1 = first_version(
        &op,
        &approver,
        &document(backend.addr, 2000),
        &listens,
        Duration::from_secs(5),
    )
    .await;

    // Steady load on every gateway, and a watch on who runs what.
    let stop_load = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = steady_load(&listens, &stop_load);
    let ever_bad: Arc<Mutex<HashSet<String>>> = Arc::default();

    // v2 is the seed's change. Validation refuses it; break-glass (an approver, recorded) pushes
    // it anyway, and the release still goes in waves.
    let dns = rampart_testkit::dns::BlackHoleDns::start()
        .await
        .expect("dns");
    let bad = blackholed_auth(backend.addr, dns.addr);
    assert!(
        op.push(&bad, "v2").await.is_err(),
        "semantic checks must refuse the black-holed auth host"
    );
    let v2 = common::break_glass_to_production(&approver, &bad, "v2 new auth server").await;
    let mut canary_applied: Option<Instant> = None;
    let rolled_back = wait_until(Duration::from_secs(20), async || {
        let envs = op.environments().await.expect("envs");
        for i in &envs[0].instances {
            if i.applied.as_deref() == Some(v2.as_str()) {
                ever_bad.lock().expect("lock").insert(i.id.clone());
                canary_applied.get_or_insert_with(Instant::now);
            }
        }
        let releases = op.releases().await.expect("releases");
        canary_applied.is_some()
            && releases[0].state == "rolled_back"
            && envs[0]
                .instances
                .iter()
                .all(|i| i.applied.as_deref() == Some(v1.as_str()))
    })
    .await;
    assert!(
        rolled_back,
        "the bad release was not rolled back: {:?}",
        op.releases().await
    );
    let took = canary_applied.map(|t| t.elapsed()).unwrap_or_default();
    assert!(
        took < Duration::from_secs(10),
        "rollback completed {took:?} after the canary applied"
    );
    println!("bad version: canary applied, gate failed and rollback completed within {took:?}");
    assert_eq!(
        *ever_bad.lock().expect("lock"),
        HashSet::from(["p0".to_string()]),
        "only the canary may run the bad version"
    );
    let release = op.releases().await.expect("releases").remove(0);
    assert!(
        release
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("gate")),
        "{release:?}"
    );
    let events = op.events(0).await.expect("events");
    assert!(
        events
            .iter()
            .any(|e| e.kind == "release.rolled_back" && e.actor == "control"),
        "no automatic rollback event"
    );
    assert!(
        events
            .iter()
            .any(|e| e.kind == "gate.verdict" && e.data["verdict"]["verdict"] == "fail"),
        "no failed gate verdict event"
    );

    // v3 is good: it passes every wave and ends succeeded, on every gateway.
    let v3 = common::pushed(&op, &document(backend.addr, 3000), "v3").await;
    op.deploy("production", &v3, None).await.expect("deploy v3");
    let succeeded = wait_until(Duration::from_secs(30), async || {
        let releases = op.releases().await.expect("releases");
        let envs = op.environments().await.expect("envs");
        releases[0].state == "succeeded"
            && envs[0]
                .instances
                .iter()
                .all(|i| i.applied.as_deref() == Some(v3.as_str()))
    })
    .await;
    assert!(
        succeeded,
        "the good release did not succeed: {:?}",
        op.releases().await
    );
    assert_eq!(
        op.environments().await.expect("envs")[0].desired.as_deref(),
        Some(v3.as_str())
    );
    pictures_tell_both_releases(&op).await;

    stop_load.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut ok, mut failed) = (0, 0);
    for l in load {
        let (o, f) = l.await.expect("join");
        ok += o;
        failed += f;
    }
    println!(
        "traffic during both releases: {ok} ok, {failed} failed ({:.2}%)",
        failed as f64 * 100.0 / (ok + failed) as f64
    );
    assert!(
        failed * 5 < ok,
        "too many failures: {failed} of {}",
        ok + failed
    );
    for g in gateways {
        g.stop().await;
    }
    control.kill().await;
}

/// The pictures of both releases: the bad one red on the canary only, with its failed gate; the
/// good one blue on every gateway, one band per wave. Saved under `target/artifacts`.
async fn pictures_tell_both_releases(op: &ApiClient) {
    let releases = op.releases().await.expect("releases");
    let (good, bad) = (&releases[0], &releases[1]);
    let bad_svg = op
        .release_picture(bad.id)
        .await
        .expect("bad release picture");
    let good_svg = op
        .release_picture(good.id)
        .await
        .expect("good release picture");
    let groups = |svg: &str| -> Vec<String> {
        svg.split(r#"<g class="instance""#)
            .skip(1)
            .map(|g| g.split("</g>").next().unwrap_or_default().to_owned())
            .collect()
    };

    assert!(bad_svg.contains(r#"data-state="rolled_back""#), "{bad_svg}");
    let bad_rows = groups(&bad_svg);
    assert_eq!(bad_rows.len(), 5, "one row per gateway: {bad_svg}");
    let red: Vec<&String> = bad_rows
        .iter()
        .filter(|g| g.contains("new-rolled-back"))
        .collect();
    assert_eq!(
        red.len(),
        1,
        "only the canary ran the bad version: {bad_svg}"
    );
    assert!(red[0].contains(r#"data-instance="p0""#), "{}", red[0]);
    assert!(bad_svg.contains(r#"class="gate fail""#), "{bad_svg}");

    assert!(good_svg.contains(r#"data-state="succeeded""#), "{good_svg}");
    let good_rows = groups(&good_svg);
    assert_eq!(good_rows.len(), 5, "{good_svg}");
    assert!(
        good_rows.iter().all(|g| g.contains(r#"class="span new""#)),
        "every gateway ends on the new version: {good_svg}"
    );
    assert!(!good_svg.contains("new-rolled-back"), "{good_svg}");
    assert_eq!(
        good_svg.matches(r#"<g class="wave""#).count(),
        Plan::short(1_000).waves.len(),
        "a band per wave: {good_svg}"
    );
    assert!(good_svg.contains(r#"class="gate pass""#), "{good_svg}");

    let dir = common::artifacts_dir();
    tokio::fs::write(dir.join("rollout-rolled-back.svg"), &bad_svg)
        .await
        .expect("write");
    tokio::fs::write(dir.join("rollout-succeeded.svg"), &good_svg)
        .await
        .expect("write");
    assert!(
        op.release_picture(9999).await.is_err(),
        "an unknown release is a 404"
    );
}

#[tokio::test]
async fn a_release_survives_a_control_plane_restart() {
    release_survives_a_restart(None).await;
}

/// The same with the state in PostgreSQL: the control plane is killed mid-release and a new
/// one, on the same database, resumes the release from what it stored.
#[tokio::test]
async fn a_release_survives_a_control_plane_restart_on_postgresql() {
    let server = rampart_testkit::postgres::PostgresServer::start()
        .await
        .expect("a PostgreSQL server");
    release_survives_a_restart(Some(server.url())).await;
}

async fn release_survives_a_restart(database: Option<String>) {
    let backend = EchoServer::start("b").await.expect("backend");
    let data = temp("restart");
    let addr = free_addr();
    let tokens = || common::tokens();
    // Long enough waves that the kill lands mid-release.
    let mut slow = Plan::short(1_000);
    for w in &mut slow.waves {
        w.bake_ms = 2_000;
    }
    let configure = |p: Plan| {
        let database = database.clone();
        move |c: rampart_control::Settings| {
            let c = c.with_plan(Some(p)).with_tick(Duration::from_millis(200));
            match &database {
                Some(url) => c.with_database(url),
                None => c,
            }
        }
    };
    let control = rampart_control::spawn_with(
        &data,
        &["production".into()],
        tokens(),
        addr,
        configure(slow.clone()),
    )
    .await
    .expect("control");
    let ap = ApiClient::new(&control.url(), Some("ap".into()));
    let gateways: Vec<Agent> = (0..3)
        .map(|i| {
            start_agent(
                &control.url(),
                "production",
                &format!("r{i}"),
                temp("rgw"),
                free_addr(),
                WatchdogSettings::default(),
            )
        })
        .collect();
    // Traffic, so the gates have data.
    let stop_load = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let listens: Vec<SocketAddr> = gateways.iter().map(|g| g.listen).collect();
    let _load = steady_load(&listens, &stop_load);
    let v1 = common::pushed(&ap, &document(backend.addr, 2000), "v1").await;
    ap.deploy("production", &v1, Some("first".into()))
        .await
        .expect("v1");
    let v2 = common::pushed(&ap, &document(backend.addr, 2500), "v2").await;
    assert!(
        wait_until(Duration::from_secs(10), async || {
            ap.environments().await.is_ok_and(|e| {
                e[0].instances.len() == 3
                    && e[0]
                        .instances
                        .iter()
                        .all(|i| i.applied.as_deref() == Some(v1.as_str()))
            })
        })
        .await
    );
    ap.deploy("production", &v2, None)
        .await
        .expect("v2 release");
    assert!(
        wait_until(Duration::from_secs(10), async || ap
            .releases()
            .await
            .is_ok_and(|r| r[0].state == "rolling" && !r[0].cohort.is_empty()))
        .await
    );

    // Killed mid-release, restarted on the same data: the release resumes and completes.
    control.kill().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let control = rampart_control::spawn_with(
        &data,
        &["production".into()],
        tokens(),
        addr,
        configure(slow),
    )
    .await
    .expect("restart");
    let resumed = wait_until(Duration::from_secs(40), async || {
        ap.releases().await.is_ok_and(|r| r[0].state == "succeeded")
            && ap.environments().await.is_ok_and(|e| {
                e[0].instances
                    .iter()
                    .all(|i| i.applied.as_deref() == Some(v2.as_str()))
            })
    })
    .await;
    assert!(
        resumed,
        "the release did not finish after the restart: {:?}",
        ap.releases().await
    );
    stop_load.store(true, std::sync::atomic::Ordering::Relaxed);
    for g in gateways {
        g.stop().await;
    }
    control.kill().await;
}

/// Someone's judgement moves a release on, and it shows: with no traffic the first wave is held
/// inconclusive; `promote` (with a reason) starts the next wave at once, `skip` moves past a
/// wave whatever its gates say, and a skip past the last wave ends the release as succeeded.
/// Another token than an operator's can do neither, and a judgement without a reason is
/// refused. Every judgement is an event with its actor and reason, in the release's picture.
#[tokio::test]
async fn promote_and_skip_move_a_release_on_and_are_recorded() {
    let backend = EchoServer::start("b").await.expect("backend");
    // Long bakes and no traffic: without someone's judgement this release would wait.
    let control = common::quick_production("judged").await;
    let op = ApiClient::new(&control.url(), Some("op".into()));
    let approver = ApiClient::new(&control.url(), Some("ap".into()));
    let viewer = ApiClient::new(&control.url(), Some("viewer".into()));
    let gateways: Vec<Agent> = start_fleet(&control.url(), 4, WatchdogSettings::quiet());
    common::serving_v1(&op, &approver, backend.addr, &gateways).await;
    let v2 = common::pushed(&op, &document(backend.addr, 2500), "v2").await;
    op.deploy("production", &v2, None).await.expect("deploy v2");
    let release = async || op.releases().await.expect("releases")[0].clone();
    let held = wait_until(Duration::from_secs(10), async || {
        release()
            .await
            .reason
            .is_some_and(|r| r.starts_with("inconclusive"))
    })
    .await;
    assert!(held, "{:?}", release().await);
    let id = release().await.id;
    let on_v2 = async || {
        op.environments().await.expect("envs")[0]
            .instances
            .iter()
            .filter(|i| i.applied.as_ref() == Some(&v2))
            .count()
    };
    assert_eq!(on_v2().await, 1, "the canary only");

    // Refused: a viewer's token, and a judgement without a reason.
    let refused = viewer.release_judgement(id, "skip", "because").await;
    assert!(
        matches!(refused, Err(ClientError::Api { status: 403, .. })),
        "{refused:?}"
    );
    let bare = op.release_judgement(id, "promote", " ").await;
    assert!(
        matches!(bare, Err(ClientError::Api { status: 422, .. })),
        "{bare:?}"
    );

    // Promote past the inconclusive hold: wave 2 (half the fleet) starts at once.
    let promoted = op
        .release_judgement(id, "promote", "canary looked fine by hand")
        .await
        .expect("promoted");
    assert_eq!(promoted.wave, 1, "{promoted:?}");
    assert!(
        wait_until(Duration::from_secs(10), async || on_v2().await == 2).await,
        "wave 2 did not start"
    );
    // Skip moves on whatever the gates say; a skip past the last wave ends the release.
    while release().await.state != "succeeded" {
        op.release_judgement(id, "skip", "maintenance window closing")
            .await
            .expect("skipped");
    }
    assert!(
        wait_until(Duration::from_secs(10), async || on_v2().await == 4).await,
        "the fleet did not end on v2"
    );
    assert_eq!(
        op.environments().await.expect("envs")[0].desired.as_ref(),
        Some(&v2)
    );

    // Recorded: every judgement with its actor and reason, and drawn in the picture.
    let events = op.events(0).await.expect("events");
    let judged: Vec<_> = events
        .iter()
        .filter(|e| e.kind == "release.promoted" || e.kind == "release.skipped")
        .collect();
    assert!(judged.len() >= 2, "{judged:?}");
    assert!(
        judged.iter().all(
            |e| e.actor == "olivia" && e.data["reason"].as_str().is_some_and(|r| !r.is_empty())
        ),
        "{judged:?}"
    );
    let svg = op.release_picture(id).await.expect("picture");
    assert!(
        svg.contains("promoted by olivia: canary looked fine by hand"),
        "{svg}"
    );
    assert!(svg.contains("skipped by olivia: maintenance window closing"));
    for g in gateways {
        g.stop().await;
    }
    control.kill().await;
}

/// The default policy: an environment before the last releases at once and passes once its
/// instances run the version and report (no traffic needed), so a quiet testing environment
/// ends a release by itself; the last environment keeps its waves.
#[tokio::test]
async fn a_quiet_testing_environment_ends_its_release_by_itself() {
    let backend = EchoServer::start("b").await.expect("backend");
    // The default plan (four waves, 30 s bakes) for the last environment.
    let control = common::pipeline_with_plan("quiet", Some(Plan::standard(30_000))).await;
    let op = ApiClient::new(&control.url(), Some("op".into()));
    let approver = ApiClient::new(&control.url(), Some("ap".into()));
    let quiet = WatchdogSettings::quiet;
    let testing = [
        common::start_agent(
            &control.url(),
            "testing",
            "t0",
            temp("q0"),
            free_addr(),
            quiet(),
        ),
        common::start_agent(
            &control.url(),
            "testing",
            "t1",
            temp("q1"),
            free_addr(),
            quiet(),
        ),
    ];
    let production = common::start_agent(
        &control.url(),
        "production",
        "p0",
        temp("qp"),
        free_addr(),
        quiet(),
    );
    let lkg = async |env: &str| {
        let envs = op.environments().await.expect("environments");
        envs.into_iter()
            .find(|e| e.name == env)
            .and_then(|e| e.last_known_good)
    };
    let v1 = common::pushed(&op, &document(backend.addr, 2000), "v1").await;
    op.deploy("testing", &v1, None)
        .await
        .expect("v1 to testing");
    assert!(
        wait_until(Duration::from_secs(10), async || lkg("testing").await
            == Some(v1.clone()))
        .await
    );

    // v2 replaces v1 in testing, which gets no traffic at all: it ends by itself, quickly.
    let v2 = common::pushed(&op, &document(backend.addr, 2500), "v2").await;
    let t = Instant::now();
    op.deploy("testing", &v2, None)
        .await
        .expect("v2 to testing");
    let ended = wait_until(Duration::from_secs(20), async || {
        lkg("testing").await == Some(v2.clone())
    })
    .await;
    let took = t.elapsed();
    let releases = op.releases().await.expect("releases");
    assert!(ended, "the quiet release never ended: {releases:?}");
    assert!(took < Duration::from_secs(15), "took {took:?}");
    let release = releases
        .iter()
        .find(|r| r.environment == "testing")
        .expect("a release");
    assert_eq!(
        (release.state.as_str(), release.waves),
        ("succeeded", 1),
        "{release:?}"
    );

    // Production keeps its waves: v1 first (a first version goes out at once), then v2 as a
    // four-wave release that, with no traffic, waits for someone's judgement.
    approver
        .deploy("production", &v1, Some("first production config".into()))
        .await
        .expect("v1 to production");
    assert!(
        wait_until(Duration::from_secs(10), async || lkg("production").await
            == Some(v1.clone()))
        .await
    );
    op.deploy("production", &v2, None)
        .await
        .expect("v2 to production");
    let held = wait_until(Duration::from_secs(10), async || {
        op.releases().await.expect("releases").iter().any(|r| {
            r.environment == "production"
                && r.waves == 4
                && r.reason
                    .as_deref()
                    .is_some_and(|w| w.starts_with("inconclusive"))
        })
    })
    .await;
    assert!(held, "{:?}", op.releases().await);
    for a in testing {
        a.stop().await;
    }
    production.stop().await;
    control.kill().await;
}
