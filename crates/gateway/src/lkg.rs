//! The last-known-good config on disk: written atomically (temporary file, fsync, rename),
//! with a SHA-256 of the document, so a torn or tampered file is detected and never served.

use std::path::{Path, PathBuf};

use rampart_model::{Config, VersionId};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Serialize, Deserialize)]
struct File {
    version: String,
    sha256: String,
    document: String,
}

pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join("last-known-good.json")
}

/// Reads the last-known-good: `Ok(None)` if there is none; `Err` says why a file that exists
/// cannot be trusted.
pub async fn load(state_dir: &Path) -> Result<Option<Config>, String> {
    let p = path(state_dir);
    let bytes = match tokio::fs::read(&p).await {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("reading {}: {e}", p.display())),
    };
    let file: File = serde_json::from_slice(&bytes)
        .map_err(|e| format!("corrupt last-known-good {}: {e}", p.display()))?;
    let digest = hex::encode(Sha256::digest(file.document.as_bytes()));
    if digest != file.sha256 {
        return Err(format!(
            "corrupt last-known-good {}: checksum mismatch",
            p.display()
        ));
    }
    let config = rampart_model::load(&file.document)
        .map_err(|e| format!("last-known-good {} is invalid: {e}", p.display()))?;
    if config.version().as_str() != file.version {
        return Err(format!(
            "corrupt last-known-good {}: content is not version {}",
            p.display(),
            file.version
        ));
    }
    Ok(Some(config))
}

/// Writes `document` (canonical JSON of `version`) as the last-known-good, atomically.
pub async fn store(state_dir: &Path, version: &VersionId, document: &str) -> Result<(), String> {
    use tokio::io::AsyncWriteExt;
    tokio::fs::create_dir_all(state_dir)
        .await
        .map_err(|e| format!("creating {}: {e}", state_dir.display()))?;
    let file = File {
        version: version.to_string(),
        sha256: hex::encode(Sha256::digest(document.as_bytes())),
        document: document.to_owned(),
    };
    let bytes = serde_json::to_vec(&file).map_err(|e| e.to_string())?;
    let target = path(state_dir);
    let tmp = state_dir.join("last-known-good.json.tmp");
    let mut f = tokio::fs::File::create(&tmp)
        .await
        .map_err(|e| format!("writing {}: {e}", tmp.display()))?;
    f.write_all(&bytes)
        .await
        .map_err(|e| format!("writing {}: {e}", tmp.display()))?;
    f.sync_all()
        .await
        .map_err(|e| format!("syncing {}: {e}", tmp.display()))?;
    drop(f);
    tokio::fs::rename(&tmp, &target)
        .await
        .map_err(|e| format!("renaming to {}: {e}", target.display()))?;
    if let Ok(dir) = tokio::fs::File::open(state_dir).await {
        let _ = dir.sync_all().await;
    }
    Ok(())
}
