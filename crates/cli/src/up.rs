//! `rampart up`: everything on one machine — a control plane (SQLite in a data directory), an
//! example backend and auth server, and two gateway agents (testing and production); the
//! example config is released through testing to production with a second person's approval,
//! the way any change would be. Runs until Ctrl-C; a second run reuses the data directory.
//! With one gateway per environment there is no fleet to release to in waves, so deploys here go
//! to an environment at once.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use rampart_api::ApiClient;

use crate::local::{Agents, deploy_approved, wait_lkg};

pub struct UpOptions {
    pub data: PathBuf,
    pub control: SocketAddr,
    pub gateway: SocketAddr,
    pub testing_gateway: SocketAddr,
    pub backend: SocketAddr,
    pub auth: SocketAddr,
}

fn example(backend: SocketAddr, auth: SocketAddr) -> String {
    format!(
        r#"# The example config `rampart up` releases.
listeners: [{{ name: public, address: "127.0.0.1:8080" }}]
auth_providers:
  - {{ name: main, type: introspection, endpoint: "http://{auth}/introspect", timeout: 250ms, cache_ttl: 30s }}
upstreams:
  - name: echo
    endpoints: ["{backend}"]
    health_check: {{ path: /healthz, interval: 2s, timeout: 500ms }}
routes:
  - {{ name: secure, match: {{ path_prefix: /secure }}, upstream: echo, auth: main, timeout: 5s }}
  - {{ name: public, upstream: echo, timeout: 5s, retries: {{ attempts: 1, budget_percent: 10 }} }}
"#
    )
}

async fn token(data: &Path, role: &str) -> Result<String> {
    let bytes = tokio::fs::read(data.join("tokens.json"))
        .await
        .context("reading tokens.json")?;
    let list: Vec<serde_json::Value> =
        serde_json::from_slice(&bytes).context("parsing tokens.json")?;
    list.iter()
        .find(|t| t["role"] == role)
        .and_then(|t| t["token"].as_str())
        .map(str::to_owned)
        .with_context(|| format!("no {role} token in tokens.json"))
}

pub async fn run(o: UpOptions, shutdown: impl std::future::Future<Output = ()>) -> Result<()> {
    tokio::fs::create_dir_all(&o.data)
        .await
        .with_context(|| format!("creating {}", o.data.display()))?;
    let data = tokio::fs::canonicalize(&o.data)
        .await
        .unwrap_or(o.data.clone());
    let backend = rampart_demo::EchoServer::start_on(o.backend, "example-backend")
        .await
        .with_context(|| format!("starting the example backend on {}", o.backend))?;
    let auth = rampart_demo::auth::AuthServer::start_on(o.auth)
        .await
        .with_context(|| format!("starting the example auth server on {}", o.auth))?;
    let (tokens, _) = rampart_control::tokens::Tokens::load_or_create(&data)
        .await
        .context("tokens")?;
    // One gateway per environment: waves and gates need a fleet (and traffic) to mean anything,
    // so here a deploy goes to the environment at once; the pipeline, approvals, semantic checks,
    // rollback and fail-static all apply as usual.
    let control = rampart_control::spawn_with(
        &data,
        &["testing".into(), "production".into()],
        tokens,
        o.control,
        |c| {
            // Everything runs on this machine: local webhook receivers may subscribe.
            c.with_plan(None)
                .with_page_name("rampart (local) status")
                .with_private_webhooks(true)
        },
    )
    .await
    .map_err(anyhow::Error::msg)?;
    let url = control.url();
    let agents = start_agents(&o, &data, &url).await?;
    let op = ApiClient::new(&url, Some(token(&data, "operator").await?));
    let approver = ApiClient::new(&url, Some(token(&data, "approver").await?));
    add_components(&op).await?;
    release(&op, &approver, &example(backend.addr, auth.addr)).await?;

    let user = auth.mint_opaque("demo-user", "read", Duration::from_secs(86_400));
    print_ready(&o, &data, &url, &user, backend.addr, auth.addr);
    shutdown.await;
    println!("stopping");
    agents.stop().await;
    control.stop().await;
    Ok(())
}

/// A gateway agent in each environment, each holding its last-known-good under `data`.
async fn start_agents(o: &UpOptions, data: &Path, url: &str) -> Result<Agents> {
    let agent = token(data, "agent").await?;
    let mut agents = Agents::default();
    for (env, listen) in [("testing", o.testing_gateway), ("production", o.gateway)] {
        let opts = rampart_gateway::agent::AgentOptions {
            control: url.to_owned(),
            ca: None,
            token: Some(agent.clone()),
            environment: env.into(),
            instance: format!("{env}-1"),
            zone: "local".into(),
            state_dir: data.join(format!("gateway-{env}")),
            gateway: rampart_gateway::Options {
                listen: vec![("public".into(), listen)],
                admin: Some("127.0.0.1:0".parse().context("admin address")?),
                drain: Duration::from_secs(2),
                probe_secret: None,
            },
            watchdog: Default::default(),
        };
        agents.spawn(format!("({env})"), opts);
    }
    Ok(agents)
}

/// What the status page shows: the two routes as components with SLOs.
async fn add_components(op: &ApiClient) -> Result<()> {
    for (name, route, description) in [
        ("Public API", "public", "Unauthenticated endpoints"),
        ("Secure API", "secure", "Endpoints behind the auth server"),
    ] {
        let spec = rampart_api::ComponentSpec {
            description: description.into(),
            routes: vec![route.into()],
            environment: None,
            slo: 99.9,
        };
        op.put_component(name, &spec).await?;
    }
    Ok(())
}

/// The example through testing, then production (a second person approves, since a first
/// production config sets listeners and auth providers). A second run finds it there already.
async fn release(op: &ApiClient, approver: &ApiClient, document: &str) -> Result<()> {
    let version = op
        .push(document, "example config from rampart up")
        .await?
        .version
        .id;
    let envs = op.environments().await?;
    let within = Duration::from_secs(60);
    if envs[0].last_known_good.as_ref() != Some(&version) {
        op.deploy("testing", &version, None).await?;
        wait_lkg(op, "testing", &version, within).await?;
    }
    if envs[1].desired.as_ref() != Some(&version) {
        deploy_approved(op, approver, "production", &version).await?;
    }
    wait_lkg(op, "production", &version, within).await
}

fn print_ready(
    o: &UpOptions,
    data: &Path,
    url: &str,
    user: &str,
    backend: SocketAddr,
    auth: SocketAddr,
) {
    println!("rampart is up (data in {})", data.display());
    println!(
        "  gateway (production)  http://{}/            try: curl http://{}/hello",
        o.gateway, o.gateway
    );
    println!("  gateway (testing)     http://{}/", o.testing_gateway);
    println!(
        "  authenticated route   curl -H 'authorization: Bearer {user}' http://{}/secure",
        o.gateway
    );
    println!(
        "  control plane API     {url}/v1/environments   (tokens in {})",
        data.join("tokens.json").display()
    );
    println!("  status page           {url}/          (JSON: {url}/api/v2/summary.json)");
    println!("  OpenAPI               {url}/openapi.json");
    println!("  backend, auth server  http://{backend}  http://{auth}");
    println!("ready; Ctrl-C stops everything");
}
