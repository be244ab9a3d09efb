//! How platform-opened incidents settle.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// How platform-opened incidents settle: the version each environment last converged on (every
/// live instance runs it), and how long an incident stays in monitoring, its alerts all
/// resolved, before it resolves itself.
pub struct Convergence {
    pub(crate) converged: Mutex<HashMap<String, Option<rampart_api::VersionId>>>,
    pub quiet: Duration,
}

impl Convergence {
    pub fn new(quiet: Duration) -> Convergence {
        Convergence {
            converged: Mutex::new(HashMap::new()),
            quiet,
        }
    }
}
