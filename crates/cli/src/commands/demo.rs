//! The showcases and their servers: `up` (everything on one machine), `drill` (the seed outage
//! replayed), `testkit` (the demo's servers one at a time).

use std::process::ExitCode;

use anyhow::{Context, Result};

use super::{runtime, shutdown_signal};
use crate::args::{DrillArgs, TestkitCommand, UpArgs};
use crate::{drill, up};

pub fn up(a: UpArgs) -> Result<ExitCode> {
    let opts = up::UpOptions {
        data: a.data,
        control: a.control,
        gateway: a.gateway,
        testing_gateway: a.testing_gateway,
        backend: a.backend,
        auth: a.auth,
    };
    runtime()?.block_on(up::run(opts, shutdown_signal()))?;
    Ok(ExitCode::SUCCESS)
}

/// Runs the drill; its exit code says whether every defence held. Logging is set up by `main`
/// (see [`crate::logging`]): to `a.log`, or to standard error with `--verbose`.
pub fn drill(a: DrillArgs) -> Result<ExitCode> {
    let held = runtime()?.block_on(drill::run(
        drill::DrillOptions {
            keep: a.keep,
            counterfactual: a.counterfactual,
            postmortem: a.postmortem,
            gateways: usize::from(a.gateways),
            log: (!a.verbose).then_some(a.log),
            replicas: a.replicas,
        },
        shutdown_signal(),
    ))?;
    Ok(if held {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub fn testkit(command: TestkitCommand) -> Result<ExitCode> {
    runtime()?.block_on(async {
        // Each server runs until Ctrl-C; dropping it stops it.
        let _server: Box<dyn std::any::Any> = match command {
            TestkitCommand::Echo { listen, name } => {
                let server = rampart_demo::EchoServer::start_on(listen, &name)
                    .await
                    .with_context(|| format!("starting echo backend on {listen}"))?;
                println!("echo backend {name:?} listening on http://{}", server.addr);
                Box::new(server)
            }
            TestkitCommand::Auth {
                listen,
                issuer,
                audience,
            } => {
                let server = rampart_demo::auth::AuthServer::start_on(listen)
                    .await
                    .with_context(|| format!("starting auth server on {listen}"))?;
                let day = std::time::Duration::from_secs(86_400);
                let claims = serde_json::json!({
                    "sub": "testkit-user", "scope": "read write", "iss": issuer, "aud": audience,
                    "exp": rampart_demo::auth::now_secs() + 86_400,
                });
                println!("auth server listening on http://{}", server.addr);
                println!("introspection=http://{}/introspect", server.addr);
                println!("jwks=http://{}/.well-known/jwks.json", server.addr);
                println!(
                    "opaque={}",
                    server.mint_opaque("testkit-user", "read write", day)
                );
                println!("jwt={}", server.mint_jwt(&claims));
                Box::new(server)
            }
            TestkitCommand::BlackholeDns { listen } => {
                let dns = rampart_demo::dns::BlackHoleDns::start_on(listen)
                    .await
                    .with_context(|| format!("starting black-hole DNS on {listen}"))?;
                println!(
                    "black-hole DNS listening on {} (udp and tcp); it never answers",
                    dns.addr
                );
                Box::new(dns)
            }
        };
        tokio::signal::ctrl_c()
            .await
            .context("waiting for Ctrl-C")?;
        Ok::<_, anyhow::Error>(ExitCode::SUCCESS)
    })
}
