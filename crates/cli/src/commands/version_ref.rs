//! Version ids as people type them: the full id, or any unique prefix of at least 6 hex
//! characters (what `rampart fleet` and `config history` show is a 12-character prefix).

use anyhow::{Result, bail};
use rampart_api::{ApiClient, VersionId};

/// The shortest prefix accepted.
const MIN_PREFIX: usize = 6;

/// The version `text` names on the control plane.
pub async fn resolve(client: &ApiClient, text: &str) -> Result<VersionId> {
    if let Ok(id) = VersionId::parse(text) {
        return Ok(id);
    }
    let prefix = text.to_ascii_lowercase();
    if prefix.len() < MIN_PREFIX || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!(
            "{text:?} is not a version id or a prefix of one (at least {MIN_PREFIX} hex characters)"
        );
    }
    let matches: Vec<VersionId> = client
        .versions()
        .await?
        .into_iter()
        .map(|v| v.id)
        .filter(|id| id.starts_with(&prefix))
        .collect();
    match matches.as_slice() {
        [id] => Ok(id.clone()),
        [] => bail!("no version starts with {prefix}"),
        _ => bail!(
            "{prefix} matches {} versions; give more characters",
            matches.len()
        ),
    }
}
