//! Incidents by hand: `incident`, `postmortem`, `alerts`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use rampart_api::{ActionItemSpec, Incident, IncidentChange, IncidentStatus, NewIncident};

use super::runtime;
use crate::args::{IncidentCommand, Output, Remote};

fn print_incident(remote: &Remote, i: &Incident) -> Result<ExitCode> {
    if remote.output == Output::Json {
        println!("{:#}", serde_json::to_value(i)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "incident {}  {}  [{} · impact {}]",
        i.id,
        i.title,
        i.status.as_str(),
        i.impact.as_str()
    );
    println!(
        "  opened {}{}",
        i.opened_at,
        i.resolved_at
            .as_deref()
            .map(|r| format!(", resolved {r}"))
            .unwrap_or_default()
    );
    if !i.components.is_empty() {
        println!("  components: {}", i.components.join(", "));
    }
    let share = if i.traffic.total == 0 {
        0.0
    } else {
        i.traffic.failed as f64 * 100.0 / i.traffic.total as f64
    };
    println!(
        "  impact: {} failed of {} requests ({share:.3} %)",
        i.traffic.failed, i.traffic.total
    );
    for u in &i.updates {
        println!(
            "  {}  {:<13} {}  ({})",
            u.at,
            u.status.as_str(),
            u.body,
            u.actor
        );
    }
    for a in &i.action_items {
        println!("  action #{} [{}] {} — {}", a.id, a.state, a.title, a.owner);
    }
    Ok(ExitCode::SUCCESS)
}

pub fn incident(command: IncidentCommand) -> Result<ExitCode> {
    let rt = runtime()?;
    match command {
        IncidentCommand::List { remote } => {
            let list = rt.block_on(remote.client().incidents())?;
            if remote.output == Output::Json {
                println!("{:#}", serde_json::to_value(&list)?);
            } else if list.is_empty() {
                println!("no incidents");
            } else {
                for i in &list {
                    println!(
                        "#{:<4} {:<13} {:<8} {}  {}",
                        i.id,
                        i.status.as_str(),
                        i.impact.as_str(),
                        i.opened_at,
                        i.title
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        IncidentCommand::Show { id, remote } => {
            let i = rt.block_on(remote.client().incident(id))?;
            print_incident(&remote, &i)
        }
        IncidentCommand::Open {
            title,
            message,
            impact,
            components,
            remote,
        } => {
            let new = NewIncident {
                title,
                body: message,
                impact,
                components,
                environment: None,
            };
            let i = rt.block_on(remote.client().open_incident(&new))?;
            print_incident(&remote, &i)
        }
        IncidentCommand::Update {
            id,
            status,
            message,
            impact,
            summary,
            root_cause,
            resolution,
            remote,
        } => {
            let change = IncidentChange {
                status,
                body: message,
                impact,
                summary,
                root_cause,
                resolution,
            };
            let i = rt.block_on(remote.client().update_incident(id, &change))?;
            print_incident(&remote, &i)
        }
        IncidentCommand::Resolve {
            id,
            message,
            remote,
        } => {
            let change = IncidentChange {
                status: Some(IncidentStatus::Resolved),
                body: Some(message),
                ..Default::default()
            };
            let i = rt.block_on(remote.client().update_incident(id, &change))?;
            print_incident(&remote, &i)
        }
        IncidentCommand::Action {
            id,
            title,
            owner,
            state,
            item,
            remote,
        } => {
            let spec = ActionItemSpec {
                title,
                owner,
                state,
            };
            let client = remote.client();
            let i = match item {
                Some(item) => rt.block_on(client.set_action_item(id, item, &spec))?,
                None => rt.block_on(client.add_action_item(id, &spec))?,
            };
            print_incident(&remote, &i)
        }
    }
}

pub fn postmortem(
    id: i64,
    format: &str,
    out: Option<PathBuf>,
    remote: &Remote,
) -> Result<ExitCode> {
    let pm = runtime()?.block_on(remote.client().postmortem(id, format))?;
    match out {
        Some(path) => {
            std::fs::write(&path, pm.text)
                .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
            eprintln!("postmortem of incident {id} written to {}", path.display());
        }
        None => print!("{}", pm.text),
    }
    Ok(ExitCode::SUCCESS)
}

pub fn alerts(all: bool, remote: &Remote) -> Result<ExitCode> {
    let list = runtime()?.block_on(remote.client().alerts(!all))?;
    if remote.output == Output::Json {
        println!("{:#}", serde_json::to_value(&list)?);
    } else if list.is_empty() {
        println!("no {}alerts", if all { "" } else { "active " });
    } else {
        for a in &list {
            println!(
                "#{:<4} {:<6} {:<9} {}  {}{}",
                a.id,
                a.severity.as_str(),
                if a.resolved_at.is_some() {
                    "resolved"
                } else {
                    "firing"
                },
                a.fired_at,
                a.summary,
                a.incident
                    .map(|i| format!("  (incident {i})"))
                    .unwrap_or_default()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
