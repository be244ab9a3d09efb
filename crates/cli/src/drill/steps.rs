//! The drill's steps, in the order the story is told. Each prints its part and records its
//! checks; what a later step needs it returns.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rampart_api::{Event, IncidentStatus, VersionId};
use rampart_demo::traffic::Tally;

use super::story::{Story, wait_for};
use super::world::{Services, World};

/// The window over which the share of failed requests is measured, from the bad deploy.
pub const MEASURE: Duration = Duration::from_secs(60);

/// Step 1: v1 through testing, then production; steady traffic starts.
pub async fn good_version(
    story: &mut Story,
    w: &mut World,
    services: &Services,
) -> Result<VersionId> {
    story.step("a good version goes through testing, then production");
    let v1 = w.good_version(services).await?;
    story.note(format!("v1 {} runs on every gateway", v1.short()));
    w.start_traffic(&services.user_token(), Duration::from_secs(180));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let warm = w.samples();
    story.note(format!(
        "steady load: {} requests in 2 s across {} gateways, {} failed",
        warm.len(),
        w.production.len(),
        warm.iter().filter(|s| !s.ok).count()
    ));
    Ok(v1)
}

/// Step 2: validation refuses the seed's change.
pub async fn validation_refuses(story: &mut Story, w: &World, services: &Services) {
    story.step(
        "the seed's change: the auth server moves to a name only a black-hole DNS server \"answers\"",
    );
    match w
        .op
        .push(&services.seed_config(), "v2: new auth server")
        .await
    {
        Err(e) => story.check(true, format!("validation refused the push: {e}")),
        Ok(_) => story.check(
            false,
            "validation accepted an auth server that does not resolve",
        ),
    }
}

const BREAK_GLASS: &str = "drill: replaying the seed change";

/// Step 3: an approver stores the change anyway; production refuses an untested version.
pub async fn pipeline_refuses(
    story: &mut Story,
    w: &World,
    services: &Services,
) -> Result<VersionId> {
    story.step("straight to production, as in 2013");
    let v2 = w
        .approver
        .push_with(
            &services.seed_config(),
            "v2: new auth server",
            Some(BREAK_GLASS.into()),
        )
        .await?
        .version
        .id;
    story.note(format!(
        "an approver stores it anyway with a recorded break-glass reason: {}",
        v2.short()
    ));
    match w.op.deploy("production", &v2, None).await {
        Err(rampart_api::ClientError::Api {
            status: 409,
            message,
            ..
        }) => story.check(true, format!("production refused it: {message}")),
        other => story.check(
            false,
            format!("production did not refuse an untested version: {other:?}"),
        ),
    }
    Ok(v2)
}

/// What the break-glass release did, as the drill watched it.
pub struct Release {
    pub pushed_at: Instant,
    /// Every production gateway that ever ran the bad version.
    pub exposed: BTreeSet<String>,
    /// The release rolled back and every gateway is on v1 again.
    pub recovered: bool,
    pub recovered_at: Instant,
}

