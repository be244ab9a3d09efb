//! The same change with the defences off: every gateway at once, no gates, no watchdog; an
//! operator rolls back when the SLO page fires. Printed beside the defended run.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::Result;
use rampart_demo::traffic::Tally;
use rampart_gateway::watchdog::WatchdogSettings;

use super::steps::{Release, Rollback};
use super::story::wait_for;
use super::world::{Services, World};

pub struct Counterfactual {
    exposed: usize,
    failed: Tally,
    recover_secs: Option<f64>,
}

pub async fn run(services: &Services, gateways: usize) -> Result<Counterfactual> {
    println!("\ncounterfactual: the same change, all at once, gates and watchdog off");
    let off = WatchdogSettings {
        window: Duration::from_secs(1),
        floor: 1.0,
        ..Default::default()
    };
    let mut w = World::start("counterfactual", gateways, None, off, false).await?;
    let v1 = w.good_version(services).await?;
    w.start_traffic(&services.user_token(), Duration::from_secs(120));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let v2 = w
        .approver
        .push_with(
            &services.seed_config(),
            "v2: new auth server",
            Some("counterfactual".into()),
        )
        .await?
        .version
        .id;
    let from = Instant::now();
    w.approver
        .deploy("production", &v2, Some("counterfactual".into()))
        .await?;
    let mut exposed = BTreeSet::new();
    let paged = wait_for(Duration::from_secs(60), async || {
        exposed.extend(w.production_running(&v2).await.unwrap_or_default());
        w.paged("trigger") > 0
    })
    .await;
    println!(
        "      · {} — the operator rolls back",
        if paged {
            "the SLO page fires"
        } else {
            "no page within 60 s"
        }
    );
    w.op.rollback("production", Some(v1.clone())).await?;
    let back = wait_for(Duration::from_secs(30), async || {
        w.production_all_on(&v1).await
    })
    .await;
    let recover_secs = back.then(|| from.elapsed().as_secs_f64());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let failed = Tally::between(&w.samples(), from, Instant::now());
    println!(
        "      · {} of {gateways} gateways ran it; {} of {} requests failed",
        exposed.len(),
        failed.failed,
        failed.total
    );
    w.shutdown().await;
    Ok(Counterfactual {
        exposed: exposed.len(),
        failed,
        recover_secs,
    })
}

impl Counterfactual {
    /// Prints the defended run and this one side by side.
    pub fn compare(&self, gateways: usize, release: &Release, bad: Tally, rollback: &Rollback) {
        let row = |what: &str, defended: String, counterfactual: String| {
            println!("      {what:<34} {defended:>16} {counterfactual:>16}");
        };
        println!("\nwith and without the defences (same change, same load):");
        row(
            "from the bad deploy to recovery",
            "defended".into(),
            "counterfactual".into(),
        );
        row(
            "gateways that ran the bad version",
            format!("{} of {gateways}", release.exposed.len()),
            format!("{} of {gateways}", self.exposed),
        );
        row(
            "failed requests (share)",
            format!("{} ({:.2} %)", bad.failed, bad.failed_percent()),
            format!(
                "{} ({:.2} %)",
                self.failed.failed,
                self.failed.failed_percent()
            ),
        );
        row(
            "time to recover",
            rollback.seconds.map_or("—".into(), |s| format!("{s:.1} s")),
            self.recover_secs
                .map_or("—".into(), |s| format!("{s:.1} s (manual)")),
        );
        println!(
            "      (counterfactual: break-glass past validation and the pipeline, no waves or gates, agent watchdog off;"
        );
        println!(
            "       recovery is an operator's `rampart rollback` as soon as the SLO page fires — in 2013 it took 11 hours)"
        );
    }
}
