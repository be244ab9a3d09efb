//! The clap types of the incident and status-page commands.

use clap::Subcommand;
use rampart_api::{ChannelKind, Impact, IncidentStatus};

use super::Remote;

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

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create a token (approver role); its secret is printed this once.
    Create {
        /// Unique name: letters, digits, '.', '_', '-'.
        #[arg(long)]
        name: String,
        /// agent, viewer, operator or approver.
        #[arg(long)]
        role: String,
        /// For an agent token: an environment its gateways may join (repeatable; none: any).
        #[arg(long = "env")]
        environments: Vec<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Tokens, without their secrets.
    List {
        #[command(flatten)]
        remote: Remote,
    },
    /// Revoke a token by name (bootstrap ones too): it is refused from now on.
    Revoke {
        name: String,
        #[command(flatten)]
        remote: Remote,
    },
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
