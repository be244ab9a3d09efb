//! The status page and where notifications go: `channel`, `component`, `maintenance`,
//! `subscriber`.

use std::process::ExitCode;

use anyhow::Result;
use rampart_api::{
    ChannelSpec, ComponentSpec, MaintenanceSpec, Severity, SubscriberKind, SubscriberSpec,
};

use super::{print_list, runtime};
use crate::args::{ChannelCommand, ComponentCommand, MaintenanceCommand, SubscriberCommand};

pub fn channel(command: ChannelCommand) -> Result<ExitCode> {
    let rt = runtime()?;
    match command {
        ChannelCommand::List { remote } => {
            let list = rt.block_on(remote.client().channels())?;
            print_list(remote.output, &list, "no channels", |c| {
                format!(
                    "{:<16} {:<10} {}  pending {}  failed {}",
                    c.name,
                    format!("{:?}", c.spec.kind).to_lowercase(),
                    c.spec.url,
                    c.pending,
                    c.failed
                )
            })
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
            print_list(remote.output, &list, "no components", |c| {
                format!(
                    "{:<24} {:<21} SLO {}%  routes: {}",
                    c.name,
                    c.status,
                    c.spec.slo,
                    if c.spec.routes.is_empty() {
                        "all".to_owned()
                    } else {
                        c.spec.routes.join(", ")
                    }
                )
            })
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

pub fn maintenance(command: MaintenanceCommand) -> Result<ExitCode> {
    let rt = runtime()?;
    match command {
        MaintenanceCommand::List { remote } => {
            let list = rt.block_on(remote.client().maintenances())?;
            print_list(remote.output, &list, "no maintenance windows", |m| {
                format!(
                    "#{:<4} {:<12} {} → {}  {}  ({})",
                    m.id,
                    m.status,
                    m.spec.scheduled_for,
                    m.spec.scheduled_until,
                    m.spec.title,
                    m.spec.components.join(", ")
                )
            })
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
            print_list(remote.output, &list, "no subscribers", |s| {
                let state = match (s.unsubscribed, s.confirmed) {
                    (true, _) => "unsubscribed",
                    (false, true) => "confirmed",
                    (false, false) => "unconfirmed",
                };
                format!(
                    "#{:<4} {:<8} {:<13} {}",
                    s.id,
                    format!("{:?}", s.kind).to_lowercase(),
                    state,
                    s.target
                )
            })
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
