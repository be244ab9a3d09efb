//! `rampart token`: API tokens, created and revoked by approvers.

use std::process::ExitCode;

use anyhow::{Result, bail};
use rampart_api::{Role, TokenSpec};

use super::{print_list, runtime};
use crate::args::TokenCommand;

fn role(name: &str) -> Result<Role> {
    Ok(match name {
        "agent" => Role::Agent,
        "viewer" => Role::Viewer,
        "operator" => Role::Operator,
        "approver" => Role::Approver,
        other => bail!("--role {other:?}: expected agent, viewer, operator or approver"),
    })
}

pub fn token(command: TokenCommand) -> Result<ExitCode> {
    let rt = runtime()?;
    match command {
        TokenCommand::Create {
            name,
            role: r,
            environments,
            remote,
        } => {
            let spec = TokenSpec {
                name,
                role: role(&r)?,
                environments,
            };
            let created = rt.block_on(remote.client().create_token(&spec))?;
            eprintln!(
                "token {} ({r}) created; its secret is shown this once:",
                created.info.name
            );
            println!("{}", created.token);
            Ok(ExitCode::SUCCESS)
        }
        TokenCommand::List { remote } => {
            let list = rt.block_on(remote.client().tokens())?;
            print_list(remote.output, &list, "no tokens", |t| {
                let state = match (&t.revoked_at, t.bootstrap) {
                    (Some(at), _) => format!("revoked {at}"),
                    (None, true) => "bootstrap (tokens.json)".to_owned(),
                    (None, false) => format!(
                        "created {} by {}",
                        t.created_at.as_deref().unwrap_or("?"),
                        t.created_by.as_deref().unwrap_or("?")
                    ),
                };
                let envs = if t.environments.is_empty() {
                    String::new()
                } else {
                    format!(" [{}]", t.environments.join(", "))
                };
                format!(
                    "{:<20} {:<9}{envs}  {state}",
                    t.name,
                    format!("{:?}", t.role).to_lowercase()
                )
            })
        }
        TokenCommand::Revoke { name, remote } => {
            rt.block_on(remote.client().revoke_token(&name))?;
            println!("token {name} revoked");
            Ok(ExitCode::SUCCESS)
        }
    }
}
