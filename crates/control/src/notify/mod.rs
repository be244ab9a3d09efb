//! Notifications: what an alert says, how each channel kind receives it, and the outbox worker
//! that delivers them in order per channel, with deadlines, retries and exponential backoff
//! (honouring `Retry-After`). A notification leaves the outbox only once a receiver took it or
//! refused it for good; every attempt carries its `Idempotency-Key`, so a receiver recognises a
//! redelivery after a crash.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::{Request, header};
use http_body_util::{BodyExt, Full, Limited};
use rampart_api::{Alert, ChannelKind, ChannelSpec, Severity};
use rampart_net::Resolver;
use rampart_net::client::{HttpsClient, error_chain, https_client};
use serde::{Deserialize, Serialize};

use crate::store::Pending;
use crate::store::now_ms;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyAction {
    Trigger,
    Resolve,
    /// A status-page subscriber: an incident opened or changed (payload built at delivery).
    Incident,
    /// A status-page subscriber: please confirm the subscription.
    Confirm,
}

/// What is delivered, whatever the channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// Idempotency key: the same notification always has the same key.
    pub key: String,
    /// Ties a trigger to its resolve (PagerDuty's dedup_key).
    pub dedup_key: String,
    pub action: NotifyAction,
    pub severity: Severity,
    pub name: String,
    pub summary: String,
    pub at: String,
    pub details: serde_json::Value,
}

impl Notification {
    /// A notification about one alert.
    pub fn for_alert(a: &Alert, action: NotifyAction) -> Notification {
        Notification::new(a, action, format!("alert-{}", a.id))
    }

    /// A page for an incident: the first paging alert of the incident triggers it, the last one
    /// to resolve resolves it, and alerts in between page nobody again.
    pub fn for_incident(a: &Alert, incident: i64, action: NotifyAction) -> Notification {
        let mut n = Notification::new(a, action, format!("incident-{incident}"));
        n.key = format!("{}-{}", n.key, a.id);
        n
    }

    fn new(a: &Alert, action: NotifyAction, subject: String) -> Notification {
        let verb = match action {
            NotifyAction::Resolve => "resolve",
            _ => "trigger",
        };
        Notification {
            key: format!("{subject}-{verb}"),
            dedup_key: format!("rampart-{subject}"),
            action,
            severity: a.severity,
            name: a.name.clone(),
            summary: a.summary.clone(),
            at: match action {
                NotifyAction::Resolve => a.resolved_at.clone().unwrap_or_default(),
                _ => a.fired_at.clone(),
            },
            details: serde_json::json!({
                "alert": a.id,
                "key": a.key,
                "source": a.source,
                "incident": a.incident,
                "data": a.data,
            }),
        }
    }
}

/// Whether `spec` takes notifications of `severity` (pages only, unless it lists severities).
pub fn wants(spec: &ChannelSpec, severity: Severity) -> bool {
    if spec.severities.is_empty() {
        severity == Severity::Page
    } else {
        spec.severities.contains(&severity)
    }
}

/// How an email channel reaches its relay: `smtp://host:port` upgrades with STARTTLS when the
/// relay offers it, `smtp+starttls://` requires STARTTLS, `smtps://` is TLS from the first byte.
/// Certificates are checked against the web's roots and the control plane's `--smtp-ca`.
#[derive(Debug, Clone, PartialEq)]
pub struct SmtpTarget {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SmtpTls {
    Opportunistic,
    Required,
    Wrapper,
}

impl SmtpTarget {
    pub fn parse(url: &str) -> Result<SmtpTarget, String> {
        let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
        let tls = match scheme {
            "smtp" => SmtpTls::Opportunistic,
            "smtp+starttls" => SmtpTls::Required,
            "smtps" => SmtpTls::Wrapper,
            _ => {
                return Err(format!(
                    "url: an email channel needs smtp://, smtp+starttls:// or smtps://host:port, not {url:?}"
                ));
            }
        };
        let (host, port) = rest
            .trim_end_matches('/')
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h.trim_matches(['[', ']']), p.parse::<u16>().ok()?)))
            .filter(|(h, _)| !h.is_empty())
            .ok_or_else(|| format!("url: {url:?} needs a host and a port (smtp://host:port)"))?;
        Ok(SmtpTarget {
            host: host.to_owned(),
            port,
            tls,
        })
    }
}

