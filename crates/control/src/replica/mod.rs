//! Several replicas of the control plane on one PostgreSQL database: one leads, the others
//! forward to it.
//!
//! The leader holds the lease (`leader_lease`, an epoch that grows on each takeover). It alone
//! opens the control plane — the reconciler, alert evaluation, the outbox and rolling restarts
//! run there, and every write it makes is fenced on its epoch — and it alone serves the API.
//! A follower forwards every request it receives to the leader's address, so any replica
//! serves the whole API and the in-memory state (the fleet, reports booked in memory, long-poll
//! wake-ups) lives in one place: a report is booked where the gates read it, and a deploy wakes
//! every long-poll without a fan-out between replicas. Followers re-read the lease every second
//! and on every notification of a change (LISTEN/NOTIFY; a notification can be lost, the timer
//! catches up), and take the lease when it is free or lapsed.
//!
//! A leader renews every quarter of the lease's life, and stops acting (drops its loops; its
//! store is fenced anyway) once it could not renew for three quarters of it, before the lease
//! can have lapsed for anyone else. A graceful stop releases the lease at once.

mod election;
mod follower;
mod forward;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::response::{IntoResponse, Response};

pub use election::Term;

/// Who this replica is and how it takes part.
#[derive(Debug, Clone)]
pub struct ReplicaSettings {
    /// Its name, unique among the replicas (the lease's holder, `rampart fleet`'s column).
    pub name: String,
    /// The URL the other replicas forward to (its API listener as they reach it).
    pub address: String,
    /// How long a lease lasts without renewal.
    pub lease_ttl: Duration,
}

/// What this replica is doing now.
#[derive(Clone)]
pub(crate) enum Role {
    /// Nobody it knows of leads (the lease is free or lapsed, or the database is away).
    Electing,
    Following {
        leader: String,
        address: String,
        epoch: i64,
    },
    Leading {
        epoch: i64,
        api: axum::Router,
        public: axum::Router,
    },
}

/// One replica: its role, switched by the election loop, read by every request.
pub struct Replica {
    settings: ReplicaSettings,
    role: RwLock<Role>,
    forwarder: forward::Forwarder,
    /// Wakes the election loop early (a forward found the leader unreachable).
    recheck: tokio::sync::Notify,
    /// What agents are to run, as stored: a follower answers its agents' long-polls from it.
    view: std::sync::OnceLock<Arc<follower::FollowerView>>,
}

/// This replica's view, as `GET /v1/replica` answers it (on every replica, unforwarded).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct ReplicaView {
    pub name: String,
    /// `leader`, `follower` or `electing`.
    pub role: String,
    /// The leader's name, when one is known.
    pub leader: Option<String>,
    pub epoch: Option<i64>,
    /// Agents' long-polls this replica answered itself while following (from the database).
    pub polls_answered: u64,
}

impl Replica {
    pub fn new(settings: ReplicaSettings) -> Arc<Replica> {
        Arc::new(Replica {
            forwarder: forward::Forwarder::new(&settings.name),
            settings,
            role: RwLock::new(Role::Electing),
            recheck: tokio::sync::Notify::new(),
            view: std::sync::OnceLock::new(),
        })
    }

    pub fn name(&self) -> &str {
        &self.settings.name
    }

