//! The `rampart` command: argument parsing and output only; the work is in the library crates.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};

mod drill;
mod ops;
mod up;

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
    /// Run the data plane: from a config file (reloads on SIGHUP and on file change), or as an
    /// agent of a control plane (`--control URL --env NAME --state-dir DIR`).
    Gateway {
        /// The config document (YAML or JSON).
        #[arg(long, conflicts_with = "control", required_unless_present = "control")]
        config: Option<PathBuf>,
        /// The control plane to take configs from.
        #[arg(long, requires_all = ["env", "state_dir"])]
        control: Option<String>,
        /// The environment this gateway belongs to (with --control).
        #[arg(long)]
        env: Option<String>,
        /// Where the last-known-good config is kept (with --control).
        #[arg(long)]
        state_dir: Option<PathBuf>,
        /// This instance's id (with --control; default: hostname-pid).
        #[arg(long)]
        instance: Option<String>,
        #[arg(long, default_value = "local")]
        zone: String,
        /// API token (or RAMPART_TOKEN).
        #[arg(long, env = "RAMPART_TOKEN", hide_env_values = true)]
        token: Option<String>,
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
    /// Incidents: list, show, open, update, resolve, action items.
    Incident {
        #[command(subcommand)]
        command: ops::IncidentCommand,
    },
    /// An incident's postmortem in five sections, generated from its events.
    Postmortem {
        id: i64,
        /// md or html (with a timeline picture).
        #[arg(long, default_value = "md")]
        format: String,
        /// Write to this file instead of standard output.
        #[arg(long, short)]
        out: Option<PathBuf>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Active alerts (all of them with --all).
    Alerts {
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Where alerts are sent: PagerDuty, signed webhooks, Slack, email.
    Channel {
        #[command(subcommand)]
        command: ops::ChannelCommand,
    },
    /// Components (what the status page and SLOs are about).
    Component {
        #[command(subcommand)]
        command: ops::ComponentCommand,
    },
    /// Scheduled maintenance windows on the status page.
    Maintenance {
        #[command(subcommand)]
        command: ops::MaintenanceCommand,
    },
    /// Status-page subscribers (webhooks and email).
    Subscriber {
        #[command(subcommand)]
        command: ops::SubscriberCommand,
    },
    /// Replay an incident end to end on loopback and check every defence (exit 1 if one fails).
    Drill {
        /// The scenario: seed-2013 (a bad auth-server address pushed straight to production).
        #[arg(value_parser = ["seed-2013"])]
        scenario: String,
        /// Keep the status page and the pager receiver's log up until Ctrl-C.
        #[arg(long)]
        keep: bool,
        /// Also push the same change all at once with the defences off, and compare.
        #[arg(long)]
        counterfactual: bool,
        /// Where to write the postmortem (HTML beside it).
        #[arg(long, default_value = "seed-2013-postmortem.md")]
        postmortem: PathBuf,
        /// Production gateways.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(2..=20))]
        gateways: u16,
    },
    /// Everything on one machine: control plane, example backend and auth server, gateways in
    /// testing and production, the example config released through both. Ctrl-C stops it.
    Up {
        #[arg(long, default_value = "rampart-data")]
        data: PathBuf,
        #[arg(long, default_value = "127.0.0.1:7000")]
        control: SocketAddr,
        /// The production gateway.
        #[arg(long, default_value = "127.0.0.1:8080")]
        gateway: SocketAddr,
        #[arg(long, default_value = "127.0.0.1:8081")]
        testing_gateway: SocketAddr,
        #[arg(long, default_value = "127.0.0.1:9002")]
        backend: SocketAddr,
        #[arg(long, default_value = "127.0.0.1:9000")]
        auth: SocketAddr,
    },
    /// Run the control plane.
    Control {
        #[arg(long, default_value = "127.0.0.1:7000")]
        listen: SocketAddr,
        /// Data directory (SQLite database, tokens).
        #[arg(long)]
        data: PathBuf,
        /// Environments in pipeline order.
        #[arg(long, value_delimiter = ',', default_value = "testing,production")]
        environments: Vec<String>,
        /// How long an incident opened by rampart stays in monitoring, its alerts resolved,
        /// before it resolves itself (e.g. 5m).
        #[arg(long, default_value = "5m")]
        incident_quiet: String,
        /// The URL users reach the status page and API at (links in feeds and notifications;
        /// default: the listen address).
        #[arg(long)]
        public_url: Option<String>,
        /// Title of the public status page.
        #[arg(long, default_value = "rampart status")]
        page_name: String,
        /// SMTP relay for subscriber emails: smtp:// (STARTTLS when offered), smtp+starttls://
        /// (STARTTLS required) or smtps:// (TLS from the start).
        #[arg(long, default_value = "smtp://127.0.0.1:25")]
        smtp: String,
        /// A PEM certificate SMTP relays may chain to (a private CA), besides the web's roots.
        #[arg(long)]
        smtp_ca: Option<PathBuf>,
        /// Nameservers for notification hosts (default: the system's resolv.conf). Lookups are
        /// non-blocking, each bounded by --notify-dns-timeout × 2 attempts.
        #[arg(long, value_delimiter = ',')]
        notify_nameserver: Vec<SocketAddr>,
        /// Deadline of one DNS attempt for a notification host (e.g. 500ms).
        #[arg(long, default_value = "500ms")]
        notify_dns_timeout: String,
    },
    /// Work with config documents (locally, or versions on the control plane).
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Make a version desired in an environment (the pipeline decides if it may).
    Deploy {
        #[command(flatten)]
        remote: Remote,
        #[arg(long)]
        env: String,
        #[arg(long)]
        version: String,
        /// Skip the pipeline order, with a reason (approver token; recorded).
        #[arg(long)]
        break_glass: Option<String>,
    },
    /// Roll an environment back to its last-known-good (or --to VERSION), at once.
    Rollback {
        #[command(flatten)]
        remote: Remote,
        #[arg(long)]
        env: String,
        #[arg(long)]
        to: Option<String>,
    },
    /// Releases in waves: status, pause, resume, abort.
    Rollout {
        #[command(subcommand)]
        command: RolloutCommand,
    },
    /// Deploys waiting for a second person's approval.
    Approvals {
        #[command(flatten)]
        remote: Remote,
    },
    /// Approve a pending deploy (approver token; not the requester's). The deploy then happens.
    Approve {
        #[command(flatten)]
        remote: Remote,
        id: i64,
    },
    /// Environments, their versions and instances; `fleet restart` restarts gateways in batches.
    Fleet {
        #[command(subcommand)]
        command: Option<ops::FleetCommand>,
        #[command(flatten)]
        remote: Remote,
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
    /// Store a document as a new version on the control plane.
    Push {
        file: PathBuf,
        #[arg(long, short, default_value = "")]
        message: String,
        /// Store it even though semantic checks fail, with a reason (approver token; recorded).
        #[arg(long)]
        break_glass: Option<String>,
        /// Then deploy it to this environment (a release in waves when it replaces a version).
        #[arg(long)]
        env: Option<String>,
        /// With --env: show the release's progress until it ends; exit non-zero if rolled back.
        #[arg(long, requires = "env")]
        follow: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Versions on the control plane, newest first.
    History {
        #[command(flatten)]
        remote: Remote,
    },
    /// Show what changes between two documents: files, or version ids (full or a unique
    /// prefix) on the control plane.
    Diff {
        old: PathBuf,
        new: PathBuf,
        #[command(flatten)]
        remote: Remote,
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

#[derive(Subcommand)]
enum RolloutCommand {
    /// Releases, newest first, with their wave, cohort and latest gate verdict.
    Status {
        #[command(flatten)]
        remote: Remote,
        /// Redraw every second until no release is running.
        #[arg(long)]
        watch: bool,
    },
    /// Stop advancing a release (its cohort keeps the new version).
    Pause {
        id: i64,
        #[command(flatten)]
        remote: Remote,
    },
    Resume {
        id: i64,
        #[command(flatten)]
        remote: Remote,
    },
    /// End a release and put its cohort back on the previous version.
    Abort {
        id: i64,
        #[command(flatten)]
        remote: Remote,
    },
    /// Draw a release as SVG: its waves, each gateway's version over time, its gate verdicts.
    Picture {
        id: i64,
        /// Write the SVG here instead of to standard output.
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        remote: Remote,
    },
}

/// Where the control plane is, and how to talk to it.
#[derive(clap::Args, Clone)]
pub(crate) struct Remote {
    /// Control plane URL (or RAMPART_CONTROL).
    #[arg(long, env = "RAMPART_CONTROL", default_value = "http://127.0.0.1:7000")]
    pub(crate) control: String,
    /// API token (or RAMPART_TOKEN).
    #[arg(long, env = "RAMPART_TOKEN", hide_env_values = true)]
    pub(crate) token: Option<String>,
    #[arg(long, value_enum, default_value_t = Output::Text)]
    pub(crate) output: Output,
}

impl Remote {
    pub(crate) fn client(&self) -> rampart_api::ApiClient {
        rampart_api::ApiClient::new(&self.control, self.token.clone())
    }
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub(crate) enum Output {
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
            short(Some(&r.previous)),
            short(Some(&r.version)),
            (r.wave + 1).min(r.waves),
            r.waves,
            r.state,
            r.cohort.join(",")
        );
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
async fn follow(remote: &Remote, id: Option<i64>) -> Result<Option<String>> {
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

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
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

fn hostname() -> String {
    std::env::var("HOSTNAME").unwrap_or_else(|_| "gateway".into())
}

/// The first 12 characters of a version id, or "-" for none.
fn short(v: Option<&str>) -> String {
    v.map(|v| rampart_model::version::short(v).to_owned())
        .unwrap_or_else(|| "-".into())
}

fn print_env(remote: &Remote, e: &rampart_api::EnvironmentStatus) -> Result<ExitCode> {
    if remote.output == Output::Json {
        println!("{:#}", serde_json::to_value(e)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{}  desired {}  last-known-good {}  ({} instances)",
        e.name,
        short(e.desired.as_deref()),
        short(e.last_known_good.as_deref()),
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
        println!(
            "  {:<24} {:<8} applied {}  {}  seen {} ms ago",
            i.id,
            i.zone,
            short(i.applied.as_deref()),
            result,
            i.last_seen_ms
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Gateway {
            config,
            control,
            env,
            state_dir,
            instance,
            zone,
            token,
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
            match (config, control, env, state_dir) {
                (Some(config), _, _, _) => {
                    runtime()?.block_on(rampart_gateway::standalone::run(
                        config,
                        options,
                        shutdown_signal(),
                    ))?;
                }
                (None, Some(control), Some(environment), Some(state_dir)) => {
                    let instance = instance
                        .unwrap_or_else(|| format!("{}-{}", hostname(), std::process::id()));
                    let opts = rampart_gateway::agent::AgentOptions {
                        control,
                        token,
                        environment,
                        instance,
                        zone,
                        state_dir,
                        gateway: options,
                        watchdog: rampart_gateway::watchdog::WatchdogSettings::default(),
                    };
                    runtime()?.block_on(rampart_gateway::agent::run(opts, shutdown_signal()))?;
                }
                _ => anyhow::bail!(
                    "give --config FILE, or --control URL with --env NAME and --state-dir DIR"
                ),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Up {
            data,
            control,
            gateway,
            testing_gateway,
            backend,
            auth,
        } => {
            let opts = up::UpOptions {
                data,
                control,
                gateway,
                testing_gateway,
                backend,
                auth,
            };
            runtime()?.block_on(up::run(opts, shutdown_signal()))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Control {
            listen,
            data,
            environments,
            incident_quiet,
            public_url,
            page_name,
            smtp,
            smtp_ca,
            notify_nameserver,
            notify_dns_timeout,
        } => {
            rampart_control::notify::SmtpTarget::parse(&smtp)
                .map_err(|e| anyhow::anyhow!("--smtp: {e}"))?;
            let smtp_ca = match &smtp_ca {
                Some(path) => {
                    #[allow(clippy::disallowed_methods)] // once, before anything starts
                    let pem = std::fs::read(path)
                        .with_context(|| format!("reading --smtp-ca {}", path.display()))?;
                    rampart_control::alerting::check_ca_pem(&pem)
                        .map_err(|e| anyhow::anyhow!("--smtp-ca {}: {e}", path.display()))?;
                    Some(pem)
                }
                None => None,
            };
            let quiet = rampart_model::duration::parse_duration(&incident_quiet)
                .map_err(|e| anyhow::anyhow!("--incident-quiet: {e}"))?;
            let timeout = rampart_model::duration::parse_duration(&notify_dns_timeout)
                .map_err(|e| anyhow::anyhow!("--notify-dns-timeout: {e}"))?;
            anyhow::ensure!(
                !timeout.is_zero(),
                "--notify-dns-timeout: must be more than 0"
            );
            let resolver = rampart_model::ResolverConfig {
                nameservers: (!notify_nameserver.is_empty()).then_some(notify_nameserver),
                timeout,
                ..Default::default()
            };
            runtime()?.block_on(async {
                tokio::fs::create_dir_all(&data)
                    .await
                    .with_context(|| format!("creating {}", data.display()))?;
                let control = rampart_control::ControlPlane::open(&data, &environments)
                    .await
                    .with_context(|| format!("opening the store in {}", data.display()))?
                    .with_incident_quiet(quiet)
                    .with_page_name(&page_name)
                    .with_smtp(&smtp)
                    .with_notify_resolver(resolver);
                let control = match smtp_ca {
                    Some(pem) => control
                        .with_smtp_ca(pem)
                        .map_err(|e| anyhow::anyhow!("--smtp-ca: {e}"))?,
                    None => control,
                };
                let control = match &public_url {
                    Some(u) => control.with_public_url(u),
                    None => control,
                };
                let (tokens, _) = rampart_control::tokens::Tokens::load_or_create(&data)
                    .await
                    .with_context(|| format!("reading tokens in {}", data.display()))?;
                let listener = tokio::net::TcpListener::bind(listen)
                    .await
                    .with_context(|| format!("binding {listen}"))?;
                eprintln!(
                    "control plane on http://{listen} (status page at /); tokens in {}",
                    data.join("tokens.json").display()
                );
                rampart_control::serve(
                    listener,
                    std::sync::Arc::new(control),
                    tokens,
                    shutdown_signal(),
                )
                .await
                .context("serving the API")
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Deploy {
            remote,
            env,
            version,
            break_glass,
        } => {
            let status =
                runtime()?.block_on(remote.client().deploy(&env, &version, break_glass))?;
            print_env(&remote, &status)
        }
        Command::Rollback { remote, env, to } => {
            let status = runtime()?.block_on(remote.client().rollback(&env, to))?;
            print_env(&remote, &status)
        }
        Command::Rollout { command } => {
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
                RolloutCommand::Abort { id, remote } => {
                    let r = runtime()?.block_on(remote.client().release_action(id, "abort"))?;
                    (remote, vec![r])
                }
            };
            if remote.output == Output::Json {
                println!("{:#}", serde_json::to_value(&list)?);
            } else {
                print_releases(&list);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Approvals { remote } => {
            let list = runtime()?.block_on(remote.client().approvals())?;
            if remote.output == Output::Json {
                println!("{:#}", serde_json::to_value(&list)?);
            } else {
                for a in &list {
                    let state = a
                        .approved_by
                        .as_deref()
                        .map_or("pending".to_owned(), |by| format!("approved by {by}"));
                    println!(
                        "#{:<4} {:<12} {}  {}  requested by {}  {}",
                        a.id,
                        a.environment,
                        &a.version[..12],
                        a.sections.join(","),
                        a.requested_by,
                        state
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Approve { remote, id } => {
            let status = runtime()?.block_on(remote.client().approve(id))?;
            print_env(&remote, &status)
        }
        Command::Fleet {
            command: Some(command),
            ..
        } => ops::fleet(command),
        Command::Fleet {
            command: None,
            remote,
        } => {
            let envs = runtime()?.block_on(remote.client().environments())?;
            if remote.output == Output::Json {
                println!("{:#}", serde_json::to_value(&envs)?);
            } else {
                for e in &envs {
                    print_env(&remote, e)?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Config { command } => config(command),
        Command::Incident { command } => ops::incident(command),
        Command::Postmortem {
            id,
            format,
            out,
            remote,
        } => ops::postmortem(id, &format, out, &remote),
        Command::Alerts { all, remote } => ops::alerts(all, &remote),
        Command::Channel { command } => ops::channel(command),
        Command::Component { command } => ops::component(command),
        Command::Maintenance { command } => ops::maintenance(command),
        Command::Drill {
            scenario: _,
            keep,
            counterfactual,
            postmortem,
            gateways,
        } => {
            let held = runtime()?.block_on(drill::run(
                drill::DrillOptions {
                    keep,
                    counterfactual,
                    postmortem,
                    gateways: usize::from(gateways),
                },
                shutdown_signal(),
            ))?;
            Ok(if held {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Subscriber { command } => ops::subscriber(command),
        Command::Testkit { command } => testkit(command),
    }
}

/// A document from a file, or else from the control plane by version id (or unique prefix).
fn document_of(arg: &PathBuf, remote: &Remote) -> Result<rampart_model::Document> {
    let text = if arg.exists() {
        read(arg)?
    } else {
        let prefix = arg.to_string_lossy().into_owned();
        if prefix.len() < 6 || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
            anyhow::bail!(
                "{prefix}: no such file, and not a version id (at least 6 hex characters)"
            );
        }
        runtime()?.block_on(async {
            let client = remote.client();
            let matches: Vec<String> = client
                .versions()
                .await?
                .into_iter()
                .map(|v| v.id)
                .filter(|id| id.starts_with(&prefix))
                .collect();
            match matches.as_slice() {
                [id] => Ok::<_, anyhow::Error>(client.version(id).await?.document),
                [] => anyhow::bail!("no version starts with {prefix}"),
                _ => anyhow::bail!(
                    "{prefix} matches {} versions; give more characters",
                    matches.len()
                ),
            }
        })?
    };
    rampart_model::parse_document(&text).with_context(|| format!("parsing {}", arg.display()))
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
        ConfigCommand::Push {
            file,
            message,
            break_glass,
            env,
            follow: follow_release,
            remote,
        } => {
            let text = read(&file)?;
            let pushed =
                runtime()?.block_on(remote.client().push_with(&text, &message, break_glass))?;
            for o in &pushed.overridden {
                println!("overridden by break-glass: {o}");
            }
            if remote.output == Output::Json {
                println!("{:#}", serde_json::to_value(&pushed)?);
            } else {
                for w in &pushed.warnings {
                    println!("warning: {w}");
                }
                let verb = if pushed.created {
                    "created"
                } else {
                    "already stored as"
                };
                println!("{verb} version {}", pushed.version.id);
            }
            let Some(env) = env else {
                return Ok(ExitCode::SUCCESS);
            };
            let rt = runtime()?;
            let status = rt.block_on(remote.client().deploy(&env, &pushed.version.id, None))?;
            if !follow_release {
                return print_env(&remote, &status);
            }
            let release = rt
                .block_on(remote.client().releases())?
                .into_iter()
                .find(|r| r.version == pushed.version.id && r.environment == env);
            match release {
                Some(r) => {
                    let end = rt.block_on(follow(&remote, Some(r.id)))?;
                    Ok(if end.as_deref() == Some("rolled_back") {
                        ExitCode::FAILURE
                    } else {
                        ExitCode::SUCCESS
                    })
                }
                // No release: the version went everywhere at once (a first version).
                None => print_env(&remote, &status),
            }
        }
        ConfigCommand::History { remote } => {
            let versions = runtime()?.block_on(remote.client().versions())?;
            if remote.output == Output::Json {
                println!("{:#}", serde_json::to_value(&versions)?);
            } else {
                for v in &versions {
                    println!(
                        "{}  {}  {:<12} {}",
                        &v.id[..12],
                        v.created_at,
                        v.author,
                        v.message
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        ConfigCommand::Schema => {
            println!("{:#}", rampart_model::json_schema());
            Ok(ExitCode::SUCCESS)
        }
        ConfigCommand::Diff { old, new, remote } => {
            let output = remote.output;
            let (a, b) = (document_of(&old, &remote)?, document_of(&new, &remote)?);
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
