//! `rampart policy`: each environment's rollout policy, and `validate` for a file alone. A file is checked here first (every
//! problem with its path, before anything is sent), and again by the control plane.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};

use super::{print_as, print_list, runtime};
use crate::args::PolicyCommand;

pub fn policy(command: PolicyCommand) -> Result<ExitCode> {
    match command {
        PolicyCommand::Show { env, remote } => {
            let policy = runtime()?.block_on(remote.client().policy(&env))?;
            print_as(remote.output, &policy, || {
                if let Some(r) = policy.revision {
                    println!(
                        "# {env} policy r{r}, set by {} at {}",
                        policy.actor.as_deref().unwrap_or("?"),
                        policy.created_at.as_deref().unwrap_or("?")
                    );
                }
                print!("{}", with_newline(&policy.text));
                Ok(())
            })?;
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Set { env, file, remote } => {
            let text = read(&file)?;
            if let Err(e) = rampart_rollout::policy::load(&text) {
                bail!("{}: {e}", file.display());
            }
            let stored = runtime()?.block_on(remote.client().set_policy(&env, &text))?;
            print_as(remote.output, &stored, || {
                println!(
                    "stored {env} policy r{}; new releases in {env} follow it",
                    stored.revision.unwrap_or_default()
                );
                for c in &stored.changes {
                    println!("  {c}");
                }
                Ok(())
            })?;
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Diff { env, file, remote } => {
            let text = read(&file)?;
            let new = rampart_rollout::policy::load(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            let current = runtime()?.block_on(remote.client().policy(&env))?;
            let old = rampart_rollout::policy::load(&current.text)
                .map_err(|e| anyhow::anyhow!("{env}'s policy in force: {e}"))?;
            let changes = rampart_rollout::policy::changes(&old, &new);
            print_as(remote.output, &changes, || {
                if changes.is_empty() {
                    println!("no changes");
                }
                for c in &changes {
                    println!("{c}");
                }
                Ok(())
            })?;
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::History { env, remote } => {
            let revisions = runtime()?.block_on(remote.client().policy_history(&env))?;
            let none = format!("{env} has no stored policy; it follows the default");
            print_list(remote.output, &revisions, &none, |p| {
                let mut line = format!(
                    "r{:<3} {}  {}",
                    p.revision.unwrap_or_default(),
                    p.created_at.as_deref().unwrap_or(""),
                    p.actor.as_deref().unwrap_or("")
                );
                for c in &p.changes {
                    line.push_str(&format!("\n       {c}"));
                }
                line
            })
        }
        PolicyCommand::Validate { file } => match rampart_rollout::policy::load(&read(&file)?) {
            Ok(plan) => {
                println!("valid: {} wave(s)", plan.waves.len());
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                eprintln!("{}: {e}", file.display());
                Ok(ExitCode::FAILURE)
            }
        },
        PolicyCommand::Schema => {
            println!("{:#}", rampart_rollout::policy::json_schema());
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn with_newline(text: &str) -> String {
    if text.ends_with('\n') {
        text.to_owned()
    } else {
        format!("{text}\n")
    }
}

// The policy subcommands read their file before any runtime starts.
#[allow(clippy::disallowed_methods)]
fn read(path: &Path) -> Result<String> {
    if path == Path::new("-") {
        return std::io::read_to_string(std::io::stdin()).context("reading the policy from stdin");
    }
    std::fs::read_to_string(path).with_context(|| format!("reading policy file {}", path.display()))
}
