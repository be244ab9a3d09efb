//! Agent traffic is bounded, and shed first: long-polls and the short agent requests
//! (registrations, reports) each take a permit, and past their bound they are answered at once
//! with `503 busy` (`Retry-After: 1`) instead of queueing. Operators' requests take no permit,
//! so a rollback, a deploy, an approval or an abort never waits behind a fleet's traffic.

use std::sync::Arc;

use axum::http::StatusCode;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::ApiError;

/// Short agent requests (registrations, reports) in flight at once, all agents together.
pub const AGENT_REQUESTS: usize = 256;

pub struct AgentAdmission {
    polls: Arc<Semaphore>,
    requests: Arc<Semaphore>,
    poll_bound: usize,
}

impl AgentAdmission {
    /// Long-polls are bounded to three quarters of the listener's connection cap, so a quarter
    /// of the connections stays for everyone else.
    pub fn new(limits: &crate::listener::Limits) -> AgentAdmission {
        let poll_bound = (limits.connections.saturating_mul(3) / 4).max(1);
        AgentAdmission {
            polls: Arc::new(Semaphore::new(poll_bound)),
            requests: Arc::new(Semaphore::new(AGENT_REQUESTS)),
            poll_bound,
        }
    }

    /// A long-poll's permit, held while it waits.
    pub fn poll(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        self.polls.clone().try_acquire_owned().map_err(|_| {
            busy(format!(
                "{} agents are long-polling already; poll again in a second",
                self.poll_bound
            ))
        })
    }

    /// A registration's or a report's permit.
    pub fn request(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        self.requests.clone().try_acquire_owned().map_err(|_| {
            busy(format!(
                "{AGENT_REQUESTS} agent requests are in flight already; send it again in a second"
            ))
        })
    }
}

fn busy(message: String) -> ApiError {
    ApiError(StatusCode::SERVICE_UNAVAILABLE, "busy", message)
}
