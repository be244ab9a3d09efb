//! The desired-version long-poll, wherever it is answered: by the leader from its releases in
//! memory, or by a follower replica from the releases as stored (`replica::follower`). Both
//! answer through [`wait_for_desired`], from a [`DesiredSource`], with version documents kept at
//! hand by [`Documents`].

use std::sync::{Arc, Mutex};

use super::*;

/// What one instance should run, as someone knows it.
pub trait DesiredSource: Send + Sync {
    /// Its release cohort's version, the release's previous one, or the environment's.
    fn instance_desired(&self, env: &str, instance: &str) -> Option<VersionId>;

    /// The probes it sends: its release's, while in the cohort of a rolling release.
    fn instance_probes(&self, env: &str, instance: &str) -> Vec<rampart_rollout::Probe>;
}

/// What `instance` runs under an active release `row`: the new version in the cohort, the
/// previous one outside it.
pub fn desired_under(row: &crate::store::ReleaseRow, instance: &str) -> VersionId {
    if row.cohort.iter().any(|i| i == instance) {
        row.version.clone()
    } else {
        row.previous.clone()
    }
}

/// The probes `instance` sends under an active release `row`.
pub fn probes_under(row: &crate::store::ReleaseRow, instance: &str) -> Vec<rampart_rollout::Probe> {
    if row.intent.state == ReleaseState::Rolling && row.cohort.iter().any(|i| i == instance) {
        row.intent.plan.probes.clone()
    } else {
        vec![]
    }
}

/// How many version documents are kept at hand.
const DOCUMENTS_KEPT: usize = 8;

/// Documents of the versions agents were sent lately. Versions never change, so a rollback
/// answered to thousands of long-polls reads its document from the store once, and the store's
/// connections stay free for operators.
pub struct Documents {
    store: Store,
    kept: Mutex<Vec<(VersionId, Arc<str>)>>,
}

impl Documents {
    pub fn new(store: Store) -> Documents {
        Documents {
            store,
            kept: Mutex::new(Vec::new()),
        }
    }

    /// A version's canonical document: from those kept at hand, else from the store (then
    /// kept, the oldest making room).
    pub async fn get(&self, v: &VersionId) -> Result<Arc<str>, ControlError> {
        let kept = |docs: &Mutex<Vec<(VersionId, Arc<str>)>>| {
            docs.lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .find(|(id, _)| id == v)
                .map(|(_, d)| d.clone())
        };
        if let Some(d) = kept(&self.kept) {
            return Ok(d);
        }
        let document: Arc<str> = stored_version(&self.store, v).await?.1.into();
        let mut docs = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        if !docs.iter().any(|(id, _)| id == v) {
            if docs.len() >= DOCUMENTS_KEPT {
                docs.remove(0);
            }
            docs.push((v.clone(), document.clone()));
        }
        Ok(document)
    }
}

/// One long-poll's question: who asks, what it runs, what it knows.
pub struct Poll<'a> {
    pub env: &'a str,
    pub instance: &'a str,
    pub current: Option<&'a str>,
    pub known_restart: Option<u64>,
    pub probing: Option<usize>,
    pub wait: Duration,
    /// When this turns true the poll answers at once with what it knows (a follower that
    /// starts leading lets its polls go, so the agents ask the leader's protocol next).
    pub until: Option<tokio::sync::watch::Receiver<bool>>,
}

/// Answers at once if what `poll.instance` should run differs from `poll.current` (or its
/// restart generation or probe set changed); otherwise waits, up to `poll.wait` (at most
/// `POLL_WAIT`), for it to change.
pub async fn wait_for_desired(
    agents: &crate::agents::Agents,
    source: &dyn DesiredSource,
    documents: &Documents,
    poll: Poll<'_>,
) -> Result<Desired, ControlError> {
    let Poll {
        env,
        instance,
        current,
        known_restart,
        probing,
        wait,
        mut until,
    } = poll;
    let mut env_rx = agents
        .watch_desired(env)
        .ok_or_else(|| ControlError::NotFound(format!("no environment {env:?}")))?;
    let mut cohort_rx = agents.watch_cohorts();
    let deadline = tokio::time::Instant::now() + wait.min(POLL_WAIT);
    let version = loop {
        env_rx.borrow_and_update();
        cohort_rx.borrow_and_update();
        // Per instance: a release's cohort runs its version, everyone else the previous one.
        let want = source.instance_desired(env, instance);
        if want.is_some() && want.as_ref().map(VersionId::as_str) != current {
            break want;
        }
        if known_restart.is_some_and(|k| k != agents.restart_generation(instance)) {
            break want;
        }
        // A cohort instance starts or stops its probes without waiting out the poll.
        if probing.is_some_and(|n| n != source.instance_probes(env, instance).len()) {
            break want;
        }
        if until.as_mut().is_some_and(|u| *u.borrow_and_update()) {
            break want;
        }
        tokio::select! {
            _ = env_rx.changed() => {}
            _ = cohort_rx.changed() => {}
            _ = tokio::time::sleep_until(deadline) => break want,
            _ = async {
                match until.as_mut() {
                    // A sender gone can say nothing more: wait for the rest instead.
                    Some(u) => {
                        if u.changed().await.is_err() {
                            std::future::pending::<()>().await;
                        }
                    }
                    None => std::future::pending().await,
                }
            } => {}
        }
    };
    let document = match &version {
        Some(v) if Some(v.as_str()) != current => Some(documents.get(v).await?.to_string()),
        _ => None,
    };
    Ok(Desired {
        probes: source.instance_probes(env, instance),
        environment: env.to_owned(),
        version,
        document,
        restart: agents.restart_generation(instance),
    })
}
