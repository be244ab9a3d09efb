//! The command line: every clap type, and nothing that runs. `commands` carries them out.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

mod ops;

pub use ops::*;

#[derive(Parser)]
#[command(
    name = "rampart",
    version,
    about = "API gateway and control plane that keep serving when config goes wrong"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the data plane: from a config file (reloads on SIGHUP and on file change), or as an
    /// agent of a control plane (`--control URL --env NAME --state-dir DIR`).
    Gateway(GatewayArgs),
    /// Incidents: list, show, open, update, resolve, action items.
    Incident {
        #[command(subcommand)]
        command: IncidentCommand,
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
        command: ChannelCommand,
    },
    /// Components (what the status page and SLOs are about).
    Component {
        #[command(subcommand)]
        command: ComponentCommand,
    },
    /// Scheduled maintenance windows on the status page.
    Maintenance {
        #[command(subcommand)]
        command: MaintenanceCommand,
    },
    /// Status-page subscribers (webhooks and email).
    Subscriber {
        #[command(subcommand)]
        command: SubscriberCommand,
    },
    /// API tokens: create (approver role), list, revoke.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Replay an incident end to end on loopback and check every defence (exit 1 if one fails).
    Drill(DrillArgs),
    /// Everything on one machine: control plane, example backend and auth server, gateways in
    /// testing and production, the example config released through both. Ctrl-C stops it.
    Up(UpArgs),
    /// Run the control plane (or `control migrate` its store into PostgreSQL).
    Control(Box<ControlArgs>),
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
    /// Rollout policies per environment: show, set, diff, history, schema.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
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
        command: Option<FleetCommand>,
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
pub enum ConfigCommand {
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
pub enum TestkitCommand {
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
pub enum RolloutCommand {
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
    /// Move a release past a pause or an inconclusive hold (recorded with your reason).
    Promote {
        id: i64,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Move a release past the wave it is in, whatever its gates say (recorded with your reason).
    Skip {
        id: i64,
        #[arg(long)]
        reason: String,
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

#[derive(Subcommand)]
pub enum ControlCommand {
    /// Copy an embedded store (DATA/rampart.db) into an empty PostgreSQL database, whole:
    /// every table, ids kept, row counts checked before it commits. Then run
    /// `rampart control --data DATA --database URL`.
    Migrate {
        /// The data directory holding rampart.db.
        #[arg(long)]
        from: PathBuf,
        /// postgres://USER[:PASSWORD]@HOST[:PORT]/DB (or RAMPART_DATABASE)
        #[arg(long, env = "RAMPART_DATABASE", hide_env_values = true)]
        to: String,
    },
}

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// The policy in force in an environment (the default written out when none is stored).
    Show {
        env: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Store a new revision of an environment's policy (operator; checked, audited).
    Set {
        env: String,
        /// The policy file (YAML or JSON).
        file: PathBuf,
        #[command(flatten)]
        remote: Remote,
    },
    /// What a policy file would change in an environment's policy in force.
    Diff {
        env: String,
        file: PathBuf,
        #[command(flatten)]
        remote: Remote,
    },
    /// Every stored revision, newest first: who, when, what changed.
    History {
        env: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Check a policy file locally: every problem with its path, and a failing exit code.
    Validate { file: PathBuf },
    /// Print the policy document's JSON Schema (for editors).
    Schema,
}

/// Where the control plane is, and how to talk to it.
#[derive(clap::Args, Clone)]
pub struct Remote {
    /// Control plane URL, or several replicas' URLs separated by commas (or RAMPART_CONTROL).
    #[arg(long, env = "RAMPART_CONTROL", default_value = "http://127.0.0.1:7000")]
    pub control: String,
    /// API token (or RAMPART_TOKEN).
    #[arg(long, env = "RAMPART_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// A PEM certificate the control plane's HTTPS certificate may chain to (a private CA),
    /// besides the web's roots (or RAMPART_CA).
    #[arg(long, env = "RAMPART_CA", value_parser = read_ca)]
    pub ca: Option<Pem>,
    #[arg(long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

impl Remote {
    pub fn client(&self) -> rampart_api::ApiClient {
        let client = rampart_api::ApiClient::new(&self.control, self.token.clone());
        match &self.ca {
            None => client,
            Some(pem) => match client.with_ca(&pem.0) {
                Ok(c) => c,
                Err(e) => panic!("--ca was checked when it was read: {e}"),
            },
        }
    }
}

/// A PEM file's contents, checked to hold certificates.
#[derive(Clone, Debug)]
pub struct Pem(pub Vec<u8>);

/// Reads a CA certificate file for `--ca`.
pub fn read_ca(path: &str) -> Result<Pem, String> {
    #[allow(clippy::disallowed_methods)] // once, while reading the command line
    let pem = std::fs::read(path).map_err(|e| format!("reading {path}: {e}"))?;
    rampart_net::tls::certificates(&pem).map_err(|e| format!("{path}: {e}"))?;
    Ok(Pem(pem))
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Output {
    Text,
    Json,
}

pub fn parse_listen(s: &str) -> Result<(String, SocketAddr), String> {
    let (name, addr) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected NAME=ADDR"))?;
    let addr = addr
        .parse()
        .map_err(|_| format!("{addr:?} is not an IP:PORT address"))?;
    Ok((name.to_owned(), addr))
}

#[derive(clap::Args)]
pub struct GatewayArgs {
    /// The config document (YAML or JSON).
    #[arg(long, conflicts_with = "control", required_unless_present = "control")]
    pub config: Option<PathBuf>,
    /// The control plane to take configs from: its URL, or several replicas' URLs separated
    /// by commas (the agent sticks to one that answers and fails over to the next).
    #[arg(long, requires_all = ["env", "state_dir"])]
    pub control: Option<String>,
    /// The environment this gateway belongs to (with --control).
    #[arg(long)]
    pub env: Option<String>,
    /// Where the last-known-good config is kept (with --control).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// This instance's id (with --control; default: hostname-pid).
    #[arg(long)]
    pub instance: Option<String>,
    #[arg(long, default_value = "local")]
    pub zone: String,
    /// An agent token (or RAMPART_AGENT_TOKEN): the gateway registers, long-polls and reports
    /// with it, and can do nothing else (with --control).
    #[arg(long, env = "RAMPART_AGENT_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// A PEM certificate the control plane's HTTPS certificate may chain to (a private CA),
    /// besides the web's roots (with --control; or RAMPART_CA).
    #[arg(long, env = "RAMPART_CA", value_parser = read_ca)]
    pub ca: Option<Pem>,
    /// Override a listener's address: NAME=ADDR (repeatable).
    #[arg(long = "listen", value_parser = parse_listen)]
    pub listen: Vec<(String, SocketAddr)>,
    /// Override the admin address.
    #[arg(long)]
    pub admin: Option<SocketAddr>,
    /// How long to wait for requests in flight when stopping (e.g. 30s).
    #[arg(long, default_value = "30s")]
    pub drain: String,
}

#[derive(clap::Args)]
pub struct DrillArgs {
    /// The scenario: seed-2013 (a bad auth-server address pushed straight to production).
    #[arg(value_parser = ["seed-2013"])]
    pub scenario: String,
    /// Keep the status page and the pager receiver's log up until Ctrl-C.
    #[arg(long)]
    pub keep: bool,
    /// Also push the same change all at once with the defences off, and compare.
    #[arg(long)]
    pub counterfactual: bool,
    /// Where to write the postmortem (HTML beside it).
    #[arg(long, default_value = "seed-2013-postmortem.md")]
    pub postmortem: PathBuf,
    /// Production gateways.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(2..=20))]
    pub gateways: u16,
    /// Where the logs of the components the drill runs go.
    #[arg(long, default_value = "seed-2013-drill.log")]
    pub log: PathBuf,
    /// Show those logs on standard error, beside the story, instead.
    #[arg(long, short)]
    pub verbose: bool,
    /// Run the control plane as three replicas on PostgreSQL (started from Debian's package
    /// in a scratch folder) and kill the leader with SIGKILL during the bad release.
    #[arg(long)]
    pub replicas: bool,
}

#[derive(clap::Args)]
pub struct UpArgs {
    #[arg(long, default_value = "rampart-data")]
    pub data: PathBuf,
    #[arg(long, default_value = "127.0.0.1:7000")]
    pub control: SocketAddr,
    /// The production gateway.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub gateway: SocketAddr,
    #[arg(long, default_value = "127.0.0.1:8081")]
    pub testing_gateway: SocketAddr,
    #[arg(long, default_value = "127.0.0.1:9002")]
    pub backend: SocketAddr,
    #[arg(long, default_value = "127.0.0.1:9000")]
    pub auth: SocketAddr,
}

#[derive(clap::Args)]
pub struct ControlArgs {
    #[command(subcommand)]
    pub command: Option<ControlCommand>,
    #[arg(long, default_value = "127.0.0.1:7000")]
    pub listen: SocketAddr,
    /// Data directory (SQLite database, tokens); required to run.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Keep the state in this PostgreSQL database instead of DATA/rampart.db
    /// (postgres://USER[:PASSWORD]@HOST[:PORT]/DB, or RAMPART_DATABASE); tokens stay in DATA.
    #[arg(long, env = "RAMPART_DATABASE", hide_env_values = true)]
    pub database: Option<String>,
    /// Environments in pipeline order.
    #[arg(long, value_delimiter = ',', default_value = "testing,production")]
    pub environments: Vec<String>,
    /// How long an incident opened by rampart stays in monitoring, its alerts resolved,
    /// before it resolves itself (e.g. 5m).
    #[arg(long, default_value = "5m")]
    pub incident_quiet: String,
    /// The URL users reach the status page and API at (links in feeds and notifications;
    /// default: the listen address).
    #[arg(long)]
    pub public_url: Option<String>,
    /// Title of the public status page.
    #[arg(long, default_value = "rampart status")]
    pub page_name: String,
    /// SMTP relay for subscriber emails: smtp:// (STARTTLS when offered), smtp+starttls://
    /// (STARTTLS required) or smtps:// (TLS from the start).
    #[arg(long, default_value = "smtp://127.0.0.1:25")]
    pub smtp: String,
    /// A PEM certificate SMTP relays may chain to (a private CA), besides the web's roots.
    #[arg(long)]
    pub smtp_ca: Option<PathBuf>,
    /// Nameservers for notification hosts (default: the system's resolv.conf). Lookups are
    /// non-blocking, each bounded by --notify-dns-timeout × 2 attempts.
    #[arg(long, value_delimiter = ',')]
    pub notify_nameserver: Vec<SocketAddr>,
    /// Deadline of one DNS attempt for a notification host (e.g. 500ms).
    #[arg(long, default_value = "500ms")]
    pub notify_dns_timeout: String,
    /// Let status-page subscribers' webhooks be on loopback, private or link-local addresses
    /// (refused by default, when subscribing and again at delivery after DNS).
    #[arg(long)]
    pub allow_private_webhooks: bool,
    /// Open connections the API accepts, all clients together; past it new ones are closed.
    #[arg(long, default_value_t = 2048)]
    pub max_connections: usize,
    /// Open connections one client address may hold (a fleet behind one NAT needs more).
    #[arg(long, default_value_t = 64)]
    pub max_connections_per_client: usize,
    /// Deadline for a request's head, from the connection's start or its last request.
    #[arg(long, default_value = "10s")]
    pub header_timeout: String,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key).
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Also serve the public status page alone (page, JSON, feeds, subscription forms) on this
    /// address, plain HTTP, so --listen can stay private.
    #[arg(long)]
    pub public_listen: Option<SocketAddr>,
    /// Run as one of several replicas on --database under this name (unique among them): one
    /// holds the lease and leads, the others forward to it and take over when it goes.
    #[arg(long, requires = "database")]
    pub replica: Option<String>,
    /// The URL the other replicas reach this one at (with --replica; default: http:// and
    /// the --listen address).
    #[arg(long, requires = "replica")]
    pub advertise: Option<String>,
    /// How long the leader's lease lasts unrenewed (with --replica): a leader that vanishes
    /// is replaced after about this long. It renews every quarter of it.
    #[arg(long, default_value = "10s", requires = "replica")]
    pub lease_ttl: String,
    /// How often the reconciler drives releases (the drill runs it faster).
    #[arg(long, default_value = "1s", hide = true)]
    pub reconcile_every: String,
}
