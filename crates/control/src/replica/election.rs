//! The election loop: announce this replica, follow the lease, take it when it is free or
//! lapsed, and while leading renew it — or stop leading before it can have lapsed.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::{Replica, ReplicaSettings, Role};
use crate::store::{LeaseWatch, Store};

/// What a replica opens when it takes the lease: a control plane on the shared database,
/// fenced on the new epoch.
#[derive(Clone)]
pub struct Term {
    pub data: PathBuf,
    pub environments: Vec<String>,
    pub settings: crate::Settings,
    pub tokens: crate::tokens::Tokens,
    pub replica: ReplicaSettings,
}

/// How often a follower re-reads the lease when no notification came (notifications can be
/// lost, and SQLite has none).
const CATCH_UP: Duration = Duration::from_secs(1);

/// How long after the lease's expiry a follower looks again (the clocks' rounding).
const LAPSE_MARGIN: Duration = Duration::from_millis(20);

/// The running election loop.
pub(super) struct Election {
    task: tokio::task::JoinHandle<()>,
    stop: tokio::sync::watch::Sender<bool>,
}

/// A term being led: its epoch, its loops, and until when it may act without a renewal.
struct Led {
    epoch: i64,
    _leading: crate::Leading,
    valid_until: Instant,
}

impl Election {
    /// Connects to the database, announces this replica and starts the loop.
    pub(super) async fn start(
        term: Term,
        replica: Arc<Replica>,
        peers: crate::listener::Peers,
        store: Store,
    ) -> Result<Election, crate::ControlError> {
        store
            .heartbeat(&term.replica.name, &term.replica.address)
            .await?;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(run(term, store, replica, peers, stopped));
        Ok(Election { task, stop })
    }

