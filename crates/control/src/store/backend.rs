//! The seam between the control plane and its durable state: what a backend implements, one
//! trait per group of tables. SQLite implements it (`sqlite/`); a PostgreSQL backend implements
//! the same traits, and the suite in `suite.rs` runs against every backend.
//!
//! Every method that changes state commits that change and its event (and whatever the change
//! implies: notifications, an incident) in one transaction, or none of it.

use std::collections::HashMap;

use rampart_api::{
    ActionItemSpec, Alert, ChannelSpec, ComponentSpec, Event, Incident, IncidentChange,
    MaintenanceSpec, OutboxEntry, RestartStatus, Subscriber, SubscriberKind, Traffic, VersionInfo,
};

use super::{
    EnvRow, IncidentSeed, InstanceRow, LeaseRow, MaintenanceRow, NewAlert, NewEvent, Pending,
    PolicyRow, ReleaseRow, ReplicaRow, StoreError, StoredToken, SubscriberRow,
};
use crate::slo::Counts;

/// The event log every change appends to.
#[async_trait::async_trait]
pub trait EventStore: Send + Sync {
    /// Creates the environments that do not exist yet, in pipeline order.
    async fn ensure_environments(&self, names: &[String]) -> Result<(), StoreError>;

    /// Appends an event on its own; returns its sequence number.
    async fn append_event(&self, e: &NewEvent<'_>) -> Result<i64, StoreError>;

    /// Appends events in order, in one transaction (a batch of agents' reports).
    async fn append_events(&self, events: &[NewEvent<'_>]) -> Result<(), StoreError>;

    /// Up to 1,000 events after `after`, in order.
    async fn events(&self, after: i64) -> Result<Vec<Event>, StoreError>;
}

/// Immutable versions, by content hash.
#[async_trait::async_trait]
pub trait VersionStore: Send + Sync {
    /// Stores a version unless the same content exists; returns it and whether it is new.
    async fn insert_version(
        &self,
        id: &str,
        document: &str,
        author: &str,
        message: &str,
        extra: serde_json::Value,
    ) -> Result<(VersionInfo, bool), StoreError>;

    async fn version(&self, id: &str) -> Result<Option<(VersionInfo, String)>, StoreError>;

    async fn versions(&self) -> Result<Vec<VersionInfo>, StoreError>;
}

/// Environments (desired version, last-known-good, successes) and second-person approvals.
#[async_trait::async_trait]
pub trait EnvironmentStore: Send + Sync {
    async fn environments(&self) -> Result<Vec<EnvRow>, StoreError>;

    /// Makes `version` desired in `env`, with its event, in one transaction.
    async fn set_desired(
        &self,
        env: &str,
        version: &str,
        event: &NewEvent<'_>,
    ) -> Result<(), StoreError>;

    async fn has_succeeded(&self, env: &str, version: &str) -> Result<bool, StoreError>;

    /// Records that every instance of `env` applied `version`: it becomes the last-known-good.
    /// Returns false if it was already recorded.
    async fn record_success(
        &self,
        env: &str,
        version: &str,
        instances: usize,
    ) -> Result<bool, StoreError>;

    /// A pending approval for `version` in `env`, creating it if needed; returns it.
    async fn request_approval(
        &self,
        env: &str,
        version: &str,
        sections: &[&str],
        requested_by: &str,
    ) -> Result<rampart_api::Approval, StoreError>;

    async fn approval(&self, id: i64) -> Result<Option<rampart_api::Approval>, StoreError>;

    async fn approvals(&self) -> Result<Vec<rampart_api::Approval>, StoreError>;

    /// Grants a pending approval, with its event; false if it is unknown or was granted
    /// already (of two approvers at once, exactly one gets true). The caller then deploys its
    /// version: an approval is one deploy, never a standing permission.
    async fn grant(&self, id: i64, approver: &str) -> Result<bool, StoreError>;
}

/// Releases in waves, and the events of one release's story.
#[async_trait::async_trait]
pub trait ReleaseStore: Send + Sync {
    /// Starts a release, with its event.
    async fn insert_release(
        &self,
        env: &str,
        intent: &rampart_rollout::Intent,
        previous: &str,
        actor: &str,
    ) -> Result<i64, StoreError>;

    /// Saves a release's intent and cohort, with an event when one is given; when `desired` is
    /// given the environment's desired version changes in the same transaction.
    async fn update_release(
        &self,
        r: &ReleaseRow,
        desired: Option<&str>,
        events: &[NewEvent<'_>],
    ) -> Result<(), StoreError>;

    async fn releases(&self) -> Result<Vec<ReleaseRow>, StoreError>;

    /// The release with `id`, however old.
    async fn release(&self, id: i64) -> Result<Option<ReleaseRow>, StoreError>;

    /// The first event of a release's story: the earliest event about its version since the
    /// environment's previous release ended, or the release's start.
    async fn release_first_event(&self, release: i64) -> Result<Option<i64>, StoreError>;

    /// Events with sequence numbers in `first..=last` (at most 5000).
    async fn events_between(
        &self,
        first: i64,
        last: i64,
    ) -> Result<Vec<rampart_api::Event>, StoreError>;

    /// A release's story: from its `release.started` event, its own events (waves, gate
    /// verdicts, the end), the applies and convergence of its environment, and the
    /// environment's next release start (where the story ends at the latest); at most 5000.
    async fn release_events(
        &self,
        release: i64,
        env: &str,
    ) -> Result<Vec<rampart_api::Event>, StoreError>;
}

/// Rolling restarts and the restart generations they hand out.
#[async_trait::async_trait]
pub trait RestartStore: Send + Sync {
    /// Stores an environment's restart, bumps the restart generation of `bump`, and appends
    /// `event`, in one transaction; returns the bumped generations.
    async fn save_restart(
        &self,
        status: &RestartStatus,
        batch_issued: bool,
        bump: &[String],
        event: &NewEvent<'_>,
    ) -> Result<Vec<(String, u64)>, StoreError>;

    /// Every environment's last restart, and whether its current batch was told to restart.
    async fn restarts(&self) -> Result<Vec<(RestartStatus, bool)>, StoreError>;

    /// The restart generation of every instance ever told to restart.
    async fn restart_generations(&self) -> Result<HashMap<String, u64>, StoreError>;
}

/// The registered instances (their credentials' digests), so a new leader knows the fleet.
#[async_trait::async_trait]
pub trait InstanceStore: Send + Sync {
    /// Records a registration (replacing the instance's previous one).
    async fn save_instance(&self, i: &InstanceRow) -> Result<(), StoreError>;

    /// Every registration, by instance.
    async fn instances(&self) -> Result<Vec<InstanceRow>, StoreError>;
}

/// Components, SLI minutes, notification channels and the outbox.
#[async_trait::async_trait]
pub trait OpsStore: Send + Sync {
    async fn put_component(&self, name: &str, spec: &ComponentSpec) -> Result<(), StoreError>;

    async fn delete_component(&self, name: &str, actor: &str) -> Result<bool, StoreError>;

    /// When each component was created and last changed, by name.
    async fn component_times(&self) -> Result<HashMap<String, (String, String)>, StoreError>;

    /// Components in the order they were added.
    async fn components(&self) -> Result<Vec<(String, ComponentSpec)>, StoreError>;

    /// Saves completed minutes of SLI series.
    async fn save_minutes(&self, points: &[(String, u64, Counts)]) -> Result<(), StoreError>;

    /// Stored minutes of every series, ascending.
    async fn load_minutes(&self) -> Result<HashMap<String, Vec<(u64, Counts)>>, StoreError>;

    async fn put_channel(
        &self,
        name: &str,
        spec: &ChannelSpec,
        actor: &str,
    ) -> Result<(), StoreError>;

    /// Channels with their pending and failed notification counts.
    async fn channels(&self) -> Result<Vec<(String, ChannelSpec, u64, u64)>, StoreError>;

    /// The oldest undelivered notification of each channel (delivery is in order per channel).
    async fn outbox_heads(&self) -> Result<Vec<Pending>, StoreError>;

    /// Marks a notification delivered (or given up on, with `failed`), with its event.
    async fn outbox_done(
        &self,
        p: &Pending,
        failed: Option<&str>,
        attempts: u32,
    ) -> Result<(), StoreError>;

    /// Schedules another attempt.
    async fn outbox_retry(
        &self,
        p: &Pending,
        attempts: u32,
        next_at_ms: u64,
        error: &str,
    ) -> Result<(), StoreError>;

    /// The latest 500 notifications, newest first.
    async fn outbox(&self) -> Result<Vec<OutboxEntry>, StoreError>;
}

/// Alerts: at most one active per key; firing a page opens or joins an incident, with its event and notifications, in one transaction.
#[async_trait::async_trait]
pub trait AlertStore: Send + Sync {
    /// Fires an alert unless one with its key is active. In the same transaction: its event,
    /// its notifications, and for a page the incident it opens or joins. Returns the new alert.
    async fn fire_alert(
        &self,
        a: &NewAlert,
        channels: &[(String, ChannelSpec)],
        seed: Option<&IncidentSeed>,
    ) -> Result<Option<Alert>, StoreError>;

    /// Resolves the active alert with `key`, with its event and notifications.
    async fn resolve_alert(
        &self,
        key: &str,
        channels: &[(String, ChannelSpec)],
    ) -> Result<Option<Alert>, StoreError>;

    /// Alerts, newest first (the latest 500).
    async fn alerts(&self, active_only: bool) -> Result<Vec<Alert>, StoreError>;
}

/// Incidents, their updates and action items.
#[async_trait::async_trait]
pub trait IncidentStore: Send + Sync {
    /// Opens an incident by hand.
    async fn open_incident(&self, seed: &IncidentSeed, actor: &str) -> Result<i64, StoreError>;

    async fn incident(&self, id: i64) -> Result<Option<Incident>, StoreError>;

    /// When an incident's window starts, in milliseconds since the epoch.
    async fn incident_started_ms(&self, id: i64) -> Result<Option<u64>, StoreError>;

    /// Incidents, newest first, at most `limit`; `open_only` leaves out resolved ones.
    async fn incident_ids(&self, open_only: bool, limit: i64) -> Result<Vec<i64>, StoreError>;

    /// Applies a change: narrative fields, impact, and a status update with its event. On
    /// resolution the window closes and `traffic` is frozen into the record.
    async fn change_incident(
        &self,
        id: i64,
        change: &IncidentChange,
        traffic: Option<Traffic>,
        actor: &str,
    ) -> Result<(), StoreError>;

    async fn add_action_item(
        &self,
        incident: i64,
        item: &ActionItemSpec,
        actor: &str,
    ) -> Result<i64, StoreError>;

    /// Changes an action item; false if the incident has no such item.
    async fn set_action_item(
        &self,
        incident: i64,
        item: i64,
        spec: &ActionItemSpec,
        actor: &str,
    ) -> Result<bool, StoreError>;
}

/// Maintenance windows and status-page subscribers.
#[async_trait::async_trait]
pub trait StatusStore: Send + Sync {
    async fn insert_maintenance(
        &self,
        spec: &MaintenanceSpec,
        actor: &str,
    ) -> Result<i64, StoreError>;

    async fn cancel_maintenance(&self, id: i64, actor: &str) -> Result<bool, StoreError>;

    /// Maintenance windows, latest start first (at most 200).
    async fn maintenances(&self) -> Result<Vec<MaintenanceRow>, StoreError>;

    /// Adds a subscriber, or returns the active one with the same kind and target. An
    /// unconfirmed one gets a confirmation message queued in the same transaction.
    async fn add_subscriber(
        &self,
        kind: SubscriberKind,
        target: &str,
        confirmed: bool,
        actor: &str,
    ) -> Result<(SubscriberRow, bool), StoreError>;

    /// Confirms the subscriber with `token`; None if no active subscriber has it.
    async fn confirm_subscriber(&self, token: &str) -> Result<Option<SubscriberRow>, StoreError>;

    /// Unsubscribes the subscriber with `token`; None if none has it.
    async fn unsubscribe(&self, token: &str) -> Result<Option<SubscriberRow>, StoreError>;

    async fn subscriber(&self, id: i64) -> Result<Option<SubscriberRow>, StoreError>;

    async fn subscribers(&self) -> Result<Vec<Subscriber>, StoreError>;
}

/// API tokens created through the API (their digests) and revocations of any token.
#[async_trait::async_trait]
pub trait TokenStore: Send + Sync {
    /// Stores a new token's digest with its event; false if a token has that name.
    async fn create_token(&self, t: &StoredToken, actor: &str) -> Result<bool, StoreError>;

    /// Records that a token (bootstrap or not) is revoked, with its event; returns when.
    async fn revoke_token(
        &self,
        t: &rampart_api::TokenInfo,
        actor: &str,
    ) -> Result<String, StoreError>;

    /// Every stored token and revocation, by name.
    async fn tokens(&self) -> Result<Vec<StoredToken>, StoreError>;
}

/// Rollout policies: every revision of each environment's, as written.
#[async_trait::async_trait]
pub trait PolicyStore: Send + Sync {
    /// Stores the next revision of `env`'s policy with its `policy.set` event (carrying `data`);
    /// returns the revision.
    async fn insert_policy(
        &self,
        env: &str,
        text: &str,
        actor: &str,
        data: serde_json::Value,
    ) -> Result<i64, StoreError>;

    /// The revisions of `env`'s policy, newest first.
    async fn policies(&self, env: &str) -> Result<Vec<PolicyRow>, StoreError>;
}

/// The leader's lease, and the fence on its epoch.
#[async_trait::async_trait]
pub trait LeaseStore: Send + Sync {
    /// Takes the lease for `ttl_ms` if nobody holds it (free, released or lapsed by the
    /// database's clock); returns the new epoch, one more than any before.
    async fn acquire_lease(
        &self,
        holder: &str,
        address: &str,
        ttl_ms: u64,
    ) -> Result<Option<i64>, StoreError>;

    /// Extends the lease `holder` took under `epoch` by `ttl_ms` from now; false if it is no
    /// longer theirs (lapsed and taken, or released).
    async fn renew_lease(&self, holder: &str, epoch: i64, ttl_ms: u64) -> Result<bool, StoreError>;

    /// Gives the lease up at once, so another replica takes over without waiting it out.
    async fn release_lease(&self, holder: &str, epoch: i64) -> Result<(), StoreError>;

    /// The lease as stored: holder, address, epoch, and whether it is current by the
    /// database's clock.
    async fn lease(&self) -> Result<LeaseRow, StoreError>;

    /// From now on every write this store makes first checks that the lease's epoch is still
    /// `epoch`, and fails with [`StoreError::Fenced`] otherwise; `None` lifts the fence.
    fn fence(&self, epoch: Option<i64>);

    /// Records that replica `name`, reached at `address`, is up (not fenced: every replica
    /// announces itself, leading or not).
    async fn heartbeat(&self, name: &str, address: &str) -> Result<(), StoreError>;

    /// Every replica that announced itself, by name.
    async fn replicas(&self) -> Result<Vec<ReplicaRow>, StoreError>;

    /// Wakes at every change of the lease (a takeover, a release) where the database can say
    /// so (PostgreSQL's LISTEN/NOTIFY); `None` where it cannot, and callers poll. A notification
    /// can be lost either way: callers also re-read the lease on a timer.
    async fn lease_watch(&self) -> Result<Option<Box<dyn LeaseWatch>>, StoreError>;

    /// Wakes after every committed write (PostgreSQL: every write transaction notifies
    /// `rampart_change`), so a follower replica re-reads what agents are to run; `None` where
    /// the database cannot say so. Notifications can be lost: callers re-read on a timer too.
    async fn change_watch(&self) -> Result<Option<Box<dyn LeaseWatch>>, StoreError>;
}

/// Notifications of lease changes.
#[async_trait::async_trait]
pub trait LeaseWatch: Send {
    /// Resolves at the next change (or when the connection behind it failed).
    async fn changed(&mut self) -> Result<(), StoreError>;
}

/// Everything the control plane stores: one value of this is the store. A backend says so in
/// one line (`impl Backend for Sqlite {}`) once it implements every group.
pub trait Backend:
    EventStore
    + VersionStore
    + EnvironmentStore
    + ReleaseStore
    + RestartStore
    + OpsStore
    + AlertStore
    + IncidentStore
    + StatusStore
    + TokenStore
    + PolicyStore
    + LeaseStore
    + InstanceStore
{
}
