//! The one error type of the control plane's parts; `http/error.rs` maps it to a status.

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    /// Refused by a rule (pipeline order); says which step is missing.
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Forbidden(String),
    /// A high-risk change to the last environment waits for a second person.
    #[error("needs a second person's approval: it changes {sections}; an approver (not {requested_by}) can run `rampart approve {id}`", sections = .0.sections.join(", "), requested_by = .0.requested_by, id = .0.id)]
    ApprovalRequired(Box<rampart_api::Approval>),
    #[error(transparent)]
    Store(#[from] StoreError),
}
