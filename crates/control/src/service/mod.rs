//! The pipeline side of the control plane: versions and deploys in pipeline order (`Pipeline`),
//! releases in waves (`Releases`) under each environment's rollout policy (`Policies`), the agent protocol (`AgentProtocol`), rolling restarts
//! (`Restarts`), and the settings a control plane opens with.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rampart_api::{
    Desired, EnvironmentStatus, PushResponse, RegisterRequest, RegisterResponse, Report, VersionId,
    VersionInfo,
};

use crate::release::Live;
use crate::store::{NewEvent, Store};
use crate::tokens::Role;
use rampart_rollout::{Action, ReleaseState};

/// How long an agent's desired-version poll is held open.
pub const POLL_WAIT: Duration = Duration::from_secs(25);
pub const REPORT_INTERVAL: Duration = Duration::from_secs(1);

/// A stored version and its document, or `NotFound`.
pub(crate) async fn stored_version(
    store: &Store,
    id: &str,
) -> Result<(VersionInfo, String), ControlError> {
    store
        .version(id)
        .await?
        .ok_or_else(|| ControlError::NotFound(format!("no version {id}")))
}

mod agent_protocol;
pub mod long_poll;
mod pipeline;
mod policies;
mod releases;
mod restarts;
mod settings;

pub use agent_protocol::AgentProtocol;
pub(crate) use agent_protocol::check_instance;
pub use pipeline::Pipeline;
pub use policies::{Policies, revision_changes};
pub use releases::{Ended, Releases};
pub use restarts::Restarts;
pub use settings::Settings;

pub use crate::error::ControlError;
pub use crate::tokens::Actor;
