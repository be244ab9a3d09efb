//! `rampart drill seed-2013`: the outage replayed on loopback, step by step, with every
//! defence measured. A control plane (temporary SQLite), an auth server, two backends, a
//! black-hole DNS server, a testing gateway and five production gateways (agents), a pager
//! receiver and steady load. The seed's change — the auth server moved to a name only the
//! black-hole DNS "answers" — meets validation, the pipeline, a canary release with gates,
//! automatic rollback, an incident that pages, shows on the status page and resolves, and a
//! postmortem written from the events. `--counterfactual` then pushes the same change to every
//! gateway at once with the defences off, for comparison.
//!
//! Standard output carries the story alone; the components' own logs go to the file the drill
//! names (or, with `--verbose`, to standard error).

mod counterfactual;
mod replicas;
mod steps;
mod story;
mod world;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use rampart_gateway::watchdog::WatchdogSettings;
use rampart_rollout::Plan;

use story::Story;
use world::{Services, World};

pub struct DrillOptions {
    pub keep: bool,
    pub counterfactual: bool,
    /// Where the postmortem (Markdown; HTML beside it) is written.
    pub postmortem: PathBuf,
    pub gateways: usize,
    /// Where the components' logs went, to say so (None: standard error).
    pub log: Option<PathBuf>,
    /// Three control-plane replicas on PostgreSQL; the leader is killed during the bad release.
    pub replicas: bool,
}

/// Runs the drill; true when every check held.
pub async fn run(o: DrillOptions, shutdown: impl std::future::Future<Output = ()>) -> Result<bool> {
    let mut story = Story::new(8);
    println!(
        "rampart drill seed-2013 — the seed outage replayed on loopback, with rampart's defences"
    );
    let services = Services::start().await?;
    let mut w = World::start(
        "defended",
        o.gateways,
        Some(Plan::short(1_000)),
        WatchdogSettings::quiet(),
        o.replicas,
    )
    .await?;
    let url = w.url();
    let control = if o.replicas {
        "three control-plane replicas on PostgreSQL (the leader is killed during the bad release), one at"
    } else {
        "control plane"
    };
    println!(
        "setup: {control} {url}, auth server {}, backends {} and {}, black-hole DNS {}, 1 testing + {} production gateways, pager receiver {}",
        services.auth.addr,
        services.users.addr,
        services.public.addr,
        services.dns.addr,
        o.gateways,
        w.pager.url()
    );
    if let Some(log) = &o.log {
        println!(
            "       their logs: {} (--verbose shows them here)",
            log.display()
        );
    }

    let v1 = steps::good_version(&mut story, &mut w, &services).await?;
    steps::validation_refuses(&mut story, &w, &services).await;
    let v2 = steps::pipeline_refuses(&mut story, &w, &services).await?;
    let release = steps::canary_release(&mut story, &w, &v1, &v2).await?;
    let rollback = steps::automatic_rollback(&mut story, &w, &v1, &v2, &release).await?;
    let incident = steps::incident(&mut story, &w).await?;
    story
        .wait_until(
            "load continues until a minute after the bad deploy",
            release.pushed_at + steps::MEASURE,
        )
        .await;
    let ended = Instant::now();
    let samples = match w.traffic.take() {
        Some(t) => t.stop().await,
        None => vec![],
    };
    steps::postmortem(&mut story, &w, incident, &o.postmortem).await?;
    steps::timelines(&mut story, &w, &v2, &rollback).await?;
    let bad = steps::failed_share(&mut story, &samples, &release, ended);

    if o.counterfactual {
        let c = counterfactual::run(&services, o.gateways).await?;
        c.compare(o.gateways, &release, bad, &rollback);
    }
    let held = story.finish();
    if o.keep {
        println!(
            "\n--keep: the status page stays at {url}/ and the pager's log at {}; Ctrl-C ends",
            w.dir.join("pager.log").display()
        );
        shutdown.await;
    }
    w.shutdown().await;
    Ok(held)
}