/// Step 4: break-glass deploy; only the canary runs it, and only its auth routes fail, fast.
pub async fn canary_release(
    story: &mut Story,
    w: &World,
    v1: &VersionId,
    v2: &VersionId,
) -> Result<Release> {
    story.step("break-glass: the change goes to production anyway — as a release in waves");
    let pushed_at = Instant::now();
    w.approver
        .deploy("production", v2, Some(BREAK_GLASS.into()))
        .await?;
    let mut exposed = BTreeSet::new();
    let mut canary_at: Option<Instant> = None;
    let mut rolled_back_at: Option<Instant> = None;
    let mut killed = false;
    let recovered = wait_for(Duration::from_secs(30), async || {
        for id in w.production_running(v2).await.unwrap_or_default() {
            if exposed.insert(id.clone()) {
                canary_at.get_or_insert_with(Instant::now);
                story.note(format!("{id} applied v2 (t+{:.1} s)", story.elapsed()));
            }
        }
        // With replicas: the leader dies while the bad version runs on the canary.
        if canary_at.is_some() && !killed {
            killed = true;
            match w.kill_leader().await {
                Ok(Some((dead, next, took))) => story.check(
                    next != "none" && took < Duration::from_secs(15),
                    format!(
                        "the leading replica {dead} was killed (SIGKILL) mid-release; {next} leads {:.1} s later",
                        took.as_secs_f64()
                    ),
                ),
                Ok(None) => {}
                Err(e) => story.check(false, format!("killing the leader: {e}")),
            }
        }
        let rolled =
            w.op.releases()
                .await
                .is_ok_and(|r| r.first().is_some_and(|r| r.state == "rolled_back"));
        if rolled {
            rolled_back_at.get_or_insert_with(Instant::now);
        }
        canary_at.is_some() && rolled && w.production_all_on(v1).await
    })
    .await;
    let recovered_at = Instant::now();
    story.check(
        exposed.len() == 1,
        format!(
            "only the canary ever ran v2 ({} of {} gateways: {:?})",
            exposed.len(),
            w.production.len(),
            exposed
        ),
    );
    let canary: Option<usize> = exposed
        .first()
        .and_then(|id| id.trim_start_matches('p').parse().ok());
    if let (Some(c), Some(from)) = (canary, canary_at) {
        let samples = w.samples();
        let window: Vec<_> = samples
            .iter()
            .filter(|s| s.gateway == c && s.at >= from && rolled_back_at.is_none_or(|r| s.at <= r))
            .collect();
        let failed: Vec<_> = window.iter().filter(|s| s.users && !s.ok).collect();
        let slowest = failed.iter().map(|s| s.latency).max().unwrap_or_default();
        story.check(
            slowest < Duration::from_secs(1),
            format!(
                "the canary's auth routes failed fast: {} failures, the slowest answered in {} ms (deadline 250 ms + DNS 100 ms); nothing waited forever",
                failed.len(),
                slowest.as_millis()
            ),
        );
        let public_failed = window.iter().filter(|s| !s.users && !s.ok).count();
        let public_total = window.iter().filter(|s| !s.users).count();
        story.check(
            public_failed == 0,
            format!("its other routes kept serving: {public_failed} of {public_total} /public requests failed meanwhile"),
        );
    }
    Ok(Release {
        pushed_at,
        exposed,
        recovered,
        recovered_at,
    })
}

/// What the control plane's events say about the rollback.
pub struct Rollback {
    /// The first instance to apply the bad version.
    pub first_bad: Option<Event>,
    /// Production whole on v1 again after the rollback.
    pub recovered: Option<Event>,
    pub seconds: Option<f64>,
}

fn converged_on<'a>(events: &'a [Event], v1: &VersionId) -> Option<&'a Event> {
    let rolled = events
        .iter()
        .position(|e| e.kind == "release.rolled_back")?;
    events.get(rolled..)?.iter().find(|e| {
        e.kind == "environment.converged"
            && e.subject == "production"
            && e.data.get("version").and_then(|v| v.as_str()) == Some(v1.as_str())
    })
}

/// Step 5: the gate fails and the release rolls back by itself, in seconds.
pub async fn automatic_rollback(
    story: &mut Story,
    w: &World,
    v1: &VersionId,
    v2: &VersionId,
    release: &Release,
) -> Result<Rollback> {
    story.step("the gate fails and rampart rolls back by itself");
    // The control plane records the fleet whole again on its next evaluation (every second).
    wait_for(Duration::from_secs(5), async || {
        w.events()
            .await
            .is_ok_and(|e| converged_on(&e, v1).is_some())
    })
    .await;
    let events = w.events().await?;
    let gate = events.iter().find(|e| {
        e.kind == "gate.verdict"
            && e.data.pointer("/verdict/verdict").and_then(|v| v.as_str()) == Some("fail")
    });
    match gate {
        Some(g) => {
            let field = |p: &str| g.data.pointer(p).and_then(|v| v.as_str()).unwrap_or("?");
            story.check(
                true,
                format!(
                    "gate failed: {} — {}",
                    field("/verdict/gate"),
                    field("/verdict/detail")
                ),
            );
        }
        None => story.check(false, "no gate failed"),
    }
    let auto = events
        .iter()
        .any(|e| e.kind == "release.rolled_back" && e.actor == "control");
    story.check(
        auto && release.recovered,
        "automatic rollback: every production gateway is back on v1",
    );
    let first_bad = events
        .iter()
        .find(|e| {
            e.kind == "instance.applied"
                && e.data.get("version").and_then(|v| v.as_str()) == Some(v2.as_str())
        })
        .cloned();
    let recovered = converged_on(&events, v1).cloned();
    let seconds = match (&first_bad, &recovered) {
        (Some(a), Some(b)) => Some(at_ms(b).saturating_sub(at_ms(a)) as f64 / 1000.0),
        _ => None,
    };
    story.check(
        seconds.is_some_and(|s| s < 10.0),
        format!(
            "from the bad apply to full rollback: {} (target < 10 s)",
            seconds.map_or("not measured".into(), |s| format!("{s:.1} s"))
        ),
    );
    Ok(Rollback {
        first_bad,
        recovered,
        seconds,
    })
}

