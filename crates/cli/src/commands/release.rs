//! Moving versions through environments: `deploy`, `rollback`, `rollout`, `approvals`,
//! `approve`, `fleet` (environments and their instances; `fleet restart`).

use std::process::ExitCode;

use anyhow::{Context, Result};

use super::version_ref::resolve;
use super::{print_as, runtime};
use crate::args::{FleetCommand, Output, Remote, RolloutCommand};

pub fn deploy(
    remote: Remote,
    env: String,
    version: String,
    break_glass: Option<String>,
) -> Result<ExitCode> {
    let client = remote.client();
    let status = runtime()?.block_on(async {
        let version = resolve(&client, &version).await?;
        Ok::<_, anyhow::Error>(client.deploy(&env, &version, break_glass).await?)
    })?;
    print_env(&remote, &status)
}

pub fn rollback(remote: Remote, env: String, to: Option<String>) -> Result<ExitCode> {
    let client = remote.client();
    let status = runtime()?.block_on(async {
        let to = match to {
            Some(text) => Some(resolve(&client, &text).await?),
            None => None,
        };
        Ok::<_, anyhow::Error>(client.rollback(&env, to).await?)
    })?;
    print_env(&remote, &status)
}

pub fn rollout(command: RolloutCommand) -> Result<ExitCode> {
    let (remote, list) = match command {
        RolloutCommand::Status {
            remote,
            watch: true,
        } => {
            let ended = runtime()?.block_on(follow(&remote, None))?;
            return Ok(if ended.as_deref() == Some("rolled_back") {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            });
        }
        RolloutCommand::Status {
            remote,
            watch: false,
        } => {
            let list = runtime()?.block_on(remote.client().releases())?;
            (remote, list)
        }
        RolloutCommand::Pause { id, remote } => {
            let r = runtime()?.block_on(remote.client().release_action(id, "pause"))?;
            (remote, vec![r])
        }
        RolloutCommand::Resume { id, remote } => {
            let r = runtime()?.block_on(remote.client().release_action(id, "resume"))?;
            (remote, vec![r])
        }
        RolloutCommand::Picture { id, out, remote } => {
            let svg = runtime()?.block_on(remote.client().release_picture(id))?;
            match out {
                Some(path) => {
                    std::fs::write(&path, svg)
                        .with_context(|| format!("writing {}", path.display()))?;
                    eprintln!("release {id}: picture written to {}", path.display());
                }
                None => println!("{svg}"),
            }
            return Ok(ExitCode::SUCCESS);
        }
        RolloutCommand::Promote { id, reason, remote } => {
            let client = remote.client();
            let r = runtime()?.block_on(client.release_judgement(id, "promote", &reason))?;
            (remote, vec![r])
        }
        RolloutCommand::Skip { id, reason, remote } => {
            let client = remote.client();
            let r = runtime()?.block_on(client.release_judgement(id, "skip", &reason))?;
            (remote, vec![r])
        }
        RolloutCommand::Abort { id, remote } => {
            let r = runtime()?.block_on(remote.client().release_action(id, "abort"))?;
            (remote, vec![r])
        }
    };
    print_as(remote.output, &list, || {
        print_releases(&list);
        Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

pub fn approvals(remote: Remote) -> Result<ExitCode> {
    let list = runtime()?.block_on(remote.client().approvals())?;
    print_as(remote.output, &list, || {
        for a in &list {
            let state = a
                .approved_by
                .as_deref()
                .map_or("pending".to_owned(), |by| format!("approved by {by}"));
            println!(
                "#{:<4} {:<12} {}  {}  requested by {}  {}",
                a.id,
                a.environment,
                a.version.short(),
                a.sections.join(","),
                a.requested_by,
                state
            );
        }
        Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

pub fn approve(remote: Remote, id: i64) -> Result<ExitCode> {
    let status = runtime()?.block_on(remote.client().approve(id))?;
    print_env(&remote, &status)
}

/// Environments with their versions and instances, or (with a subcommand) a restart.
pub fn fleet(command: Option<FleetCommand>, remote: Remote) -> Result<ExitCode> {
    match command {
        Some(command) => restart(command),
        None => list(remote),
    }
}

fn list(remote: Remote) -> Result<ExitCode> {
    let client = remote.client();
    let (envs, replicas) =
        runtime()?.block_on(async { tokio::join!(client.environments(), client.replicas()) });
    let envs = envs?;
    print_as(remote.output, &envs, || {
        // Several replicas: who leads, and when each was last heard of.
        if let Ok(r) = &replicas
            && !r.replicas.is_empty()
        {
            let seen: Vec<String> = r
                .replicas
                .iter()
                .map(|x| format!("{} ({} ms ago)", x.name, x.seen_ago_ms))
                .collect();
            println!(
                "control plane: leader {} (epoch {}); replicas {}",
                r.leader.as_deref().unwrap_or("none"),
                r.epoch,
                seen.join(", ")
            );
        }
        for e in &envs {
            print_env(&remote, e)?;
        }
        Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

fn restart(command: FleetCommand) -> Result<ExitCode> {
    let FleetCommand::Restart {
        env,
        batch,
        status,
        remote,
    } = command;
    let rt = runtime()?;
    let client = remote.client();
    let mut s = if status {
        rt.block_on(client.restart_status(&env))?
    } else {
        rt.block_on(client.restart(&env, &batch))?
    };
    if remote.output == Output::Json {
        println!("{:#}", serde_json::to_value(&s)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "restarting {env}: {} gateways in {} batches of up to {}",
        s.batches.iter().map(Vec::len).sum::<usize>(),
        s.batches.len(),
        s.batch_size
    );
    let mut last = String::new();
    loop {
        let line = draw_restart(&s);
        if line != last {
            println!("{line}");
            last = line;
        }
        if s.state != "running" || status {
            break;
        }
        rt.block_on(tokio::time::sleep(std::time::Duration::from_millis(500)));
        s = rt.block_on(client.restart_status(&env))?;
    }
    match s.state.as_str() {
        "succeeded" | "running" => Ok(ExitCode::SUCCESS),
        _ => {
            eprintln!(
                "restart failed: {}",
                s.reason.as_deref().unwrap_or("no reason recorded")
            );
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Draws a restart's progress: one bar over all gateways, then the batch being restarted.
fn draw_restart(s: &rampart_api::RestartStatus) -> String {
    let total: usize = s.batches.iter().map(Vec::len).sum();
    let done = s.restarted.len();
    let width = 30;
    let filled = (done * width).checked_div(total).unwrap_or(0);
    let batch = s
        .batches
        .get(s.current)
        .map(|b| {
            format!(
                "batch {}/{}: {}",
                s.current + 1,
                s.batches.len(),
                b.join(", ")
            )
        })
        .unwrap_or_default();
    format!(
        "[{}{}] {done}/{total} restarted  {}  {batch}",
        "█".repeat(filled),
        "░".repeat(width - filled),
        s.state
    )
}

pub fn print_env(remote: &Remote, e: &rampart_api::EnvironmentStatus) -> Result<ExitCode> {
    if remote.output == Output::Json {
        println!("{:#}", serde_json::to_value(e)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{}  desired {}  last-known-good {}  ({} instances)",
        e.name,
        short(e.desired.as_ref()),
        short(e.last_known_good.as_ref()),
        e.instances.len()
    );
    for i in &e.instances {
        let result = match &i.last_result {
            Some(rampart_api::ApplyResult::Applied { .. }) => "applied".to_owned(),
            Some(rampart_api::ApplyResult::Rejected { error, .. }) => format!("rejected: {error}"),
            Some(rampart_api::ApplyResult::Reverted { reason, .. }) => {
                format!("reverted: {reason}")
            }
            None => "-".into(),
        };
        // Expected against applied: how long an instance has run something else.
        let behind = match (i.behind_ms, &i.expected) {
            (Some(ms), Some(v)) => format!("  behind {} for {ms} ms", v.short()),
            _ => String::new(),
        };
        let via = i
            .replica
            .as_deref()
            .map(|r| format!("  via {r}"))
            .unwrap_or_default();
        println!(
            "  {:<24} {:<8} applied {}  {}  seen {} ms ago{via}{behind}",
            i.id,
            i.zone,
            short(i.applied.as_ref()),
            result,
            i.last_seen_ms
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn print_releases(list: &[rampart_api::ReleaseStatus]) {
    for r in list {
        let bar: String = (0..r.waves)
            .map(|w| {
                if w < r.wave || r.state == "succeeded" {
                    '#'
                } else if w == r.wave {
                    '>'
                } else {
                    '.'
                }
            })
            .collect();
        println!(
            "#{:<4} {:<12} {} -> {}  [{bar}] wave {}/{}  {:<11} cohort {}",
            r.id,
            r.environment,
            r.previous.short(),
            r.version.short(),
            (r.wave + 1).min(r.waves),
            r.waves,
            r.state,
            r.cohort.join(",")
        );
        if !r.policy.is_empty() && matches!(r.state.as_str(), "pending" | "rolling" | "paused") {
            println!("      policy: {}; {}", r.policy, r.step);
        } else if !r.policy.is_empty() {
            println!("      policy: {}", r.policy);
        }
        if let Some(g) = &r.gate {
            println!("      gate: {g}");
        }
        if let Some(why) = &r.reason {
            println!("      {why}");
        }
    }
}

/// Redraws release progress every second until `id` (or every release) has ended; returns the
/// final state of `id` (or of the newest release).
pub async fn follow(remote: &Remote, id: Option<i64>) -> Result<Option<String>> {
    let client = remote.client();
    loop {
        let list = client.releases().await?;
        let shown: Vec<_> = match id {
            Some(id) => list.into_iter().filter(|r| r.id == id).collect(),
            None => list.into_iter().take(5).collect(),
        };
        print!("\x1b[2J\x1b[H");
        print_releases(&shown);
        let running = shown
            .iter()
            .any(|r| matches!(r.state.as_str(), "pending" | "rolling" | "paused"));
        if !running {
            return Ok(shown.first().map(|r| r.state.clone()));
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

/// The first 12 characters of a version id, or "-" for none.
fn short(v: Option<&rampart_api::VersionId>) -> &str {
    v.map_or("-", |v| v.short())
}
