//! `rampart incident|postmortem|alerts|channel|component`: operations commands.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;
use rampart_api::{
    ActionItemSpec, ChannelKind, ChannelSpec, ComponentSpec, Impact, Incident, IncidentChange,
    IncidentStatus, MaintenanceSpec, NewIncident, Severity, SubscriberKind, SubscriberSpec,
};

use crate::{Output, Remote, runtime};

#[derive(Subcommand)]
pub enum IncidentCommand {
    /// Incidents, newest first.
    List {
        #[command(flatten)]
        remote: Remote,
    },
    /// One incident with its updates, alerts, impact and action items.
    Show {
        id: i64,
        #[command(flatten)]
        remote: Remote,
    },
    /// Open an incident by hand.
    Open {
        title: String,
        #[arg(long, default_value = "")]
        message: String,
        #[arg(long, value_parser = parse_impact, default_value = "minor")]
        impact: Impact,
        /// Affected component (repeatable).
        #[arg(long = "component")]
        components: Vec<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Post an update: a status change and/or a message; edit the narrative.
    Update {
        id: i64,
        #[arg(long, value_parser = parse_status)]
        status: Option<IncidentStatus>,
        #[arg(long)]
        message: Option<String>,
        #[arg(long, value_parser = parse_impact)]
        impact: Option<Impact>,
        /// The postmortem's narrative summary.
        #[arg(long)]
        summary: Option<String>,
        #[arg(long)]
        root_cause: Option<String>,
        #[arg(long)]
        resolution: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Resolve an incident.
    Resolve {
        id: i64,
        #[arg(long, default_value = "Resolved.")]
        message: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Add an action item (corrective or preventive measure), or change one with --item.
    Action {
        id: i64,
        #[arg(long)]
        title: String,
        #[arg(long)]
        owner: String,
        /// open or done
        #[arg(long, default_value = "open")]
        state: String,
        /// Change this item instead of adding one.
        #[arg(long)]
        item: Option<i64>,
        #[command(flatten)]
        remote: Remote,
    },
}

#[derive(Subcommand)]
pub enum ChannelCommand {
    List {
        #[command(flatten)]
        remote: Remote,
    },
    /// Add or replace a channel.
    Set {
        name: String,
        /// pagerduty, webhook, slack or email
        #[arg(long, value_parser = parse_kind)]
        kind: ChannelKind,
        /// Receiver URL; smtp://host:port for email.
        #[arg(long)]
        url: String,
        #[arg(long)]
        routing_key: Option<String>,
        #[arg(long, env = "RAMPART_CHANNEL_SECRET", hide_env_values = true)]
        secret: Option<String>,
        #[arg(long)]
        to: Vec<String>,
        #[arg(long)]
        from: Option<String>,
        /// Also send tickets (pages only by default).
        #[arg(long)]
        tickets: bool,
        #[command(flatten)]
        remote: Remote,
    },
}

#[derive(Subcommand)]
pub enum ComponentCommand {
    List {
        #[command(flatten)]
        remote: Remote,
    },
    /// Add or replace a component: the routes that serve it and its SLO.
    Set {
        name: String,
        #[arg(long, default_value = "")]
        description: String,
        /// Route name (repeatable); none means every route.
        #[arg(long = "route")]
        routes: Vec<String>,
        #[arg(long)]
        environment: Option<String>,
        /// Availability objective in percent.
        #[arg(long, default_value_t = 99.9)]
        slo: f64,
        #[command(flatten)]
        remote: Remote,
    },
}

#[derive(Subcommand)]
pub enum MaintenanceCommand {
    List {
        #[command(flatten)]
        remote: Remote,
    },
    /// Schedule a window: its components show under maintenance and their SLO alerts are
    /// suppressed while it runs.
    Schedule {
        title: String,
        /// Start, RFC 3339 (e.g. 2026-11-25T22:00:00Z).
        #[arg(long)]
        from: String,
        /// End, RFC 3339.
        #[arg(long)]
        until: String,
        /// Component under maintenance (repeatable).
        #[arg(long = "component", required = true)]
        components: Vec<String>,
        #[arg(long, default_value = "")]
        message: String,
        #[command(flatten)]
        remote: Remote,
    },
    Cancel {
        id: i64,
        #[command(flatten)]
        remote: Remote,
    },
}

#[derive(Subcommand)]
pub enum SubscriberCommand {
    List {
        #[command(flatten)]
        remote: Remote,
    },
    /// Add a subscriber, confirmed at once (the public page's form asks for confirmation).
    Add {
        /// An email address, or a webhook URL.
        target: String,
        #[command(flatten)]
        remote: Remote,
    },
}

pub fn maintenance(command: MaintenanceCommand) -> Result<ExitCode> {
    let rt = runtime()?;
    match command {
        MaintenanceCommand::List { remote } => {
            let list = rt.block_on(remote.client().maintenances())?;
            if remote.output == Output::Json {
                println!("{:#}", serde_json::to_value(&list)?);
            } else if list.is_empty() {
                println!("no maintenance windows");
            } else {
                for m in &list {
                    println!(
                        "#{:<4} {:<12} {} → {}  {}  ({})",
                        m.id,
                        m.status,
                        m.spec.scheduled_for,
                        m.spec.scheduled_until,
                        m.spec.title,
                        m.spec.components.join(", ")
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        MaintenanceCommand::Schedule {
            title,
            from,
            until,
            components,
            message,
            remote,
        } => {
            let spec = MaintenanceSpec {
                title,
                body: message,
                components,
                scheduled_for: from,
                scheduled_until: until,
            };
            let m = rt.block_on(remote.client().schedule_maintenance(&spec))?;
            println!("maintenance #{} {} ({})", m.id, m.spec.title, m.status);
            Ok(ExitCode::SUCCESS)
        }
        MaintenanceCommand::Cancel { id, remote } => {
            rt.block_on(remote.client().cancel_maintenance(id))?;
            println!("maintenance #{id} cancelled");
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub fn subscriber(command: SubscriberCommand) -> Result<ExitCode> {
    let rt = runtime()?;
    match command {
        SubscriberCommand::List { remote } => {
            let list = rt.block_on(remote.client().subscribers())?;
            if remote.output == Output::Json {
                println!("{:#}", serde_json::to_value(&list)?);
            } else {
                for s in &list {
                    let state = match (s.unsubscribed, s.confirmed) {
                        (true, _) => "unsubscribed",
                        (false, true) => "confirmed",
                        (false, false) => "unconfirmed",
                    };
                    println!(
                        "#{:<4} {:<8} {:<13} {}",
                        s.id,
                        format!("{:?}", s.kind).to_lowercase(),
                        state,
                        s.target
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        SubscriberCommand::Add { target, remote } => {
            let kind = if target.contains("://") {
                SubscriberKind::Webhook
            } else {
                SubscriberKind::Email
            };
            let s = rt.block_on(
                remote
                    .client()
                    .add_subscriber(&SubscriberSpec { kind, target }),
            )?;
            println!("subscriber #{} {}", s.id, s.target);
            if let Some(secret) = s.secret {
                println!(
                    "signing secret (verify X-Rampart-Signature with it; shown once): {secret}"
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[derive(Subcommand)]
pub enum FleetCommand {
    /// Restart an environment's gateways batch by batch: each batch drains (readiness says
    /// "draining" first), restarts, and must be back and healthy before the next starts.
    Restart {
        #[arg(long)]
        env: String,
        /// Gateways per batch: a count or a share of the live ones.
        #[arg(long, default_value = "20%")]
        batch: String,
        /// Only show how the current (or last) restart is doing.
        #[arg(long)]
        status: bool,
        #[command(flatten)]
        remote: Remote,
    },
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

pub fn fleet(command: FleetCommand) -> Result<ExitCode> {
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

fn parse_impact(s: &str) -> Result<Impact, String> {
    serde_json::from_value(serde_json::Value::String(s.into()))
        .map_err(|_| format!("{s:?}: expected none, minor, major or critical"))
}

fn parse_status(s: &str) -> Result<IncidentStatus, String> {
    IncidentStatus::parse(s)
        .ok_or_else(|| format!("{s:?}: expected investigating, identified, monitoring or resolved"))
}

fn parse_kind(s: &str) -> Result<ChannelKind, String> {
    serde_json::from_value(serde_json::Value::String(s.into()))
        .map_err(|_| format!("{s:?}: expected pagerduty, webhook, slack or email"))
}

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

/// `rampart postmortem ID`: writes it to stdout or to `out`.
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

pub fn channel(command: ChannelCommand) -> Result<ExitCode> {
    let rt = runtime()?;
    match command {
        ChannelCommand::List { remote } => {
            let list = rt.block_on(remote.client().channels())?;
            if remote.output == Output::Json {
                println!("{:#}", serde_json::to_value(&list)?);
            } else {
                for c in &list {
                    println!(
                        "{:<16} {:<10} {}  pending {}  failed {}",
                        c.name,
                        format!("{:?}", c.spec.kind).to_lowercase(),
                        c.spec.url,
                        c.pending,
                        c.failed
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        ChannelCommand::Set {
            name,
            kind,
            url,
            routing_key,
            secret,
            to,
            from,
            tickets,
            remote,
        } => {
            let spec = ChannelSpec {
                kind,
                url,
                routing_key,
                secret,
                to,
                from,
                severities: if tickets {
                    vec![Severity::Page, Severity::Ticket]
                } else {
                    vec![]
                },
            };
            let c = rt.block_on(remote.client().put_channel(&name, &spec))?;
            println!("channel {} set ({})", c.name, c.spec.url);
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub fn component(command: ComponentCommand) -> Result<ExitCode> {
    let rt = runtime()?;
    match command {
        ComponentCommand::List { remote } => {
            let list = rt.block_on(remote.client().components())?;
            if remote.output == Output::Json {
                println!("{:#}", serde_json::to_value(&list)?);
            } else {
                for c in &list {
                    println!(
                        "{:<24} {:<21} SLO {}%  routes: {}",
                        c.name,
                        c.status,
                        c.spec.slo,
                        if c.spec.routes.is_empty() {
                            "all".to_owned()
                        } else {
                            c.spec.routes.join(", ")
                        }
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        ComponentCommand::Set {
            name,
            description,
            routes,
            environment,
            slo,
            remote,
        } => {
            let spec = ComponentSpec {
                description,
                routes,
                environment,
                slo,
            };
            let c = rt.block_on(remote.client().put_component(&name, &spec))?;
            println!("component {} set ({})", c.name, c.status);
            Ok(ExitCode::SUCCESS)
        }
    }
}
