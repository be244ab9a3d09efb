//! What the control plane tells its agents, and what it knows of them: the fleet (registrations
//! and reports), each environment's desired version (watched by long-polls), a counter that wakes
//! every long-poll when a release's cohort changes, and each instance's restart generation.

use std::collections::HashMap;
use std::sync::Mutex;

use rampart_api::VersionId;
use tokio::sync::watch;

use crate::fleet::Fleet;
use crate::store::EnvRow;

/// How far back stored registrations are known again (a takeover, a restart, a follower).
const RESTORED_FOR_MS: i64 = 7 * 24 * 3600 * 1000;

pub struct Agents {
    pub(crate) fleet: Fleet,
    /// Desired version per environment, watched by long-polling agents.
    desired: HashMap<String, watch::Sender<Option<VersionId>>>,
    /// Bumped whenever a release's cohort or a restart generation changes, waking long-polls.
    cohort_changes: watch::Sender<u64>,
    /// Restart generation per instance, handed to agents with their desired version.
    restart_gen: Mutex<HashMap<String, u64>>,
}

impl Agents {
    /// The environments as stored, and the restart generations handed out before.
    pub fn new(environments: &[EnvRow], restart_gen: HashMap<String, u64>) -> Agents {
        Agents {
            fleet: Fleet::default(),
            desired: environments
                .iter()
                .map(|e| (e.name.clone(), watch::channel(e.desired.clone()).0))
                .collect(),
            cohort_changes: watch::channel(0).0,
            restart_gen: Mutex::new(restart_gen),
        }
    }

    /// Knows the instances registered in the last week (their stored registrations and
    /// credentials) in environments it knows; older ones register again when they next poll.
    pub async fn restore_registrations(
        &self,
        store: &crate::store::Store,
    ) -> Result<(), crate::store::StoreError> {
        let since = crate::store::now_ms() as i64 - RESTORED_FOR_MS;
        for row in store.instances().await? {
            if row.registered_ms >= since && self.knows_environment(&row.environment) {
                self.fleet.restore(&row);
            }
        }
        Ok(())
    }

    /// The environments' names.
    pub fn environments(&self) -> Vec<String> {
        self.desired.keys().cloned().collect()
    }

    pub fn knows_environment(&self, env: &str) -> bool {
        self.desired.contains_key(env)
    }

    /// The environment's desired version.
    pub fn desired(&self, env: &str) -> Option<VersionId> {
        self.desired.get(env).and_then(|tx| tx.borrow().clone())
    }

    /// Makes `version` the environment's desired version, waking its long-polls.
    pub fn publish(&self, env: &str, version: &VersionId) {
        if let Some(tx) = self.desired.get(env) {
            tx.send_replace(Some(version.clone()));
        }
    }

    /// A watch on the environment's desired version.
    pub fn watch_desired(&self, env: &str) -> Option<watch::Receiver<Option<VersionId>>> {
        self.desired.get(env).map(watch::Sender::subscribe)
    }

    /// Wakes every long-poll: a release's cohort changed.
    pub fn cohorts_changed(&self) {
        self.cohort_changes.send_modify(|g| *g += 1);
    }

    pub fn watch_cohorts(&self) -> watch::Receiver<u64> {
        self.cohort_changes.subscribe()
    }

    pub fn restart_generation(&self, instance: &str) -> u64 {
        self.restart_gens().get(instance).copied().unwrap_or(0)
    }

    /// Hands instances their new (stored) restart generations, waking their long-polls.
    pub fn set_restart_generations(&self, generations: &[(String, u64)]) {
        if generations.is_empty() {
            return;
        }
        let mut all = self.restart_gens();
        for (instance, generation) in generations {
            all.insert(instance.clone(), *generation);
        }
        drop(all);
        self.cohorts_changed();
    }

    fn restart_gens(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        self.restart_gen.lock().unwrap_or_else(|p| p.into_inner())
    }
}