/// Checks a channel before it is stored: a URL its kind can use, and the fields it needs.
pub fn validate(spec: &ChannelSpec) -> Result<(), String> {
    let scheme = spec.url.split("://").next().unwrap_or_default();
    match spec.kind {
        ChannelKind::Email => {
            SmtpTarget::parse(&spec.url)?;
            if spec.to.is_empty() {
                return Err("to: an email channel needs at least one recipient".into());
            }
            for a in spec.to.iter().chain(spec.from.iter()) {
                a.parse::<lettre::message::Mailbox>()
                    .map_err(|e| format!("{a:?} is not an email address: {e}"))?;
            }
        }
        _ => {
            if scheme != "http" && scheme != "https" {
                return Err(format!(
                    "url: a {:?} channel needs an http:// or https:// URL, not {:?}",
                    spec.kind, spec.url
                ));
            }
            spec.url
                .parse::<http::Uri>()
                .map_err(|e| format!("url {:?}: {e}", spec.url))?;
        }
    }
    if spec.kind == ChannelKind::Pagerduty && spec.routing_key.as_deref().is_none_or(str::is_empty)
    {
        return Err("routing_key: a PagerDuty channel needs its integration key".into());
    }
    if spec.kind == ChannelKind::Webhook && spec.secret.as_deref().is_none_or(str::is_empty) {
        return Err("secret: a webhook channel signs with HMAC-SHA256 and needs a secret".into());
    }
    Ok(())
}

/// The HMAC-SHA256 signature of a webhook body: hex of HMAC(secret, "{timestamp}.{body}").
pub fn signature(secret: &str, timestamp: u64, body: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// A rendering that replaces a channel kind's own: the JSON of a webhook, or an email.
#[derive(Debug, Clone)]
pub struct Message {
    pub json: serde_json::Value,
    pub subject: String,
    pub text: String,
}

/// How one attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// Try again, after at least `after` when the receiver said so.
    Retry {
        error: String,
        after: Option<Duration>,
    },
    /// The receiver refused it (a 4xx other than 408/429): retrying cannot help.
    Refused(String),
}

/// How notifications are delivered: the outbox's wake-up, retry schedule and attempt deadline,
/// how hosts are resolved, and the SMTP relay.
pub struct NotifySettings {
    /// Bumped whenever something is queued, so delivery does not wait for its next round (a
    /// watch: each delivery lane sees every bump).
    pub outbox_wake: tokio::sync::watch::Sender<u64>,
    /// Deliver to subscriber webhooks on loopback, private or link-local addresses
    /// (`--allow-private-webhooks`); off, such targets are refused when subscribing and again
    /// at delivery, after DNS.
    pub private_webhooks: bool,
    pub backoff: Backoff,
    /// Deadline of one delivery attempt.
    pub timeout: Duration,
    /// How notification hosts are resolved: `rampart-net`'s resolver (hickory, deadlines,
    /// negative caching), never the system's blocking `getaddrinfo`.
    pub resolver: rampart_model::ResolverConfig,
    /// The SMTP relay subscriber emails go through (`smtp://host:port`).
    pub smtp: String,
    /// A PEM certificate SMTP relays may chain to (a private CA), besides the web's roots.
    pub smtp_ca: Option<Arc<Vec<u8>>>,
}

/// A copy with its own wake-up: a control plane opened from it runs its own delivery lanes.
impl Clone for NotifySettings {
    fn clone(&self) -> Self {
        NotifySettings {
            outbox_wake: tokio::sync::watch::channel(0).0,
            private_webhooks: self.private_webhooks,
            backoff: self.backoff,
            timeout: self.timeout,
            resolver: self.resolver.clone(),
            smtp: self.smtp.clone(),
            smtp_ca: self.smtp_ca.clone(),
        }
    }
}

impl NotifySettings {
    /// Tells the delivery lanes something was queued.
    pub fn wake(&self) {
        self.outbox_wake.send_modify(|n| *n = n.wrapping_add(1));
    }
}