    /// Stops the loop; a leader stops its loops and releases the lease, so a follower takes
    /// over without waiting for it to lapse.
    pub(super) async fn resign(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

async fn run(
    term: Term,
    store: Store,
    replica: Arc<Replica>,
    peers: crate::listener::Peers,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    let ttl = term.replica.lease_ttl;
    let name = term.replica.name.clone();
    let mut watch: Option<Box<dyn LeaseWatch>> = match store.lease_watch().await {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(error = %e, "not listening for lease changes; polling only");
            None
        }
    };
    let mut led: Option<Led> = None;
    loop {
        announce(&store, &term.replica, &peers, ttl).await;
        // How long until another replica's lease lapses, when one holds it.
        let mut lapses_in = None;
        led = match led.take() {
            Some(l) => {
                let kept = keep_leading(&store, &name, l, ttl).await;
                if kept.is_none() {
                    // Stopped acting: its loops are gone; requests wait for a new leader.
                    replica.set_role(Role::Electing);
                }
                kept
            }
            None => match store.lease().await {
                Ok(lease) => {
                    if lease.current && lease.holder != name {
                        lapses_in = Some(Duration::from_millis(lease.expires_in_ms.max(0) as u64));
                    }
                    follow_or_take(&term, &store, &replica, lease).await
                }
                Err(e) => {
                    tracing::warn!(error = %e, "reading the lease");
                    replica.set_role(Role::Electing);
                    None
                }
            },
        };
        if let Some(l) = &led {
            replica.set_role(Role::Leading {
                epoch: l.epoch,
                api: l._leading.api.clone(),
                public: l._leading.public.clone(),
            });
        }
        // A follower also looks again just after the lease would lapse: a leader that died
        // is replaced as soon as its lease allows, not up to a catch-up later.
        let pause = match (&led, lapses_in) {
            (Some(_), _) => ttl / 4,
            (None, Some(left)) => CATCH_UP.min(left + LAPSE_MARGIN),
            (None, None) => CATCH_UP,
        };
        tokio::select! {
            _ = stopped.wait_for(|s| *s) => break,
            _ = tokio::time::sleep(pause) => {}
            _ = replica.recheck.notified(), if led.is_none() => {}
            changed = changed(&mut watch), if led.is_none() => {
                if let Err(e) = changed {
                    tracing::warn!(error = %e, "lease notifications lost; polling only");
                    watch = None;
                }
            }
        }
    }
    if let Some(l) = led {
        // Stop acting first, then hand over: nothing is written after the release.
        replica.set_role(Role::Electing);
        let epoch = l.epoch;
        drop(l);
        match store.release_lease(&name, epoch).await {
            Ok(()) => tracing::info!(replica = %name, epoch, "stepped down; lease released"),
            Err(e) => tracing::warn!(error = %e, "releasing the lease; it lapses on its own"),
        }
    }
}

async fn changed(watch: &mut Option<Box<dyn LeaseWatch>>) -> Result<(), crate::store::StoreError> {
    match watch {
        Some(w) => w.changed().await,
        None => std::future::pending().await,
    }
}

/// Announces this replica and refreshes who may forward to it: the replicas seen lately.
async fn announce(
    store: &Store,
    me: &ReplicaSettings,
    peers: &crate::listener::Peers,
    ttl: Duration,
) {
    if let Err(e) = store.heartbeat(&me.name, &me.address).await {
        tracing::warn!(error = %e, "announcing this replica");
        return;
    }
    match store.replicas().await {
        Ok(all) => peers.set(
            all.iter()
                .filter(|r| r.name != me.name && r.seen_ago_ms <= 3 * ttl.as_millis() as i64)
                .filter_map(|r| address_ip(&r.address)),
        ),
        Err(e) => tracing::warn!(error = %e, "reading the replicas"),
    }
}

/// The IP of a replica's address, when its host is an IP literal.
fn address_ip(address: &str) -> Option<IpAddr> {
    let uri: http::Uri = address.parse().ok()?;
    uri.host()?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

/// One renewal: the term goes on, or ends (lost, or not renewed for too long).
async fn keep_leading(store: &Store, name: &str, mut led: Led, ttl: Duration) -> Option<Led> {
    let asked = Instant::now();
    let renewed = tokio::time::timeout(ttl / 4, store.renew_lease(name, led.epoch, ms(ttl))).await;
    match renewed {
        Ok(Ok(true)) => {
            // The lease runs until at least `ttl` after the renewal was asked for; a quarter
            // of it is kept as margin for clocks and for stopping.
            led.valid_until = asked + ttl * 3 / 4;
            Some(led)
        }
        Ok(Ok(false)) => {
            tracing::warn!(
                replica = name,
                epoch = led.epoch,
                "lease lost; stepping down"
            );
            None
        }
        Ok(Err(_)) | Err(_) if Instant::now() < led.valid_until => {
            tracing::warn!(replica = name, "lease not renewed; trying again");
            Some(led)
        }
        _ => {
            tracing::error!(
                replica = name,
                epoch = led.epoch,
                "lease not renewed before it could lapse; stepping down"
            );
            None
        }
    }
}

/// Follows the lease's holder (`lease`, as just read), or takes a free or lapsed lease and
/// opens the control plane.
async fn follow_or_take(
    term: &Term,
    store: &Store,
    replica: &Replica,
    lease: crate::store::LeaseRow,
) -> Option<Led> {
    if lease.current && lease.holder != term.replica.name {
        replica.set_role(Role::Following {
            leader: lease.holder,
            address: lease.address,
            epoch: lease.epoch,
        });
        return None;
    }
    if lease.current {
        // This replica's name holds a lease this process did not take (a restart within the
        // lease's life): wait it out rather than act under an epoch it does not know.
        replica.set_role(Role::Electing);
        return None;
    }
    replica.set_role(Role::Electing);
    let ttl = term.replica.lease_ttl;
    let asked = Instant::now();
    let epoch = match store
        .acquire_lease(&term.replica.name, &term.replica.address, ms(ttl))
        .await
    {
        Ok(Some(epoch)) => epoch,
        Ok(None) => return None,
        Err(e) => {
            tracing::warn!(error = %e, "taking the lease");
            return None;
        }
    };
    tracing::info!(replica = %term.replica.name, epoch, "took the lease; opening the control plane");
    match open(term, epoch).await {
        Ok(leading) => Some(Led {
            epoch,
            _leading: leading,
            valid_until: asked + ttl * 3 / 4,
        }),
        Err(e) => {
            tracing::error!(error = %e, "opening the control plane as leader; handing over");
            let _ = store.release_lease(&term.replica.name, epoch).await;
            None
        }
    }
}

/// Opens the control plane fenced on `epoch` and starts its loops.
async fn open(term: &Term, epoch: i64) -> Result<crate::Leading, String> {
    let settings = term
        .settings
        .clone()
        .with_fence(epoch)
        .with_replica_name(&term.replica.name);
    let control = crate::ControlPlane::open_with(&term.data, &term.environments, settings)
        .await
        .map_err(|e| e.to_string())?;
    crate::Leading::start(Arc::new(control), term.tokens.clone())
        .await
        .map_err(|e| e.to_string())
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}