    fn role(&self) -> Role {
        self.role.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set_role(&self, role: Role) {
        if let Some(view) = self.view.get() {
            view.set_leading(matches!(role, Role::Leading { .. }));
        }
        *self.role.write().unwrap_or_else(|p| p.into_inner()) = role;
    }

    pub fn view(&self) -> ReplicaView {
        let (role, leader, epoch) = match self.role() {
            Role::Electing => ("electing", None, None),
            Role::Following { leader, epoch, .. } => ("follower", Some(leader), Some(epoch)),
            Role::Leading { epoch, .. } => ("leader", Some(self.name().to_owned()), Some(epoch)),
        };
        ReplicaView {
            name: self.name().to_owned(),
            role: role.to_owned(),
            leader,
            epoch,
            polls_answered: self.view.get().map_or(0, |v| v.answered()),
        }
    }

    /// The router a listener serves: `GET /v1/replica` here (not on the public listener),
    /// everything else by the leader (this replica, or the one it forwards to) — or, for a
    /// follower's agents' long-polls, by this replica's view. `public`: the public status
    /// page's listener, which reaches only the page's routes wherever they are served.
    pub fn router(self: &Arc<Self>, public: bool) -> axum::Router {
        let me = self.clone();
        let fallback = move |req: axum::extract::Request| {
            let me = me.clone();
            async move { me.handle(req, public).await }
        };
        let me = self.clone();
        let view = move || {
            let me = me.clone();
            async move { axum::Json(me.view()) }
        };
        let router = axum::Router::new().fallback(fallback);
        // The public listener shows the status page only, not the replicas' view.
        if public {
            router
        } else {
            router.route("/v1/replica", axum::routing::get(view))
        }
    }

    async fn handle(&self, req: axum::extract::Request, public: bool) -> Response {
        // A follower's public listener forwards to the leader's API listener, saying so.
        let public = public || forward::came_from_public(req.headers());
        match self.role() {
            Role::Leading {
                api, public: page, ..
            } => {
                let router = if public { page } else { api };
                let result = tower_service::Service::call(&mut router.clone(), req).await;
                result.unwrap_or_else(|never| match never {})
            }
            Role::Following {
                leader, address, ..
            } => {
                // Its agents' long-polls a follower answers itself; the rest goes to the leader.
                let req = match self.view.get() {
                    Some(view) if !public => match view.answer(req).await {
                        follower::Answer::Answered(resp) => return resp,
                        follower::Answer::Forward(req) => req,
                    },
                    _ => req,
                };
                match self.forwarder.forward(&address, req, public).await {
                    Ok(resp) => resp,
                    Err(forward::Failed::Unreachable(reason)) => {
                        self.recheck.notify_one();
                        unavailable(&format!(
                            "the leading replica {leader} ({address}) is unreachable: {reason}; \
                             another replica takes over once its lease lapses — retry"
                        ))
                    }
                    Err(forward::Failed::Other(status, reason)) => {
                        crate::http::ApiError(status, "leader_failed", reason).into_response()
                    }
                }
            }
            Role::Electing => unavailable(
                "no replica leads the control plane at the moment (a takeover is under way); retry",
            ),
        }
    }
}

/// 503 with a `Retry-After`: the request was not handled and may be sent again.
fn unavailable(message: &str) -> Response {
    crate::http::ApiError(
        http::StatusCode::SERVICE_UNAVAILABLE,
        "no_leader",
        message.to_owned(),
    )
    .into_response()
}

/// Serves the control plane as one replica among several on the PostgreSQL database
/// `settings.database`, until `shutdown` resolves; then, if it leads, it stops its loops and
/// releases the lease so another replica takes over at once.
pub async fn serve_replicated(
    listeners: crate::Listeners,
    term: Term,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut term = term;
    if term.settings.public_url.is_none()
        && let Some(url) = listeners.page_url()
    {
        term.settings = term.settings.with_public_url(&url);
    }
    let crate::Listeners { api, public, tls } = listeners;
    let limits = term.settings.limits;
    let peers = crate::listener::Peers::default();
    let replica = Replica::new(term.replica.clone());
    let apps = crate::Apps {
        api: replica.router(false),
        public: replica.router(true),
    };
    let joining =
        |e: crate::ControlError| std::io::Error::other(format!("joining the replicas: {e}"));
    let url = term.settings.database.clone().ok_or_else(|| {
        joining(crate::ControlError::Invalid(
            "replicas share a PostgreSQL database: give one".into(),
        ))
    })?;
    let store = crate::store::Store::connect(&url)
        .await
        .map_err(|e| joining(e.into()))?;
    // The environments exist before anyone leads (an idempotent insert, as the leader's own),
    // so the follower's view knows them from the start.
    store
        .ensure_environments(&term.environments)
        .await
        .map_err(|e| joining(e.into()))?;
    let view = follower::FollowerView::open(store.clone(), term.tokens.clone(), &limits)
        .await
        .map_err(joining)?;
    let _ = replica.view.set(view.clone());
    let following = {
        let replica = replica.clone();
        move || matches!(replica.role(), Role::Following { .. })
    };
    let _view = crate::Background(tokio::spawn(view.run(following)));
    let election = election::Election::start(term, replica, peers.clone(), store)
        .await
        .map_err(joining)?;
    let served = crate::serve_apps(api, public, tls, apps, limits, Some(peers), shutdown).await;
    election.resign().await;
    served
}
