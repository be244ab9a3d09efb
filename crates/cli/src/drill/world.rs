//! The drill's world: the services a gateway talks to (two backends, an auth server, a DNS server
//! that never answers), and one control plane with its fleet (a testing gateway and N production
//! gateways, all agents) and a pager receiver, everything on loopback.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use rampart_api::{ApiClient, ChannelKind, ChannelSpec, ComponentSpec, Event, VersionId};
use rampart_control::tokens::{Role, TokenEntry, Tokens};
use rampart_demo::EchoServer;
use rampart_demo::traffic::Traffic;
use rampart_gateway::watchdog::WatchdogSettings;
use rampart_rollout::Plan;

use crate::local::{Agents, deploy_approved, wait_lkg};

/// How long a version may take to become an environment's last-known-good.
const LKG_WITHIN: Duration = Duration::from_secs(30);

/// What the gateways talk to; shared by the defended run and the counterfactual.
pub struct Services {
    pub users: EchoServer,
    pub public: EchoServer,
    pub auth: rampart_demo::auth::AuthServer,
    pub dns: rampart_demo::dns::BlackHoleDns,
}

impl Services {
    pub async fn start() -> Result<Services> {
        Ok(Services {
            users: EchoServer::start("users-backend").await?,
            public: EchoServer::start("public-backend").await?,
            auth: rampart_demo::auth::AuthServer::start().await?,
            dns: rampart_demo::dns::BlackHoleDns::start().await?,
        })
    }

    /// The good config: the auth server by its address.
    pub fn good_config(&self) -> String {
        config(
            self.users.addr,
            self.public.addr,
            &format!("http://{}/introspect", self.auth.addr),
            None,
        )
    }

    /// The seed's change: the auth server moved to a name only the black-hole DNS "answers".
    pub fn seed_config(&self) -> String {
        config(
            self.users.addr,
            self.public.addr,
            "http://auth.blackhole.test:9000/introspect",
            Some(self.dns.addr),
        )
    }

    /// A token the auth server accepts for an hour.
    pub fn user_token(&self) -> String {
        self.auth
            .mint_opaque("drill-user", "read", Duration::from_secs(3600))
    }
}

fn config(
    users: SocketAddr,
    public: SocketAddr,
    auth_endpoint: &str,
    dns: Option<SocketAddr>,
) -> String {
    let resolver = dns
        .map(|d| format!("resolver: {{ nameservers: [\"{d}\"], timeout: 100ms, attempts: 1 }}\n"))
        .unwrap_or_default();
    format!(
        r#"listeners: [{{ name: public, address: "127.0.0.1:8080" }}]
{resolver}auth_providers: [{{ name: main, type: introspection, endpoint: "{auth_endpoint}", timeout: 250ms }}]
upstreams:
  - {{ name: users, endpoints: ["{users}"] }}
  - {{ name: public, endpoints: ["{public}"] }}
routes:
  - {{ name: users, match: {{ path_prefix: /users }}, upstream: users, auth: main, timeout: 2s }}
  - {{ name: public, match: {{ path_prefix: /public }}, upstream: public, timeout: 2s }}
"#
    )
}

/// The drill's control plane: in this process on SQLite, or three replica processes on
/// PostgreSQL (`--replicas`).
pub enum Control {
    InProcess(rampart_control::Running),
    Replicas(Box<super::replicas::Replicas>),
}

impl Control {
    /// The URL clients and agents are given (every replica's, with `--replicas`).
    fn all(&self) -> String {
        match self {
            Control::InProcess(r) => r.url(),
            Control::Replicas(r) => r.all(),
        }
    }
}

/// One control plane and its fleet; traffic once started.
pub struct World {
    pub control: Control,
    pub op: ApiClient,
    pub approver: ApiClient,
    agents: Agents,
    pub production: Vec<SocketAddr>,
    pub traffic: Option<Traffic>,
    pub pager: rampart_demo::receiver::Receiver,
    pub dir: PathBuf,
}

