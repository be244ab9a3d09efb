//! The `rampart` command: argument parsing and output only; the work is in the library crates.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};

/// mimalloc: the proxy allocates small, short-lived buffers per request; glibc malloc spent
/// about a tenth of the serving core on them (see BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "rampart",
    version,
    about = "API gateway and control plane that keep serving when config goes wrong"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the data plane from a config file (reloads on SIGHUP and on file change).
    Gateway {
        /// The config document (YAML or JSON).
        #[arg(long)]
        config: PathBuf,
        /// Override a listener's address: NAME=ADDR (repeatable).
        #[arg(long = "listen", value_parser = parse_listen)]
        listen: Vec<(String, SocketAddr)>,
        /// Override the admin address.
        #[arg(long)]
        admin: Option<SocketAddr>,
        /// How long to wait for requests in flight when stopping (e.g. 30s).
        #[arg(long, default_value = "30s")]
        drain: String,
    },
    /// Work with config documents.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Test servers (echo backend) for trying rampart out and for benchmarks.
    Testkit {
        #[command(subcommand)]
        command: TestkitCommand,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Check a document; prints every error with its path and exits non-zero if any.
    Validate {
        file: PathBuf,
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// Print the JSON Schema of the config document.
    Schema,
    /// Show what changes between two documents.
    Diff {
        old: PathBuf,
        new: PathBuf,
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
}

#[derive(Subcommand)]
enum TestkitCommand {
    /// An echo backend (HTTP/1.1 and h2c).
    Echo {
        #[arg(long, default_value = "127.0.0.1:9002")]
        listen: SocketAddr,
        #[arg(long, default_value = "echo")]
        name: String,
    },
    /// An auth server (introspection and JWKS); prints an opaque token and a JWT valid for a day.
    Auth {
        #[arg(long, default_value = "127.0.0.1:9000")]
        listen: SocketAddr,
        /// `iss` of the printed JWT.
        #[arg(long, default_value = "https://auth.example.com")]
        issuer: String,
        /// `aud` of the printed JWT.
        #[arg(long, default_value = "api")]
        audience: String,
    },
    /// A DNS server that receives queries and never answers.
    BlackholeDns {
        #[arg(long, default_value = "127.0.0.1:5353")]
        listen: SocketAddr,
    },
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Output {
    Text,
    Json,
}

fn parse_listen(s: &str) -> Result<(String, SocketAddr), String> {
    let (name, addr) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected NAME=ADDR"))?;
    let addr = addr
        .parse()
        .map_err(|_| format!("{addr:?} is not an IP:PORT address"))?;
    Ok((name.to_owned(), addr))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Gateway {
            config,
            listen,
            admin,
            drain,
        } => {
            let drain = rampart_model::duration::parse_duration(&drain)
                .map_err(anyhow::Error::msg)
                .context("--drain")?;
            let options = rampart_gateway::Options {
                listen,
                admin,
                drain,
            };
            runtime()?.block_on(rampart_gateway::standalone::run(
                config,
                options,
                std::future::pending(),
            ))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Config { command } => config(command),
        Command::Testkit { command } => testkit(command),
    }
}

// The config subcommands are synchronous: no runtime thread to block.
#[allow(clippy::disallowed_methods)]
fn read(path: &PathBuf) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading config file {}", path.display()))
}

fn config(command: ConfigCommand) -> Result<ExitCode> {
    match command {
        ConfigCommand::Validate { file, output } => {
            let text = read(&file)?;
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
        ConfigCommand::Schema => {
            println!("{:#}", rampart_model::json_schema());
            Ok(ExitCode::SUCCESS)
        }
        ConfigCommand::Diff { old, new, output } => {
            let parse = |p: &PathBuf| -> Result<rampart_model::Document> {
                rampart_model::parse_document(&read(p)?)
                    .with_context(|| format!("parsing {}", p.display()))
            };
            let (a, b) = (parse(&old)?, parse(&new)?);
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
    }
}

fn testkit(command: TestkitCommand) -> Result<ExitCode> {
    runtime()?.block_on(async {
        // Each server runs until Ctrl-C; dropping it stops it.
        let _server: Box<dyn std::any::Any> = match command {
            TestkitCommand::Echo { listen, name } => {
                let server = rampart_testkit::EchoServer::start_on(listen, &name)
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
                let server = rampart_testkit::auth::AuthServer::start_on(listen)
                    .await
                    .with_context(|| format!("starting auth server on {listen}"))?;
                let day = std::time::Duration::from_secs(86_400);
                let claims = serde_json::json!({
                    "sub": "testkit-user", "scope": "read write", "iss": issuer, "aud": audience,
                    "exp": rampart_testkit::auth::now_secs() + 86_400,
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
                let dns = rampart_testkit::dns::BlackHoleDns::start_on(listen)
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
