//! How a control plane is set up before it serves (incident quiet period, SMTP relay and CA,
//! public URL, page name, notification backoff and resolver), and the settings its parts read.

use super::*;
use crate::notify::{Backoff, check_ca_pem};

impl ControlPlane {
    pub fn with_incident_quiet(mut self, quiet: Duration) -> ControlPlane {
        self.convergence.quiet = quiet;
        self
    }

    /// The SMTP relay for subscriber emails: `smtp://` (STARTTLS when offered),
    /// `smtp+starttls://` (STARTTLS required) or `smtps://` (TLS from the start); checked here, so
    /// a bad URL is refused at start, not at the first email.
    pub fn with_smtp(mut self, url: &str) -> Result<ControlPlane, String> {
        crate::notify::SmtpTarget::parse(url)?;
        self.notify.smtp = url.to_owned();
        Ok(self)
    }

    /// Trusts SMTP relays whose certificates chain to this PEM certificate (besides the web's
    /// roots); checked here so a bad file is refused at start, not at the first email.
    pub fn with_smtp_ca(mut self, pem: Vec<u8>) -> Result<ControlPlane, String> {
        check_ca_pem(&pem)?;
        self.notify.smtp_ca = Some(std::sync::Arc::new(pem));
        Ok(self)
    }

    /// The base URL users reach the page and API at (links in feeds and notifications).
    pub fn with_public_url(self, url: &str) -> ControlPlane {
        self.page.set_public_url(url);
        self
    }

    pub fn with_page_name(mut self, name: &str) -> ControlPlane {
        self.page.name = name.to_owned();
        self
    }

    pub fn with_backoff(mut self, backoff: Backoff) -> ControlPlane {
        self.notify.backoff = backoff;
        self
    }

    /// Where notification hosts are looked up (default: the system's nameservers, through
    /// `rampart-net`'s resolver with the default deadlines).
    pub fn with_notify_resolver(mut self, resolver: rampart_model::ResolverConfig) -> ControlPlane {
        self.notify.resolver = resolver;
        self
    }

    /// The public page's state (name, address, snapshot).
    pub fn page(&self) -> &crate::status::PageState {
        &self.page
    }

    /// Books one report of `env` into the SLI series (the environment's and its components').
    pub(crate) fn record_sli(&self, env: &str, r: &Report) {
        self.sli.record(self.component_book.sli_updates(env, r));
    }
}