/// Step 6: an incident opens, pages once, shows on the status page, and resolves; returns its id.
pub async fn incident(story: &mut Story, w: &World) -> Result<i64> {
    story.step("an incident opens by itself, pages, shows on the status page, and resolves");
    let opened = wait_for(Duration::from_secs(10), async || {
        w.op.incidents().await.is_ok_and(|l| !l.is_empty())
    })
    .await;
    let incident = if opened {
        w.op.incidents().await?.into_iter().last()
    } else {
        None
    };
    match &incident {
        Some(i) => story.check(true, format!("incident {} opened: {}", i.id, i.title)),
        None => story.check(false, "no incident opened"),
    }
    let paged = wait_for(Duration::from_secs(10), async || w.paged("trigger") > 0).await;
    story.check(
        paged,
        format!(
            "paged once through the PagerDuty-format receiver ({} trigger)",
            w.paged("trigger")
        ),
    );
    // The page is read into a snapshot at most once a second: give it a few.
    let url = w.url();
    let unresolved = format!("{url}/api/v2/incidents/unresolved.json");
    let shown = wait_for(Duration::from_secs(5), async || {
        rampart_demo::client::get(&rampart_demo::client::http1(), &unresolved)
            .await
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
    story.check(
        shown,
        format!("on the status page: {url}/ and {url}/api/v2/summary.json"),
    );
    let id = incident.as_ref().map(|i| i.id).unwrap_or(0);
    let resolved = story
        .wait_dotted(
            "waiting for the error budget alerts to clear and the quiet period (3 s)",
            Duration::from_secs(90),
            async || {
                w.op.incident(id)
                    .await
                    .is_ok_and(|i| i.status == IncidentStatus::Resolved)
            },
        )
        .await;
    story.check(
        resolved,
        "the incident resolved itself: identified → monitoring → resolved",
    );
    let page_resolved = wait_for(Duration::from_secs(10), async || w.paged("resolve") > 0).await;
    story.check(
        page_resolved,
        "the page was resolved with the same dedup_key",
    );
    Ok(id)
}

/// Step 7: the postmortem, as Markdown and HTML.
pub async fn postmortem(story: &mut Story, w: &World, id: i64, path: &Path) -> Result<()> {
    story.step("the postmortem writes itself");
    let pm = w.op.postmortem(id, "md").await?;
    let sections = [
        "## Issue Summary",
        "## Timeline",
        "## Root Cause",
        "## Resolution and recovery",
        "## Corrective and preventive measures",
    ];
    let complete = sections.iter().all(|s| pm.text.contains(s));
    tokio::fs::write(path, &pm.text)
        .await
        .with_context(|| format!("writing {}", path.display()))?;
    let html_path = path.with_extension("html");
    let html = w.op.postmortem(id, "html").await?;
    tokio::fs::write(&html_path, &html.text)
        .await
        .with_context(|| format!("writing {}", html_path.display()))?;
    story.check(
        complete,
        format!(
            "postmortem with all five sections: {} (and {})",
            path.display(),
            html_path.display()
        ),
    );
    Ok(())
}

/// The seed incident's timeline, as its report gives it (local time, GMT+3), with the offset
/// from the configuration push.
const SEED_TIMELINE: [(&str, &str, &str); 7] = [
    (
        "7:46 AM",
        "+0",
        "configuration push begins (no testing environment first)",
    ),
    (
        "9:04 AM",
        "+1h18m",
        "outage: auth lookups block forever, threads run out",
    ),
    ("12:05", "+4h19m", "pagers alert teams"),
    ("4:35 PM", "+8h49m", "configuration rollback fails"),
    ("8:02 PM", "+12h16m", "configuration rollback succeeds"),
    ("10:24 PM", "+14h38m", "servers restarted gradually"),
    ("11:55 PM", "+16h09m", "100% of traffic back online"),
];

fn at_ms(e: &Event) -> u64 {
    rampart_api::time::parse_ms(&e.at).unwrap_or(0)
}

fn secs_after(e: &Event, origin: u64) -> f64 {
    at_ms(e).saturating_sub(origin) as f64 / 1000.0
}

/// Step 8: the seed's timeline beside this run's, from the control plane's events.
pub async fn timelines(
    story: &mut Story,
    w: &World,
    v2: &VersionId,
    rollback: &Rollback,
) -> Result<()> {
    story.step("the seed's timeline beside this run's");
    let events = w.events().await?;
    let origin = events
        .iter()
        .find(|e| e.kind == "version.created" && e.subject == *v2)
        .map(at_ms)
        .unwrap_or(0);
    let find = |pred: &dyn Fn(&Event) -> bool| {
        events
            .iter()
            .find(|e| pred(e))
            .map(|e| secs_after(e, origin))
    };
    let measured: Vec<(&str, Option<f64>)> = vec![
        (
            "change pushed (validation refused it; stored by break-glass)",
            Some(0.0),
        ),
        (
            "canary applies it; its auth routes fail fast",
            rollback.first_bad.as_ref().map(|e| secs_after(e, origin)),
        ),
        (
            "gate fails; automatic rollback",
            find(&|e| e.kind == "release.rolled_back"),
        ),
        (
            "pager alerted",
            find(&|e| e.kind == "notification.delivered" && e.data["action"] == "trigger"),
        ),
        (
            "every gateway back on v1",
            rollback.recovered.as_ref().map(|e| secs_after(e, origin)),
        ),
        (
            "incident resolved",
            find(&|e| e.kind == "incident.resolved"),
        ),
    ];
    println!(
        "      {:<10} {:<9} {:<56} | rampart, this run",
        "2013", "offset", ""
    );
    let rows = SEED_TIMELINE.len().max(measured.len());
    for r in 0..rows {
        let left = SEED_TIMELINE
            .get(r)
            .map(|(t, off, what)| format!("{t:<10} {off:<9} {what:<56}"))
            .unwrap_or_else(|| format!("{:<77}", ""));
        let right = measured
            .get(r)
            .map(|(what, at)| {
                format!(
                    "{} {what}",
                    at.map_or("   —   ".into(), |s| format!("+{s:>5.1} s"))
                )
            })
            .unwrap_or_default();
        println!("      {left} | {right}");
    }
    Ok(())
}

/// The share of failed requests: in the minute after the bad deploy (a fixed window, so it does
/// not depend on how long the rest of the drill took), from the deploy to full rollback, and in
/// the whole drill. Returns the tally from the deploy to full rollback.
pub fn failed_share(
    story: &mut Story,
    samples: &[rampart_demo::traffic::Sample],
    release: &Release,
    ended: Instant,
) -> Tally {
    let minute = Tally::between(samples, release.pushed_at, release.pushed_at + MEASURE);
    let bad_window = Tally::between(samples, release.pushed_at, release.recovered_at);
    let all = Tally::between(samples, story.started(), ended);
    let share = minute.failed_percent();
    println!();
    story.check(
        share < 1.0,
        format!(
            "failed requests: {} of {} in the minute after the bad deploy ({share:.3} %, target < 1 %); {} of {} from the bad deploy to full rollback; {} of {} in the whole drill",
            minute.failed, minute.total, bad_window.failed, bad_window.total, all.failed, all.total
        ),
    );
    bad_window
}
