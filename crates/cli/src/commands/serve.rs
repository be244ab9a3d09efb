//! `rampart gateway` and `rampart control`: the two long-running servers.

use std::process::ExitCode;

use anyhow::{Context, Result};

use super::{runtime, shutdown_signal};
use crate::args::{ControlArgs, GatewayArgs};

/// Runs the data plane, from a file or as an agent of a control plane, until SIGTERM or Ctrl-C.
pub fn gateway(a: GatewayArgs) -> Result<ExitCode> {
    let GatewayArgs {
        config,
        control,
        env,
        state_dir,
        instance,
        zone,
        token,
        ca,
        listen,
        admin,
        drain,
    } = a;
    let drain = rampart_model::duration::parse_duration(&drain)
        .map_err(anyhow::Error::msg)
        .context("--drain")?;
    let options = rampart_gateway::Options {
        listen,
        admin,
        drain,
        probe_secret: None,
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
            let instance =
                instance.unwrap_or_else(|| format!("{}-{}", hostname(), std::process::id()));
            let opts = rampart_gateway::agent::AgentOptions {
                control,
                token,
                ca: ca.map(|pem| pem.0),
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

/// `rampart control migrate`: copies the embedded store into PostgreSQL, table by table, saying
/// how far it got.
fn migrate(from: &std::path::Path, to: &str) -> Result<ExitCode> {
    let counts = runtime()?.block_on(rampart_control::store::copy::sqlite_to_postgres(
        from,
        to,
        |table, rows| eprintln!("  {table}: {rows} rows"),
    ))?;
    let total: u64 = counts.iter().map(|(_, n)| n).sum();
    println!(
        "copied {total} rows in {} tables from {} into PostgreSQL; every count checked",
        counts.len(),
        from.join("rampart.db").display()
    );
    println!(
        "now run: rampart control --data {} --database <URL>",
        from.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Runs the control plane until SIGTERM or Ctrl-C.
pub fn control(a: ControlArgs) -> Result<ExitCode> {
    if let Some(crate::args::ControlCommand::Migrate { from, to }) = a.command {
        return migrate(&from, &to);
    }
    let ControlArgs {
        command: _,
        listen,
        data,
        database,
        environments,
        incident_quiet,
        public_url,
        page_name,
        smtp,
        smtp_ca,
        notify_nameserver,
        notify_dns_timeout,
        allow_private_webhooks,
        max_connections,
        max_connections_per_client,
        header_timeout,
        tls_cert,
        tls_key,
        public_listen,
        replica,
        advertise,
        lease_ttl,
        reconcile_every,
    } = a;
    let data = data.context(
        "--data DIR is required: where the store (without --database) and the tokens live",
    )?;
    let tls = tls_acceptor(tls_cert.as_deref(), tls_key.as_deref())?;
    let limits = listener_limits(&header_timeout, max_connections, max_connections_per_client)?;
    let smtp_ca = match &smtp_ca {
        Some(path) => {
            #[allow(clippy::disallowed_methods)] // once, before anything starts
            let pem = std::fs::read(path)
                .with_context(|| format!("reading --smtp-ca {}", path.display()))?;
            Some((pem, path.display().to_string()))
        }
        None => None,
    };
    let tick = rampart_model::duration::parse_duration(&reconcile_every)
        .map_err(|e| anyhow::anyhow!("--reconcile-every: {e}"))?;
    anyhow::ensure!(!tick.is_zero(), "--reconcile-every: must be more than 0");
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
    let replica = match replica {
        Some(name) => Some(replica_settings(name, advertise, &lease_ttl, listen)?),
        None => None,
    };
    runtime()?.block_on(async {
        tokio::fs::create_dir_all(&data)
            .await
            .with_context(|| format!("creating {}", data.display()))?;
        let settings = rampart_control::Settings::default()
            .with_tick(tick)
            .with_incident_quiet(quiet)
            .with_page_name(&page_name)
            .with_smtp(&smtp)
            .map_err(|e| anyhow::anyhow!("--smtp: {e}"))?
            .with_notify_resolver(resolver)
            .with_private_webhooks(allow_private_webhooks)
            .with_limits(limits);
        let settings = match smtp_ca {
            Some((pem, path)) => settings
                .with_smtp_ca(pem)
                .map_err(|e| anyhow::anyhow!("--smtp-ca {path}: {e}"))?,
            None => settings,
        };
        let settings = match &public_url {
            Some(u) => settings.with_public_url(u),
            None => settings,
        };
        let (settings, store) = match &database {
            Some(url) => (
                settings.with_database(url),
                "the PostgreSQL store".to_owned(),
            ),
            None => (settings, format!("the store in {}", data.display())),
        };
        let (tokens, _) = rampart_control::tokens::Tokens::load_or_create(&data)
            .await
            .with_context(|| format!("reading tokens in {}", data.display()))?;
        let api = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding {listen}"))?;
        let public = match public_listen {
            Some(addr) => Some(
                tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding --public-listen {addr}"))?,
            ),
            None => None,
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let page = public_listen.map_or_else(
            || "at /".to_owned(),
            |page| format!("alone on http://{page}"),
        );
        eprintln!(
            "control plane on {scheme}://{listen} (status page {page}); tokens in {}",
            data.join("tokens.json").display()
        );
        let listeners = rampart_control::Listeners { api, public, tls };
        if let Some(replica) = replica {
            eprintln!(
                "replica {} (reached at {}); lease {:?}",
                replica.name, replica.address, replica.lease_ttl
            );
            let term = rampart_control::replica::Term {
                data,
                environments,
                settings,
                tokens,
                replica,
            };
            return rampart_control::replica::serve_replicated(listeners, term, shutdown_signal())
                .await
                .context("serving the API");
        }
        let control = rampart_control::ControlPlane::open_with(&data, &environments, settings)
            .await
            .with_context(|| format!("opening {store}"))?;
        rampart_control::serve_on(
            listeners,
            std::sync::Arc::new(control),
            tokens,
            shutdown_signal(),
        )
        .await
        .context("serving the API")
    })?;
    Ok(ExitCode::SUCCESS)
}

/// A replica's name, the address the others reach it at, and its lease's life.
fn replica_settings(
    name: String,
    advertise: Option<String>,
    lease_ttl: &str,
    listen: std::net::SocketAddr,
) -> Result<rampart_control::replica::ReplicaSettings> {
    anyhow::ensure!(
        !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'),
        "--replica {name:?}: 1 to 64 letters, digits, '-', '_' or '.'"
    );
    anyhow::ensure!(
        advertise.is_some() || !listen.ip().is_unspecified(),
        "--advertise is required when --listen is {listen}: the other replicas need an address they can reach"
    );
    let address = advertise.unwrap_or_else(|| format!("http://{listen}"));
    let uri: http::Uri = address
        .parse()
        .map_err(|e| anyhow::anyhow!("--advertise {address:?}: {e}"))?;
    anyhow::ensure!(
        uri.scheme_str() == Some("http") && uri.host().is_some(),
        "--advertise {address:?}: replicas forward to each other over plain http://HOST:PORT"
    );
    let lease_ttl = rampart_model::duration::parse_duration(lease_ttl)
        .map_err(|e| anyhow::anyhow!("--lease-ttl: {e}"))?;
    anyhow::ensure!(
        lease_ttl >= std::time::Duration::from_secs(1),
        "--lease-ttl: at least 1s (it is renewed every quarter of it)"
    );
    Ok(rampart_control::replica::ReplicaSettings {
        name,
        address,
        lease_ttl,
    })
}

/// The HTTPS acceptor of `--tls-cert` and `--tls-key`, when both are given.
fn tls_acceptor(
    cert: Option<&std::path::Path>,
    key: Option<&std::path::Path>,
) -> Result<Option<tokio_rustls::TlsAcceptor>> {
    let (Some(cert), Some(key)) = (cert, key) else {
        return Ok(None);
    };
    #[allow(clippy::disallowed_methods)] // once, before anything starts
    let (cert_pem, key_pem) = (
        std::fs::read(cert).with_context(|| format!("reading --tls-cert {}", cert.display()))?,
        std::fs::read(key).with_context(|| format!("reading --tls-key {}", key.display()))?,
    );
    let config = rampart_net::tls::server_config(&cert_pem, &key_pem)
        .map_err(|e| anyhow::anyhow!("--tls-cert/--tls-key: {e}"))?;
    Ok(Some(tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(
        config,
    ))))
}

/// The listener's limits from `--header-timeout` and the connection caps.
fn listener_limits(
    header_timeout: &str,
    connections: usize,
    per_client: usize,
) -> Result<rampart_control::listener::Limits> {
    let header_read = rampart_model::duration::parse_duration(header_timeout)
        .map_err(|e| anyhow::anyhow!("--header-timeout: {e}"))?;
    anyhow::ensure!(
        !header_read.is_zero(),
        "--header-timeout: must be more than 0"
    );
    anyhow::ensure!(
        connections > 0 && per_client > 0,
        "--max-connections and --max-connections-per-client must be more than 0"
    );
    Ok(rampart_control::listener::Limits {
        header_read,
        connections,
        per_client,
        ..Default::default()
    })
}

fn hostname() -> String {
    std::env::var("HOSTNAME").unwrap_or_else(|_| "gateway".into())
}
