//! The fleet: agents registered per environment and what they last reported. In memory: agents
//! re-register after a control-plane restart, and reports arrive every second.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rampart_api::{ApplyResult, InstanceStatus, RegisterRequest, Report};

/// An instance that has not reported for this long is not counted as part of its environment.
pub const STALE_AFTER: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct Instance {
    pub registration: RegisterRequest,
    pub applied: Option<rampart_api::VersionId>,
    pub last_result: Option<ApplyResult>,
    pub last_seen: Instant,
    pub requests: [u64; 5],
    pub shed: u64,
    /// Synthetic probes sent and answered unexpectedly since registration (not in `requests`).
    pub probes: rampart_api::ProbeCounts,
    /// Latency histogram since registration (buckets of `rampart_api::LATENCY_BOUNDS_MS`).
    pub latency: Vec<u64>,
    pub problems: Vec<String>,
    /// The last restart generation the agent completed.
    pub restarts: u64,
    /// The replica its last report came through (several replicas), else `None`.
    pub replica: Option<String>,
    /// The version it should run, as of its last report, and since when it has not (a config
    /// that is behind: expected against applied).
    pub expected: Option<rampart_api::VersionId>,
    pub behind_since: Option<Instant>,
    /// SHA-256 of the credential its registration got; polls and reports must present it.
    credential: [u8; 32],
}

impl Instance {
    /// A newly known instance: seen now, nothing reported yet.
    fn new(registration: RegisterRequest, credential: [u8; 32]) -> Instance {
        Instance {
            registration,
            applied: None,
            last_result: None,
            last_seen: Instant::now(),
            requests: [0; 5],
            shed: 0,
            probes: Default::default(),
            latency: vec![0; rampart_api::LATENCY_BOUNDS_MS.len() + 1],
            problems: vec![],
            restarts: 0,
            replica: None,
            expected: None,
            behind_since: None,
            credential,
        }
    }
}

/// Why a registration is refused.
#[derive(Debug)]
pub struct Refused(pub String);

#[derive(Default)]
pub struct Fleet {
    instances: Mutex<HashMap<String, Instance>>,
}

impl Fleet {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instance>> {
        self.instances.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers (or re-registers) an instance under a fresh credential, which replaces the one
    /// before. A live instance stays in its environment: it cannot be registered into another.
    pub fn register(&self, r: RegisterRequest, credential: &str) -> Result<(), Refused> {
        let mut all = self.lock();
        if let Some(known) = all.get(&r.instance)
            && known.registration.environment != r.environment
            && known.last_seen.elapsed() < STALE_AFTER
        {
            return Err(Refused(format!(
                "instance {:?} is live in {}; it cannot join {} (stop it there first)",
                r.instance, known.registration.environment, r.environment
            )));
        }
        let entry = all
            .entry(r.instance.clone())
            .or_insert_with(|| Instance::new(r.clone(), [0; 32]));
        entry.registration = r;
        entry.credential = crate::tokens::digest(credential);
        entry.last_seen = Instant::now();
        Ok(())
    }

    /// Knows again an instance a previous leader registered (its stored registration): it
    /// counts as live from now, so it has a report interval's grace to report here. Known
    /// already, it takes the stored registration's environment and credential.
    pub fn restore(&self, row: &crate::store::InstanceRow) {
        let mut digest = [0u8; 32];
        if hex::decode_to_slice(&row.credential, &mut digest).is_err() {
            return;
        }
        let mut all = self.lock();
        if let Some(known) = all.get_mut(&row.instance) {
            // Registered again since: the newest registration's credential holds.
            known.registration.environment = row.environment.clone();
            known.credential = digest;
            return;
        }
        let registration = RegisterRequest {
            instance: row.instance.clone(),
            environment: row.environment.clone(),
            zone: row.zone.clone(),
            build: row.build.clone(),
        };
        all.insert(row.instance.clone(), Instance::new(registration, digest));
    }

