//! `rampart config`: validate, schema, push, history, diff.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};

use super::release::{follow, print_env};
use super::{print_as, runtime};
use crate::args::{ConfigCommand, Output, Remote};

pub fn config(command: ConfigCommand) -> Result<ExitCode> {
    match command {
        ConfigCommand::Validate { file, output } => validate(&file, output),
        ConfigCommand::Push {
            file,
            message,
            break_glass,
            env,
            follow,
            remote,
        } => push(&file, &message, break_glass, env, follow, &remote),
        ConfigCommand::History { remote } => history(&remote),
        ConfigCommand::Schema => {
            println!("{:#}", rampart_model::json_schema());
            Ok(ExitCode::SUCCESS)
        }
        ConfigCommand::Diff { old, new, remote } => diff(&old, &new, &remote),
    }
}

/// Checks a document; every error with its path, and a failing exit code if any.
fn validate(file: &PathBuf, output: Output) -> Result<ExitCode> {
    let text = read(file)?;
    let result = rampart_model::load(&text);
    match (output, result) {
        (Output::Json, Ok(c)) => {
            let doc = serde_json::json!({ "valid": true, "version": c.version(), "warnings": c.warnings });
            println!("{doc:#}");
            Ok(ExitCode::SUCCESS)
        }
        (Output::Json, Err(e)) => {
            let errors: Vec<serde_json::Value> = match &e {
                rampart_model::LoadError::Parse(m) => {
                    vec![serde_json::json!({ "path": "", "message": m })]
                }
                rampart_model::LoadError::Invalid(list) => list
                    .0
                    .iter()
                    .map(|e| serde_json::json!({ "path": e.path, "message": e.message }))
                    .collect(),
            };
            println!(
                "{:#}",
                serde_json::json!({ "valid": false, "errors": errors })
            );
            Ok(ExitCode::FAILURE)
        }
        (Output::Text, Ok(c)) => {
            for w in &c.warnings {
                println!("warning: {w}");
            }
            println!("{}: valid, version {}", file.display(), c.version());
            Ok(ExitCode::SUCCESS)
        }
        (Output::Text, Err(e)) => {
            eprint!("{}: {e}", file.display());
            if !e.to_string().ends_with('\n') {
                eprintln!();
            }
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Stores a document as a version; with `env`, deploys it there (and with `follow_release`,
/// shows the release until it ends).
fn push(
    file: &PathBuf,
    message: &str,
    break_glass: Option<String>,
    env: Option<String>,
    follow_release: bool,
    remote: &Remote,
) -> Result<ExitCode> {
    let text = read(file)?;
    let pushed = runtime()?.block_on(remote.client().push_with(&text, message, break_glass))?;
    for o in &pushed.overridden {
        println!("overridden by break-glass: {o}");
    }
    print_as(remote.output, &pushed, || {
        for w in &pushed.warnings {
            println!("warning: {w}");
        }
        let verb = if pushed.created {
            "created"
        } else {
            "already stored as"
        };
        println!("{verb} version {}", pushed.version.id);
        Ok(())
    })?;
    let Some(env) = env else {
        return Ok(ExitCode::SUCCESS);
    };
    let rt = runtime()?;
    let status = rt.block_on(remote.client().deploy(&env, &pushed.version.id, None))?;
    if !follow_release {
        return print_env(remote, &status);
    }
    let release = rt
        .block_on(remote.client().releases())?
        .into_iter()
        .find(|r| r.version == pushed.version.id && r.environment == env);
    match release {
        Some(r) => {
            let end = rt.block_on(follow(remote, Some(r.id)))?;
            Ok(if end.as_deref() == Some("rolled_back") {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        // No release: the version went everywhere at once (a first version).
        None => print_env(remote, &status),
    }
}

fn history(remote: &Remote) -> Result<ExitCode> {
    let versions = runtime()?.block_on(remote.client().versions())?;
    print_as(remote.output, &versions, || {
        for v in &versions {
            println!(
                "{}  {}  {:<12} {}",
                v.id.short(),
                v.created_at,
                v.author,
                v.message
            );
        }
        Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

fn diff(old: &PathBuf, new: &PathBuf, remote: &Remote) -> Result<ExitCode> {
    let output = remote.output;
    let (a, b) = (document_of(old, remote)?, document_of(new, remote)?);
    let changes = rampart_model::diff(&a, &b);
    if output == Output::Json {
        println!("{:#}", serde_json::to_value(&changes)?);
    } else if changes.is_empty() {
        println!("no changes");
    } else {
        for c in &changes {
            println!("{c}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A document from a file, or else from the control plane by version id (or unique prefix).
fn document_of(arg: &PathBuf, remote: &Remote) -> Result<rampart_model::Document> {
    let text = if arg.exists() {
        read(arg)?
    } else {
        let text = arg.to_string_lossy();
        runtime()?.block_on(async {
            let client = remote.client();
            let id = super::version_ref::resolve(&client, &text)
                .await
                .map_err(|e| anyhow::anyhow!("{text}: no such file, and {e:#}"))?;
            Ok::<_, anyhow::Error>(client.version(id.as_str()).await?.document)
        })?
    };
    rampart_model::parse_document(&text).with_context(|| format!("parsing {}", arg.display()))
}

// The config subcommands are synchronous: no runtime thread to block.
#[allow(clippy::disallowed_methods)]
fn read(path: &PathBuf) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading config file {}", path.display()))
}
