//! Carries out a parsed command line: one module per command group, each calling the library
//! crates (through the API client for the control plane) and printing the result.

mod config;
mod demo;
mod incident;
mod policy;
mod release;
mod serve;
mod status_page;
mod tokens;
mod version_ref;

use std::process::ExitCode;

use anyhow::{Context, Result};

use crate::args::{Command, Output};

pub fn run(command: Command) -> Result<ExitCode> {
    match command {
        Command::Gateway(a) => serve::gateway(a),
        Command::Control(a) => serve::control(*a),
        Command::Up(a) => demo::up(a),
        Command::Drill(a) => demo::drill(a),
        Command::Testkit { command } => demo::testkit(command),
        Command::Config { command } => config::config(command),
        Command::Deploy {
            remote,
            env,
            version,
            break_glass,
        } => release::deploy(remote, env, version, break_glass),
        Command::Rollback { remote, env, to } => release::rollback(remote, env, to),
        Command::Rollout { command } => release::rollout(command),
        Command::Policy { command } => policy::policy(command),
        Command::Approvals { remote } => release::approvals(remote),
        Command::Approve { remote, id } => release::approve(remote, id),
        Command::Fleet { command, remote } => release::fleet(command, remote),
        Command::Incident { command } => incident::incident(command),
        Command::Postmortem {
            id,
            format,
            out,
            remote,
        } => incident::postmortem(id, &format, out, &remote),
        Command::Alerts { all, remote } => incident::alerts(all, &remote),
        Command::Channel { command } => status_page::channel(command),
        Command::Component { command } => status_page::component(command),
        Command::Maintenance { command } => status_page::maintenance(command),
        Command::Subscriber { command } => status_page::subscriber(command),
        Command::Token { command } => tokens::token(command),
    }
}

pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Prints `value` as JSON with `--output json`, else as `text` writes it.
/// Prints a list: as JSON with `--output json`; otherwise `line` of each item, or `empty` when
/// there is none.
pub fn print_list<T: serde::Serialize>(
    output: Output,
    items: &[T],
    empty: &str,
    line: impl Fn(&T) -> String,
) -> Result<ExitCode> {
    print_as(output, &items, || {
        if items.is_empty() {
            println!("{empty}");
        }
        for item in items {
            println!("{}", line(item));
        }
        Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

pub fn print_as<T: serde::Serialize>(
    output: Output,
    value: &T,
    text: impl FnOnce() -> Result<()>,
) -> Result<()> {
    if output == Output::Json {
        println!("{:#}", serde_json::to_value(value)?);
        Ok(())
    } else {
        text()
    }
}