    /// Whether `credential` is the one `instance` registered with (compared in constant time).
    pub fn verify(&self, instance: &str, credential: &str) -> bool {
        use subtle::ConstantTimeEq;
        self.lock()
            .get(instance)
            .is_some_and(|i| bool::from(i.credential.ct_eq(&crate::tokens::digest(credential))))
    }

    /// Records a report; returns the instance's environment and the version it ran before, or
    /// None if it never registered.
    pub fn report(
        &self,
        instance: &str,
        r: &Report,
    ) -> Option<(String, Option<rampart_api::VersionId>)> {
        let mut all = self.lock();
        let i = all.get_mut(instance)?;
        let before = std::mem::replace(&mut i.applied, r.applied.clone());
        if r.result.is_some() {
            i.last_result = r.result.clone();
        }
        for (total, n) in i.requests.iter_mut().zip(r.requests) {
            *total += n;
        }
        i.shed += r.shed;
        i.probes.sent = i.probes.sent.saturating_add(r.probes.sent);
        i.probes.unexpected = i.probes.unexpected.saturating_add(r.probes.unexpected);
        for (total, n) in i.latency.iter_mut().zip(&r.latency) {
            *total += n;
        }
        i.problems = r.problems.clone();
        i.restarts = r.restarts;
        i.last_seen = Instant::now();
        Some((i.registration.environment.clone(), before))
    }

    /// Notes which replica `instance`'s report came through and the version it should run:
    /// from the first report that finds it behind, it counts as stale.
    pub fn note_link(
        &self,
        instance: &str,
        replica: Option<String>,
        expected: Option<rampart_api::VersionId>,
    ) {
        let mut all = self.lock();
        let Some(i) = all.get_mut(instance) else {
            return;
        };
        i.replica = replica;
        if expected.is_none() || i.applied == expected {
            i.behind_since = None;
        } else if i.behind_since.is_none() || i.expected != expected {
            i.behind_since = Some(Instant::now());
        }
        i.expected = expected;
    }

    pub fn environment_of(&self, instance: &str) -> Option<String> {
        self.lock()
            .get(instance)
            .map(|i| i.registration.environment.clone())
    }

    /// Live instances of an environment.
    pub fn live(&self, env: &str) -> Vec<Instance> {
        self.lock()
            .values()
            .filter(|i| i.registration.environment == env && i.last_seen.elapsed() < STALE_AFTER)
            .cloned()
            .collect()
    }

    /// How many live instances `env` has, when there are some and every one runs `version`
    /// (counted under the lock, nothing cloned: a report may ask it).
    pub fn all_live_on(&self, env: &str, version: &rampart_api::VersionId) -> Option<usize> {
        let all = self.lock();
        let mut live = 0;
        for i in all
            .values()
            .filter(|i| i.registration.environment == env && i.last_seen.elapsed() < STALE_AFTER)
        {
            if i.applied.as_ref() != Some(version) {
                return None;
            }
            live += 1;
        }
        (live > 0).then_some(live)
    }

    /// Every registered instance of an environment, live or not.
    pub fn all(&self, env: &str) -> Vec<Instance> {
        self.lock()
            .values()
            .filter(|i| i.registration.environment == env)
            .cloned()
            .collect()
    }

    pub fn status(&self, env: &str) -> Vec<InstanceStatus> {
        let mut list: Vec<InstanceStatus> = self
            .lock()
            .values()
            .filter(|i| i.registration.environment == env)
            .map(|i| InstanceStatus {
                id: i.registration.instance.clone(),
                environment: env.to_owned(),
                zone: i.registration.zone.clone(),
                build: i.registration.build.clone(),
                applied: i.applied.clone(),
                last_result: i.last_result.clone(),
                last_seen_ms: i.last_seen.elapsed().as_millis() as u64,
                requests: i.requests,
                latency: i.latency.clone(),
                problems: i.problems.clone(),
                replica: i.replica.clone(),
                expected: i.expected.clone(),
                behind_ms: i.behind_since.map(|t| t.elapsed().as_millis() as u64),
            })
            .collect();
        list.sort_by(|a, b| a.id.cmp(&b.id));
        list
    }
}
