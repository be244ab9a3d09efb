//! `rampart drill seed-2013`: the outage replayed on loopback, step by step, with every
//! defence measured. A control plane (temporary SQLite), an auth server, two backends, a
//! black-hole DNS server, a testing gateway and five production gateways (agents), a pager
//! receiver and steady load. The seed's change — the auth server moved to a name only the
//! black-hole DNS "answers" — meets validation, the pipeline, a canary release with gates,
//! automatic rollback, an incident that pages, shows on the status page and resolves, and a
//! postmortem written from the events. `--counterfactual` then pushes the same change to every
//! gateway at once with the defences off, for comparison.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rampart_api::{ApiClient, ChannelKind, ChannelSpec, ComponentSpec, Event, IncidentStatus};
use rampart_control::tokens::{Role, TokenEntry, Tokens};
use rampart_gateway::watchdog::WatchdogSettings;
use rampart_model::version::short;
use rampart_rollout::Plan;
use rampart_testkit::EchoServer;

pub struct DrillOptions {
    pub keep: bool,
    pub counterfactual: bool,
    /// Where the postmortem (Markdown; HTML beside it) is written.
    pub postmortem: PathBuf,
    pub gateways: usize,
}

/// The window over which the share of failed requests is measured, from the bad deploy.
const MEASURE: Duration = Duration::from_secs(60);

/// The seed incident's timeline, as its report gives it (local time, GMT+3), with the offset
/// from the configuration push.
const SEED_TIMELINE: [(&str, &str, &str); 7] = [
    (
        "7:46 AM",
        "+0",
        "configuration push begins (no testing environment first)",
    ),
    (
        "9:04 AM",
        "+1h18m",
        "outage: auth lookups block forever, threads run out",
    ),
    ("12:05", "+4h19m", "pagers alert teams"),
    ("4:35 PM", "+8h49m", "configuration rollback fails"),
    ("8:02 PM", "+12h16m", "configuration rollback succeeds"),
    ("10:24 PM", "+14h38m", "servers restarted gradually"),
    ("11:55 PM", "+16h09m", "100% of traffic back online"),
];

#[derive(Clone, Copy)]
struct Sample {
    at: Instant,
    gateway: usize,
    users: bool,
    ok: bool,
    latency: Duration,
}