const OPERATOR: &str = "drill-operator";
const APPROVER: &str = "drill-approver";
const AGENT: &str = "drill-agent";
const PAGE_NAME: &str = "Acme API status (drill)";

impl World {
    /// Starts a control plane (its data in a temporary folder), a pager channel, two status-page
    /// components, and `gateways` production agents plus one testing agent.
    pub async fn start(
        name: &str,
        gateways: usize,
        plan: Option<Plan>,
        watchdog: WatchdogSettings,
        replicas: bool,
    ) -> Result<World> {
        let dir = std::env::temp_dir().join(format!(
            "rampart-drill-{name}-{}-{}",
            std::process::id(),
            fastrand::u32(..)
        ));
        tokio::fs::create_dir_all(&dir).await?;
        let token = TokenEntry::new;
        let entries = [
            token("olivia", Role::Operator, OPERATOR),
            token("amir", Role::Approver, APPROVER),
            token("agent", Role::Agent, AGENT),
        ];
        let control = if replicas {
            let flags = super::replicas::ReplicaFlags {
                environments: "testing,production",
                page_name: PAGE_NAME,
                incident_quiet: "3s",
                tick: "200ms",
            };
            Control::Replicas(Box::new(
                super::replicas::Replicas::start(&dir, &entries, flags).await?,
            ))
        } else {
            let tokens = Tokens::from_entries(&entries);
            let plan = plan.clone();
            Control::InProcess(
                rampart_control::spawn_with(
                    &dir,
                    &["testing".into(), "production".into()],
                    tokens,
                    "127.0.0.1:0".parse()?,
                    move |c| {
                        c.with_plan(plan)
                            .with_tick(Duration::from_millis(200))
                            .with_incident_quiet(Duration::from_secs(3))
                            .with_page_name(PAGE_NAME)
                    },
                )
                .await
                .map_err(anyhow::Error::msg)?,
            )
        };
        let url = control.all();
        let op = ApiClient::new(&url, Some(OPERATOR.into()));
        let approver = ApiClient::new(&url, Some(APPROVER.into()));
        // Replicas take the plan as production's rollout policy (the same waves and gates).
        if let (Control::Replicas(_), Some(plan)) = (&control, &plan) {
            let policy = rampart_rollout::policy::PolicyDocument::from_plan(plan).to_yaml();
            op.set_policy("production", &policy).await?;
        }
        let pager = rampart_demo::receiver::Receiver::start().await?;
        pager.log_to(dir.join("pager.log"));
        watch(&op, &pager).await?;
        let mut agents = Agents::default();
        let mut production = vec![];
        for i in 0..=gateways {
            let (env, instance) = if i == 0 {
                ("testing", "t0".to_owned())
            } else {
                ("production", format!("p{}", i - 1))
            };
            let listen = rampart_demo::ports::free_loopback_addr()?;
            if i > 0 {
                production.push(listen);
            }
            let opts = rampart_gateway::agent::AgentOptions {
                control: url.clone(),
                ca: None,
                token: Some(AGENT.into()),
                environment: env.into(),
                instance,
                zone: "z1".into(),
                state_dir: dir.join(format!("gw-{i}")),
                gateway: rampart_gateway::Options {
                    listen: vec![("public".into(), listen)],
                    admin: Some("127.0.0.1:0".parse()?),
                    drain: Duration::from_millis(500),
                    probe_secret: None,
                },
                watchdog: watchdog.clone(),
            };
            agents.spawn(format!("{i}"), opts);
        }
        Ok(World {
            control,
            op,
            approver,
            agents,
            production,
            traffic: None,
            pager,
            dir,
        })
    }

    /// v1 through testing and production (a second person approves the first production config).
    pub async fn good_version(&self, services: &Services) -> Result<VersionId> {
        let v1 = self
            .op
            .push(&services.good_config(), "v1: users and public APIs")
            .await?
            .version
            .id;
        self.op.deploy("testing", &v1, None).await?;
        wait_lkg(&self.op, "testing", &v1, LKG_WITHIN).await?;
        deploy_approved(&self.op, &self.approver, "production", &v1).await?;
        wait_lkg(&self.op, "production", &v1, LKG_WITHIN).await?;
        Ok(v1)
    }

