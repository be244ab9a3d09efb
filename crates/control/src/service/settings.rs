//! How a control plane is set up before it opens: reconciler tick, rollout plan, incident quiet
//! period, the status page's name and address, and notification delivery (SMTP relay and CA,
//! backoff, resolver). Each part receives its share when `ControlPlane::open_with` builds it.

use std::time::Duration;

use crate::notify::{Backoff, NotifySettings, check_ca_pem};

#[derive(Clone)]
pub struct Settings {
    /// How often the reconciler evaluates releases.
    pub tick: Duration,
    /// The plan new releases follow; `None` deploys to every instance at once.
    pub plan: Option<rampart_rollout::Plan>,
    /// How long a platform-opened incident stays in monitoring before it resolves itself.
    pub incident_quiet: Duration,
    pub page_name: String,
    /// The base URL users reach the page and API at; defaults to the listener's address.
    pub public_url: Option<String>,
    pub notify: NotifySettings,
    /// The listener's limits (head deadline, connection caps, HTTP/2 streams).
    pub limits: crate::listener::Limits,
    /// A PostgreSQL database (`postgres://…`) to keep the state in instead of the data
    /// folder's SQLite file.
    pub database: Option<String>,
    /// The epoch of the lease this control plane leads under: every write is fenced on it
    /// (a replica that lost the lease writes nothing more). `None`: a lone control plane.
    pub fence: Option<i64>,
    /// This replica's name, when it is one of several (`rampart fleet` shows which replica
    /// each agent reaches the control plane through).
    pub replica_name: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            tick: Duration::from_secs(1),
            plan: Some(rampart_rollout::Plan::standard(30_000)),
            incident_quiet: Duration::from_secs(300),
            page_name: "rampart status".into(),
            public_url: None,
            notify: NotifySettings::default(),
            limits: crate::listener::Limits::default(),
            database: None,
            fence: None,
            replica_name: None,
        }
    }
}

impl Settings {
    /// Keeps the state in this PostgreSQL database (`postgres://user@host/db`) instead of
    /// `DATA/rampart.db`; the data folder still holds the bootstrap tokens.
    pub fn with_database(mut self, url: &str) -> Settings {
        self.database = Some(url.to_owned());
        self
    }

    /// Fences every write on the lease's `epoch` (see [`Settings::fence`]).
    pub fn with_fence(mut self, epoch: i64) -> Settings {
        self.fence = Some(epoch);
        self
    }

    pub fn with_replica_name(mut self, name: &str) -> Settings {
        self.replica_name = Some(name.to_owned());
        self
    }

    pub fn with_limits(mut self, limits: crate::listener::Limits) -> Settings {
        self.limits = limits;
        self
    }

    /// Sets how often the reconciler evaluates releases.
    pub fn with_tick(mut self, tick: Duration) -> Settings {
        self.tick = tick;
        self
    }

    /// Sets the plan of new releases; `None` deploys to every instance at once.
    pub fn with_plan(mut self, plan: Option<rampart_rollout::Plan>) -> Settings {
        self.plan = plan;
        self
    }

    pub fn with_incident_quiet(mut self, quiet: Duration) -> Settings {
        self.incident_quiet = quiet;
        self
    }

    /// The SMTP relay for subscriber emails: `smtp://` (STARTTLS when offered),
    /// `smtp+starttls://` (STARTTLS required) or `smtps://` (TLS from the start); checked here, so
    /// a bad URL is refused at start, not at the first email.
    pub fn with_smtp(mut self, url: &str) -> Result<Settings, String> {
        crate::notify::SmtpTarget::parse(url)?;
        self.notify.smtp = url.to_owned();
        Ok(self)
    }

    /// Trusts SMTP relays whose certificates chain to this PEM certificate (besides the web's
    /// roots); checked here so a bad file is refused at start, not at the first email.
    pub fn with_smtp_ca(mut self, pem: Vec<u8>) -> Result<Settings, String> {
        check_ca_pem(&pem)?;
        self.notify.smtp_ca = Some(std::sync::Arc::new(pem));
        Ok(self)
    }

    /// The base URL users reach the page and API at (links in feeds and notifications).
    pub fn with_public_url(mut self, url: &str) -> Settings {
        self.public_url = Some(url.to_owned());
        self
    }

    pub fn with_page_name(mut self, name: &str) -> Settings {
        self.page_name = name.to_owned();
        self
    }

    pub fn with_backoff(mut self, backoff: Backoff) -> Settings {
        self.notify.backoff = backoff;
        self
    }

    /// Lets subscriber webhooks be on loopback, private or link-local addresses (a page whose
    /// subscribers live inside the network, or a test); off by default.
    pub fn with_private_webhooks(mut self, allowed: bool) -> Settings {
        self.notify.private_webhooks = allowed;
        self
    }

    /// Where notification hosts are looked up (default: the system's nameservers, through
    /// `rampart-net`'s resolver with the default deadlines).
    pub fn with_notify_resolver(mut self, resolver: rampart_model::ResolverConfig) -> Settings {
        self.notify.resolver = resolver;
        self
    }
}