/// Steady load on every production gateway: `/users/…` (authenticated) and `/public/…`, taking
/// turns, one worker per gateway. Stops when `stop` is set, or after `cap`.
fn start_load(
    gateways: Vec<SocketAddr>,
    token: String,
    samples: Arc<Mutex<Vec<Sample>>>,
    stop: Arc<AtomicBool>,
    cap: Duration,
) -> Vec<tokio::task::JoinHandle<()>> {
    gateways
        .into_iter()
        .enumerate()
        .map(|(g, addr)| {
            let (token, samples, stop) = (token.clone(), samples.clone(), stop.clone());
            tokio::spawn(async move {
                let client = rampart_testkit::client::http1();
                let began = Instant::now();
                let mut users = false;
                while !stop.load(Ordering::Relaxed) && began.elapsed() < cap {
                    users = !users;
                    let path = if users { "/users/me" } else { "/public/ping" };
                    let req = http::Request::get(format!("http://{addr}{path}"))
                        .header("authorization", format!("Bearer {token}"))
                        .body(http_body_util::Full::new(bytes::Bytes::new()));
                    let Ok(req) = req else { break };
                    let start = Instant::now();
                    let ok = rampart_testkit::client::call(&client, req, Duration::from_secs(5))
                        .await
                        .is_ok_and(|a| a.status.is_success());
                    let s = Sample {
                        at: start,
                        gateway: g,
                        users,
                        ok,
                        latency: start.elapsed(),
                    };
                    samples.lock().unwrap_or_else(|p| p.into_inner()).push(s);
                    tokio::time::sleep(Duration::from_millis(3)).await;
                }
            })
        })
        .collect()
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

fn free_addr() -> Result<SocketAddr> {
    Ok(rampart_testkit::ports::free_loopback_addr()?)
}

struct Check {
    what: String,
    held: bool,
}

struct Drill {
    started: Instant,
    checks: Vec<Check>,
}

impl Drill {
    fn step(&self, n: usize, total: usize, title: &str) {
        println!(
            "\n[{n}/{total}] {title}   (t+{:.1} s)",
            self.started.elapsed().as_secs_f64()
        );
    }

    fn check(&mut self, held: bool, what: impl Into<String>) {
        let what = what.into();
        println!("      {} {what}", if held { "✔" } else { "✘ FAILED:" });
        self.checks.push(Check { what, held });
    }

    fn note(&self, text: impl AsRef<str>) {
        println!("      · {}", text.as_ref());
    }
}

async fn wait_for<F: AsyncFnMut() -> bool>(within: Duration, mut f: F) -> bool {
    let start = Instant::now();
    while start.elapsed() < within {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

fn event_secs(e: &Event, origin: u64) -> f64 {
    parse_ms(&e.at).saturating_sub(origin) as f64 / 1000.0
}

fn parse_ms(at: &str) -> u64 {
    rampart_control::store::parse_ms(at).unwrap_or(0)
}

/// What the load saw between two instants.
struct Traffic {
    total: usize,
    failed: usize,
}

fn traffic(samples: &[Sample], from: Instant, to: Instant) -> Traffic {
    let window: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.at >= from && s.at <= to)
        .collect();
    Traffic {
        total: window.len(),
        failed: window.iter().filter(|s| !s.ok).count(),
    }
}

/// One world: a control plane and its fleet under load.
struct World {
    control: rampart_control::Running,
    op: ApiClient,
    approver: ApiClient,
    agents: Vec<(
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    )>,
    production: Vec<SocketAddr>,
    samples: Arc<Mutex<Vec<Sample>>>,
    stop: Arc<AtomicBool>,
    load: Vec<tokio::task::JoinHandle<()>>,
    pager: rampart_testkit::receiver::Receiver,
    dir: PathBuf,
}

struct Services {
    users: EchoServer,
    public: EchoServer,
    auth: rampart_testkit::auth::AuthServer,
    dns: rampart_testkit::dns::BlackHoleDns,
}

async fn world(
    name: &str,
    gateways: usize,
    plan: Option<Plan>,
    watchdog: WatchdogSettings,
) -> Result<World> {
    let dir = std::env::temp_dir().join(format!(
        "rampart-drill-{name}-{}-{}",
        std::process::id(),
        fastrand::u32(..)
    ));
    tokio::fs::create_dir_all(&dir).await?;
    let tokens = Tokens::from_entries(&[
        TokenEntry {
            name: "olivia".into(),
            role: Role::Operator,
            token: "drill-operator".into(),
        },
        TokenEntry {
            name: "amir".into(),
            role: Role::Approver,
            token: "drill-approver".into(),
        },
        TokenEntry {
            name: "agent".into(),
            role: Role::Viewer,
            token: "drill-agent".into(),
        },
    ]);
    let control = rampart_control::spawn_with(
        &dir,
        &["testing".into(), "production".into()],
        tokens,
        "127.0.0.1:0".parse()?,
        move |c| {
            c.with_plan(plan)
                .with_tick(Duration::from_millis(200))
                .with_incident_quiet(Duration::from_secs(3))
                .with_page_name("Acme API status (drill)")
        },
    )
    .await
    .map_err(anyhow::Error::msg)?;
    let url = control.url();
    let op = ApiClient::new(&url, Some("drill-operator".into()));
    let approver = ApiClient::new(&url, Some("drill-approver".into()));
    let pager = rampart_testkit::receiver::Receiver::start().await?;
    pager.log_to(dir.join("pager.log"));
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
    let mut agents = vec![];
    let mut production = vec![];
    for i in 0..=gateways {
        let (env, instance) = if i == 0 {
            ("testing", "t0".to_owned())
        } else {
            ("production", format!("p{}", i - 1))
        };
        let listen = free_addr()?;
        if i > 0 {
            production.push(listen);
        }
        let opts = rampart_gateway::agent::AgentOptions {
            control: url.clone(),
            token: Some("drill-agent".into()),
            environment: env.into(),
            instance,
            zone: "z1".into(),
            state_dir: dir.join(format!("gw-{i}")),
            gateway: rampart_gateway::Options {
                listen: vec![("public".into(), listen)],
                admin: Some("127.0.0.1:0".parse()?),
                drain: Duration::from_millis(500),
            },
            watchdog: watchdog.clone(),
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = rampart_gateway::agent::run(opts, async move {
                let _ = stopped.await;
            })
            .await;
        });
        agents.push((stop, task));
    }
    Ok(World {
        control,
        op,
        approver,
        agents,
        production,
        samples: Arc::default(),
        stop: Arc::new(AtomicBool::new(false)),
        load: vec![],
        pager,
        dir,
    })
}

impl World {
    /// v1 through testing and production (a second person approves the first production config).
    async fn good_version(&self, services: &Services) -> Result<String> {
        let doc = config(
            services.users.addr,
            services.public.addr,
            &format!("http://{}/introspect", services.auth.addr),
            None,
        );
        let v1 = self
            .op
            .push(&doc, "v1: users and public APIs")
            .await?
            .version
            .id;
        self.op.deploy("testing", &v1, None).await?;
        self.wait_lkg("testing", &v1).await?;
        match self.op.deploy("production", &v1, None).await {
            Ok(_) => {}
            Err(rampart_api::ClientError::Api { code, .. }) if code == "approval_required" => {
                let id = self
                    .op
                    .approvals()
                    .await?
                    .into_iter()
                    .find(|a| a.version == v1 && a.approved_by.is_none())
                    .map(|a| a.id)
                    .context("no approval request")?;
                self.approver.approve(id).await?;
            }
            Err(e) => return Err(e.into()),
        }
        self.wait_lkg("production", &v1).await?;
        Ok(v1)
    }

    async fn wait_lkg(&self, env: &str, version: &str) -> Result<()> {
        let ok = wait_for(Duration::from_secs(30), async || {
            self.op.environments().await.is_ok_and(|envs| {
                envs.iter()
                    .any(|e| e.name == env && e.last_known_good.as_deref() == Some(version))
            })
        })
        .await;
        if !ok {
            bail!("{env} did not complete {} within 30 s", short(version));
        }
        Ok(())
    }

    fn samples(&self) -> Vec<Sample> {
        self.samples
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    async fn events(&self) -> Result<Vec<Event>> {
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

    async fn shutdown(self) {
        self.stop.store(true, Ordering::Relaxed);
        for l in self.load {
            let _ = l.await;
        }
        for (stop, task) in self.agents {
            let _ = stop.send(());
            let _ = task.await;
        }
        self.control.kill().await;
        let _ = tokio::fs::remove_dir_all(&self.dir).await;
    }
}

pub async fn run(o: DrillOptions, shutdown: impl std::future::Future<Output = ()>) -> Result<bool> {
    let total = 8;
    let mut d = Drill {
        started: Instant::now(),
        checks: vec![],
    };
    println!(
        "rampart drill seed-2013 — the seed outage replayed on loopback, with rampart's defences"
    );
    let services = Services {
        users: EchoServer::start("users-backend").await?,
        public: EchoServer::start("public-backend").await?,
        auth: rampart_testkit::auth::AuthServer::start().await?,
        dns: rampart_testkit::dns::BlackHoleDns::start().await?,
    };
    let w = world(
        "defended",
        o.gateways,
        Some(Plan::short(1_000)),
        WatchdogSettings::quiet(),
    )
    .await?;
    let url = w.control.url();
    println!(
        "setup: control plane {url}, auth server {}, backends {} and {}, black-hole DNS {}, 1 testing + {} production gateways, pager receiver {}",
        services.auth.addr,
        services.users.addr,
        services.public.addr,
        services.dns.addr,
        o.gateways,
        w.pager.url()
    );

    d.step(
        1,
        total,
        "a good version goes through testing, then production",
    );
    let v1 = w.good_version(&services).await?;
    d.note(format!("v1 {} runs on every gateway", short(&v1)));
    let user = services
        .auth
        .mint_opaque("drill-user", "read", Duration::from_secs(3600));
    let mut w = w;
    w.load = start_load(
        w.production.clone(),
        user,
        w.samples.clone(),
        w.stop.clone(),
        Duration::from_secs(180),
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let warm = w.samples();
    d.note(format!(
        "steady load: {} requests in 2 s across {} gateways, {} failed",
        warm.len(),
        o.gateways,
        warm.iter().filter(|s| !s.ok).count()
    ));

    d.step(2, total, "the seed's change: the auth server moves to a name only a black-hole DNS server \"answers\"");
    let bad_doc = config(
        services.users.addr,
        services.public.addr,
        "http://auth.blackhole.test:9000/introspect",
        Some(services.dns.addr),
    );
    match w.op.push(&bad_doc, "v2: new auth server").await {
        Err(e) => d.check(true, format!("validation refused the push: {e}")),
        Ok(_) => d.check(
            false,
            "validation accepted an auth server that does not resolve",
        ),
    }

    d.step(3, total, "straight to production, as in 2013");
    let v2 = w
        .approver
        .push_with(
            &bad_doc,
            "v2: new auth server",
            Some("drill: replaying the seed change".into()),
        )
        .await?
        .version
        .id;
    d.note(format!(
        "an approver stores it anyway with a recorded break-glass reason: {}",
        short(&v2)
    ));
    match w.op.deploy("production", &v2, None).await {
        Err(rampart_api::ClientError::Api {
            status: 409,
            message,
            ..
        }) => d.check(true, format!("production refused it: {message}")),
        other => d.check(
            false,
            format!("production did not refuse an untested version: {other:?}"),
        ),
    }

    d.step(
        4,
        total,
        "break-glass: the change goes to production anyway — as a release in waves",
    );
    let pushed_at = Instant::now();
    w.approver
        .deploy(
            "production",
            &v2,
            Some("drill: replaying the seed change".into()),
        )
        .await?;
    let ever_bad: Arc<Mutex<HashSet<String>>> = Arc::default();
    let mut canary_at: Option<Instant> = None;
    let mut rolled_back_at: Option<Instant> = None;
    let watched = wait_for(Duration::from_secs(30), async || {
        if let Ok(envs) = w.op.environments().await
            && let Some(prod) = envs.iter().find(|e| e.name == "production")
        {
            for i in &prod.instances {
                if i.applied.as_deref() == Some(v2.as_str())
                    && ever_bad
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(i.id.clone())
                {
                    canary_at.get_or_insert_with(Instant::now);
                    println!(
                        "      · {} applied v2 (t+{:.1} s)",
                        i.id,
                        d.started.elapsed().as_secs_f64()
                    );
                }
            }
            let back = prod
                .instances
                .iter()
                .all(|i| i.applied.as_deref() == Some(v1.as_str()));
            let rolled =
                w.op.releases()
                    .await
                    .is_ok_and(|r| r.first().is_some_and(|r| r.state == "rolled_back"));
            if rolled {
                rolled_back_at.get_or_insert_with(Instant::now);
            }
            return canary_at.is_some() && rolled && back;
        }
        false
    })
    .await;
    let recovered_at = Instant::now();
    let bad = ever_bad.lock().unwrap_or_else(|p| p.into_inner()).clone();
    d.check(
        bad.len() == 1,
        format!(
            "only the canary ever ran v2 ({} of {} gateways: {:?})",
            bad.len(),
            o.gateways,
            bad
        ),
    );
    let canary: Option<usize> = bad
        .iter()
        .next()
        .and_then(|id| id.trim_start_matches('p').parse().ok());
    let samples = w.samples();
    if let (Some(c), Some(from)) = (canary, canary_at) {
        let window: Vec<&Sample> = samples
            .iter()
            .filter(|s| s.gateway == c && s.at >= from && rolled_back_at.is_none_or(|r| s.at <= r))
            .collect();
        let failed: Vec<&Sample> = window
            .iter()
            .copied()
            .filter(|s| s.users && !s.ok)
            .collect();
        let slowest = failed.iter().map(|s| s.latency).max().unwrap_or_default();
        d.check(
            slowest < Duration::from_secs(1),
            format!(
                "the canary's auth routes failed fast: {} failures, the slowest answered in {} ms (deadline 250 ms + DNS 100 ms); nothing waited forever",
                failed.len(),
                slowest.as_millis()
            ),
        );
        let public_failed = window.iter().filter(|s| !s.users && !s.ok).count();
        let public_total = window.iter().filter(|s| !s.users).count();
        d.check(
            public_failed == 0,
            format!("its other routes kept serving: {public_failed} of {public_total} /public requests failed meanwhile"),
        );
    }

    d.step(5, total, "the gate fails and rampart rolls back by itself");
    // The control plane records the fleet whole again on its next evaluation (every second).
    let converged_again = |events: &[Event]| {
        events
            .iter()
            .position(|e| e.kind == "release.rolled_back")
            .is_some_and(|r| {
                events[r..].iter().any(|e| {
                    e.kind == "environment.converged"
                        && e.subject == "production"
                        && e.data.get("version").and_then(|v| v.as_str()) == Some(v1.as_str())
                })
            })
    };
    wait_for(Duration::from_secs(5), async || {
        w.events().await.is_ok_and(|e| converged_again(&e))
    })
    .await;
    let events = w.events().await?;
    let gate = events.iter().find(|e| {
        e.kind == "gate.verdict"
            && e.data.pointer("/verdict/verdict").and_then(|v| v.as_str()) == Some("fail")
    });
    match gate {
        Some(g) => d.check(
            true,
            format!(
                "gate failed: {} — {}",
                g.data
                    .pointer("/verdict/gate")
                    .and_then(|v| v.as_str())
                    .unwrap_or("?"),
                g.data
                    .pointer("/verdict/detail")
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
            ),
        ),
        None => d.check(false, "no gate failed"),
    }
    let auto = events
        .iter()
        .any(|e| e.kind == "release.rolled_back" && e.actor == "control");
    d.check(
        auto && watched,
        "automatic rollback: every production gateway is back on v1",
    );
    let first_bad = events.iter().find(|e| {
        e.kind == "instance.applied"
            && e.data.get("version").and_then(|v| v.as_str()) == Some(v2.as_str())
    });
    let rolled = events.iter().position(|e| e.kind == "release.rolled_back");
    let recovered = rolled.and_then(|r| {
        events[r..].iter().find(|e| {
            e.kind == "environment.converged"
                && e.subject == "production"
                && e.data.get("version").and_then(|v| v.as_str()) == Some(v1.as_str())
        })
    });
    let rollback_secs = match (first_bad, recovered) {
        (Some(a), Some(b)) => Some(parse_ms(&b.at).saturating_sub(parse_ms(&a.at)) as f64 / 1000.0),
        _ => None,
    };
    d.check(
        rollback_secs.is_some_and(|s| s < 10.0),
        format!(
            "from the bad apply to full rollback: {} (target < 10 s)",
            rollback_secs.map_or("not measured".into(), |s| format!("{s:.1} s"))
        ),
    );

    d.step(
        6,
        total,
        "an incident opens by itself, pages, shows on the status page, and resolves",
    );
    let incident = wait_for(Duration::from_secs(10), async || {
        w.op.incidents().await.is_ok_and(|l| !l.is_empty())
    })
    .await;
    let incident = if incident {
        w.op.incidents().await?.into_iter().last()
    } else {
        None
    };
    match &incident {
        Some(i) => d.check(true, format!("incident {} opened: {}", i.id, i.title)),
        None => d.check(false, "no incident opened"),
    }
    let paged = wait_for(Duration::from_secs(10), async || {
        w.pager
            .received()
            .iter()
            .any(|r| r.body["event_action"] == "trigger")
    })
    .await;
    d.check(
        paged,
        format!(
            "paged once through the PagerDuty-format receiver ({} trigger)",
            w.pager
                .received()
                .iter()
                .filter(|r| r.body["event_action"] == "trigger")
                .count()
        ),
    );
    // The page is read into a snapshot at most once a second: give it a few.
    let unresolved = format!("{url}/api/v2/incidents/unresolved.json");
    let shown = wait_for(Duration::from_secs(5), async || {
        rampart_testkit::client::get(&rampart_testkit::client::http1(), &unresolved)
            .await
            .ok()
            .and_then(|a| serde_json::from_slice::<serde_json::Value>(&a.body).ok())
            .is_some_and(|v| {
                v["incidents"].as_array().is_some_and(|l| {
                    l.iter().any(|i| {
                        i["name"]
                            .as_str()
                            .is_some_and(|n| n.contains("Automatic rollback"))
                    })
                })
            })
    })
    .await;
    d.check(
        shown,
        format!("on the status page: {url}/ and {url}/api/v2/summary.json"),
    );
    let id = incident.as_ref().map(|i| i.id).unwrap_or(0);
    print!("      · waiting for the error budget alerts to clear and the quiet period (3 s)");
    let resolved = wait_for(Duration::from_secs(90), async || {
        print!(".");
        let _ = std::io::Write::flush(&mut std::io::stdout());
        tokio::time::sleep(Duration::from_millis(450)).await;
        w.op.incident(id)
            .await
            .is_ok_and(|i| i.status == IncidentStatus::Resolved)
    })
    .await;
    println!();
    d.check(
        resolved,
        "the incident resolved itself: identified → monitoring → resolved",
    );
    let page_resolved = wait_for(Duration::from_secs(10), async || {
        w.pager
            .received()
            .iter()
            .any(|r| r.body["event_action"] == "resolve")
    })
    .await;
    d.check(
        page_resolved,
        "the page was resolved with the same dedup_key",
    );
    // The share of failed requests is measured over a fixed window — the minute after the bad
    // deploy — so it does not depend on how long the rest of the drill takes.
    if pushed_at.elapsed() < MEASURE {
        print!("      · load continues until a minute after the bad deploy");
        while pushed_at.elapsed() < MEASURE {
            print!(".");
            let _ = std::io::Write::flush(&mut std::io::stdout());
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        println!();
    }
    let ended = Instant::now();
    w.stop.store(true, Ordering::Relaxed);
    for l in std::mem::take(&mut w.load) {
        let _ = l.await;
    }

    d.step(7, total, "the postmortem writes itself");
    let pm = w.op.postmortem(id, "md").await?;
    let sections = [
        "## Issue Summary",
        "## Timeline",
        "## Root Cause",
        "## Resolution and recovery",
        "## Corrective and preventive measures",
    ];
    let complete = sections.iter().all(|s| pm.text.contains(s));
    tokio::fs::write(&o.postmortem, &pm.text)
        .await
        .with_context(|| format!("writing {}", o.postmortem.display()))?;
    let html_path = o.postmortem.with_extension("html");
    let html = w.op.postmortem(id, "html").await?;
    tokio::fs::write(&html_path, &html.text).await?;
    d.check(
        complete,
        format!(
            "postmortem with all five sections: {} (and {})",
            o.postmortem.display(),
            html_path.display()
        ),
    );

    d.step(8, total, "the seed's timeline beside this run's");
    let origin = events
        .iter()
        .find(|e| e.kind == "version.created" && e.subject == v2)
        .map(|e| parse_ms(&e.at))
        .unwrap_or(0);
    let all_events = w.events().await?;
    let find = |pred: &dyn Fn(&Event) -> bool| {
        all_events
            .iter()
            .find(|e| pred(e))
            .map(|e| event_secs(e, origin))
    };
    let measured: Vec<(&str, Option<f64>)> = vec![
        (
            "change pushed (validation refused it; stored by break-glass)",
            Some(0.0),
        ),
        (
            "canary applies it; its auth routes fail fast",
            first_bad.map(|e| event_secs(e, origin)),
        ),
        (
            "gate fails; automatic rollback",
            find(&|e| e.kind == "release.rolled_back"),
        ),
        (
            "pager alerted",
            find(&|e| e.kind == "notification.delivered" && e.data["action"] == "trigger"),
        ),
        (
            "every gateway back on v1",
            recovered.map(|e| event_secs(e, origin)),
        ),
        (
            "incident resolved",
            find(&|e| e.kind == "incident.resolved"),
        ),
    ];
    println!(
        "      {:<10} {:<9} {:<56} | rampart, this run",
        "2013", "offset", ""
    );
    let rows = SEED_TIMELINE.len().max(measured.len());
    for r in 0..rows {
        let left = SEED_TIMELINE
            .get(r)
            .map(|(t, off, what)| format!("{t:<10} {off:<9} {what:<56}"))
            .unwrap_or_else(|| format!("{:<77}", ""));
        let right = measured
            .get(r)
            .map(|(what, at)| {
                format!(
                    "{} {what}",
                    at.map_or("   —   ".into(), |s| format!("+{s:>5.1} s"))
                )
            })
            .unwrap_or_default();
        println!("      {left} | {right}");
    }

    let samples = w.samples();
    let minute = traffic(&samples, pushed_at, pushed_at + MEASURE);
    // The bad version's window: from the deploy until every gateway was back on v1.
    let bad_window = traffic(&samples, pushed_at, recovered_at);
    let share = minute.failed as f64 * 100.0 / minute.total.max(1) as f64;
    let all = traffic(&samples, d.started, ended);
    println!();
    d.check(
        share < 1.0,
        format!(
            "failed requests: {} of {} in the minute after the bad deploy ({share:.3} %, target < 1 %); {} of {} from the bad deploy to full rollback; {} of {} in the whole drill",
            minute.failed, minute.total, bad_window.failed, bad_window.total, all.failed, all.total
        ),
    );

    let counterfactual = if o.counterfactual {
        Some(counterfactual_run(&services, o.gateways).await?)
    } else {
        None
    };
    if let Some(c) = &counterfactual {
        println!("\nwith and without the defences (same change, same load):");
        println!(
            "      {:<34} {:>16} {:>16}",
            "from the bad deploy to recovery", "defended", "counterfactual"
        );
        println!(
            "      {:<34} {:>16} {:>16}",
            "gateways that ran the bad version",
            format!("{} of {}", bad.len(), o.gateways),
            format!("{} of {}", c.exposed, o.gateways)
        );
        println!(
            "      {:<34} {:>16} {:>16}",
            "failed requests (share)",
            format!(
                "{} ({:.2} %)",
                bad_window.failed,
                bad_window.failed as f64 * 100.0 / bad_window.total.max(1) as f64
            ),
            format!(
                "{} ({:.2} %)",
                c.failed,
                c.failed as f64 * 100.0 / c.total.max(1) as f64
            )
        );
        println!(
            "      {:<34} {:>16} {:>16}",
            "time to recover",
            rollback_secs.map_or("—".into(), |s| format!("{s:.1} s")),
            c.recover_secs
                .map_or("—".into(), |s| format!("{s:.1} s (manual)"))
        );
        println!(
            "      (counterfactual: break-glass past validation and the pipeline, no waves or gates, agent watchdog off;"
        );
        println!(
            "       recovery is an operator's `rampart rollback` as soon as the SLO page fires — in 2013 it took 11 hours)"
        );
    }

    let held = d.checks.iter().all(|c| c.held);
    println!(
        "\n{} — {} of {} checks held, in {:.1} s",
        if held {
            "every defence held"
        } else {
            "SOME DEFENCES DID NOT HOLD"
        },
        d.checks.iter().filter(|c| c.held).count(),
        d.checks.len(),
        d.started.elapsed().as_secs_f64()
    );
    for c in d.checks.iter().filter(|c| !c.held) {
        println!("  ✘ {}", c.what);
    }
    if o.keep {
        println!(
            "\n--keep: the status page stays at {url}/ and the pager's log at {}; Ctrl-C ends",
            w.dir.join("pager.log").display()
        );
        shutdown.await;
    }
    w.shutdown().await;
    Ok(held)
}

struct Counterfactual {
    exposed: usize,
    failed: usize,
    total: usize,
    recover_secs: Option<f64>,
}

/// The same change with the defences off: every gateway at once, no gates, no watchdog; an
/// operator rolls back when the SLO page fires.
async fn counterfactual_run(services: &Services, gateways: usize) -> Result<Counterfactual> {
    println!("\ncounterfactual: the same change, all at once, gates and watchdog off");
    let off = WatchdogSettings {
        window: Duration::from_secs(1),
        floor: 1.0,
        ..Default::default()
    };
    let mut w = world("counterfactual", gateways, None, off).await?;
    let v1 = w.good_version(services).await?;
    let user = services
        .auth
        .mint_opaque("drill-user", "read", Duration::from_secs(3600));
    w.load = start_load(
        w.production.clone(),
        user,
        w.samples.clone(),
        w.stop.clone(),
        Duration::from_secs(120),
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let bad_doc = config(
        services.users.addr,
        services.public.addr,
        "http://auth.blackhole.test:9000/introspect",
        Some(services.dns.addr),
    );
    let v2 = w
        .approver
        .push_with(
            &bad_doc,
            "v2: new auth server",
            Some("counterfactual".into()),
        )
        .await?
        .version
        .id;
    let from = Instant::now();
    w.approver
        .deploy("production", &v2, Some("counterfactual".into()))
        .await?;
    let exposed: Arc<Mutex<HashSet<String>>> = Arc::default();
    let paged = wait_for(Duration::from_secs(60), async || {
        if let Ok(envs) = w.op.environments().await
            && let Some(prod) = envs.iter().find(|e| e.name == "production")
        {
            for i in &prod.instances {
                if i.applied.as_deref() == Some(v2.as_str()) {
                    exposed
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(i.id.clone());
                }
            }
        }
        w.pager
            .received()
            .iter()
            .any(|r| r.body["event_action"] == "trigger")
    })
    .await;
    println!(
        "      · {} — the operator rolls back",
        if paged {
            "the SLO page fires"
        } else {
            "no page within 60 s"
        }
    );
    w.op.rollback("production", Some(v1.clone())).await?;
    let back = wait_for(Duration::from_secs(30), async || {
        w.op.environments().await.is_ok_and(|envs| {
            envs.iter().any(|e| {
                e.name == "production"
                    && e.instances
                        .iter()
                        .all(|i| i.applied.as_deref() == Some(v1.as_str()))
            })
        })
    })
    .await;
    let recover_secs = back.then(|| from.elapsed().as_secs_f64());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let t = traffic(&w.samples(), from, Instant::now());
    let exposed = exposed.lock().unwrap_or_else(|p| p.into_inner()).len();
    println!(
        "      · {exposed} of {gateways} gateways ran it; {} of {} requests failed",
        t.failed, t.total
    );
    w.shutdown().await;
    Ok(Counterfactual {
        exposed,
        failed: t.failed,
        total: t.total,
        recover_secs,
    })
}