    /// A URL of the control plane a browser would open (its status page).
    pub fn url(&self) -> String {
        match &self.control {
            Control::InProcess(r) => r.url(),
            Control::Replicas(r) => r.one(),
        }
    }

    /// With `--replicas`: kills the leading replica with SIGKILL and waits for another to
    /// lead; returns who was killed, who leads now and how long that took.
    pub async fn kill_leader(&self) -> Result<Option<(String, String, Duration)>> {
        let Control::Replicas(r) = &self.control else {
            return Ok(None);
        };
        let killed = r.kill_leader().await?;
        let at = std::time::Instant::now();
        let next = r
            .leader(Duration::from_secs(15))
            .await
            .map(|i| format!("r{i}"))
            .unwrap_or_else(|| "none".into());
        Ok(Some((killed, next, at.elapsed())))
    }

    /// Starts steady traffic through every production gateway, for at most `cap`.
    pub fn start_traffic(&mut self, token: &str, cap: Duration) {
        self.traffic = Some(Traffic::start(&self.production, token, cap));
    }

    /// Every traffic sample so far.
    pub fn samples(&self) -> Vec<rampart_demo::traffic::Sample> {
        self.traffic
            .as_ref()
            .map(Traffic::samples)
            .unwrap_or_default()
    }

    /// Every event the control plane recorded, oldest first.
    pub async fn events(&self) -> Result<Vec<Event>> {
        let mut all = vec![];
        let mut after = 0;
        loop {
            let page = self.op.events(after).await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            all.extend(page);
        }
        Ok(all)
    }

    /// The instances of production that run `version` now.
    pub async fn production_running(&self, version: &VersionId) -> Result<Vec<String>> {
        let envs = self.op.environments().await?;
        Ok(envs
            .iter()
            .filter(|e| e.name == "production")
            .flat_map(|e| &e.instances)
            .filter(|i| i.applied.as_ref() == Some(version))
            .map(|i| i.id.clone())
            .collect())
    }

    /// Whether every production instance runs `version` now.
    pub async fn production_all_on(&self, version: &VersionId) -> bool {
        self.op.environments().await.is_ok_and(|envs| {
            envs.iter().any(|e| {
                e.name == "production"
                    && e.instances
                        .iter()
                        .all(|i| i.applied.as_ref() == Some(version))
            })
        })
    }

    /// How many events with this action (`trigger`, `resolve`) the pager received.
    pub fn paged(&self, action: &str) -> usize {
        self.pager
            .received()
            .iter()
            .filter(|r| r.body["event_action"] == action)
            .count()
    }

    pub async fn shutdown(mut self) {
        if let Some(t) = self.traffic.take() {
            t.stop().await;
        }
        self.agents.stop().await;
        match self.control {
            Control::InProcess(r) => r.kill().await,
            // Killed (and PostgreSQL with them) on drop.
            Control::Replicas(r) => drop(r),
        }
        let _ = tokio::fs::remove_dir_all(&self.dir).await;
    }
}

/// Where the world's alerts go (the pager), and what its status page shows (two components).
async fn watch(op: &ApiClient, pager: &rampart_demo::receiver::Receiver) -> Result<()> {
    op.put_channel(
        "pager",
        &ChannelSpec {
            kind: ChannelKind::Pagerduty,
            url: pager.url(),
            routing_key: Some("drill-routing-key".into()),
            secret: None,
            to: vec![],
            from: None,
            severities: vec![],
        },
    )
    .await?;
    for (component, route) in [("Users API", "users"), ("Public API", "public")] {
        op.put_component(
            component,
            &ComponentSpec {
                description: format!("/{route}"),
                routes: vec![route.into()],
                environment: None,
                // With a minute of history, the burn-rate windows hold the whole drill; 99.5 %
                // lets the alerts clear within seconds of good traffic after the rollback.
                slo: 99.5,
            },
        )
        .await?;
    }
    Ok(())
}