impl Default for NotifySettings {
    fn default() -> Self {
        NotifySettings {
            outbox_wake: tokio::sync::watch::Sender::new(0),
            private_webhooks: false,
            backoff: Backoff::default(),
            timeout: Duration::from_secs(5),
            resolver: rampart_model::ResolverConfig::default(),
            smtp: "smtp://127.0.0.1:25".into(),
            smtp_ca: None,
        }
    }
}

/// Retry schedule: `base × 2^(attempt-1)`, capped, with ±20 % jitter.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_millis(500),
            cap: Duration::from_secs(60),
        }
    }
}

impl Backoff {
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(after) = retry_after {
            return after.min(Duration::from_secs(3600));
        }
        let exp = self
            .base
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
        exp.min(self.cap).mul_f64(0.8 + 0.4 * fastrand::f64())
    }
}

fn parse_retry_after(v: &str) -> Option<Duration> {
    if let Ok(secs) = v.trim().parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = time::OffsetDateTime::parse(v.trim(), &time::format_description::well_known::Rfc2822)
        .ok()?;
    let ms = u64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok()?;
    Some(Duration::from_millis(ms.saturating_sub(now_ms())))
}

/// PagerDuty Events API v2.
fn pagerduty_body(spec: &ChannelSpec, n: &Notification) -> serde_json::Value {
    let action = match n.action {
        NotifyAction::Resolve => "resolve",
        _ => "trigger",
    };
    serde_json::json!({
        "routing_key": spec.routing_key,
        "event_action": action,
        "dedup_key": n.dedup_key,
        "client": "rampart",
        "payload": {
            "summary": n.summary,
            "source": "rampart-control",
            "severity": if n.severity == Severity::Page { "critical" } else { "warning" },
            "timestamp": n.at,
            "class": n.name,
            "custom_details": n.details,
        }
    })
}

fn slack_body(n: &Notification) -> serde_json::Value {
    let text = match (n.action, n.severity) {
        (NotifyAction::Resolve, _) => format!(":white_check_mark: Resolved: {}", n.summary),
        (_, Severity::Page) => format!(":rotating_light: Page: {}", n.summary),
        (_, Severity::Ticket) => format!(":warning: Ticket: {}", n.summary),
    };
    serde_json::json!({ "text": text })
}

fn email_subject(n: &Notification) -> String {
    match n.action {
        NotifyAction::Resolve => format!("[rampart resolved] {}", n.summary),
        _ => format!("[rampart {}] {}", n.severity.as_str(), n.summary),
    }
}

fn email_text(n: &Notification) -> String {
    format!(
        "{}\n\nalert: {}\nseverity: {}\nat: {}\n\n{}\n",
        n.summary,
        n.name,
        n.severity.as_str(),
        n.at,
        serde_json::to_string_pretty(&n.details).unwrap_or_default()
    )
}

/// Checks that `pem` holds at least one certificate and nothing malformed.
pub(crate) fn check_ca_pem(pem: &[u8]) -> Result<(), String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("not a PEM certificate: {e}"))?;
    if certs.is_empty() {
        return Err("no PEM certificate (-----BEGIN CERTIFICATE-----) in it".into());
    }
    Ok(())
}

mod sender;

pub use sender::{Notifier, Sender};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_and_honours_retry_after() {
        let b = Backoff {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(8),
        };
        let d = |n| b.delay(n, None).as_secs_f64();
        assert!((0.8..=1.2).contains(&d(1)));
        assert!((1.6..=2.4).contains(&d(2)));
        assert!((6.4..=9.6).contains(&d(10)));
        assert_eq!(
            b.delay(3, Some(Duration::from_secs(30))),
            Duration::from_secs(30)
        );
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn signatures_are_hmac_sha256_of_timestamp_and_body() {
        // Computed independently: Python's hmac.new(b"Jefe", b"0.what do ya want for nothing?", sha256).
        let sig = signature("Jefe", 0, b"what do ya want for nothing?");
        assert_eq!(
            sig,
            "37f471929915ccd2cbbe79feb84ffcff4f2bb25e15fc41c2506687331ae179cc"
        );
        assert_ne!(sig, signature("other", 0, b"what do ya want for nothing?"));
    }
}
