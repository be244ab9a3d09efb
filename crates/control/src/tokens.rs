//! API tokens with roles: viewer < operator < approver.
//!
//! At first start the control plane writes `DATA/tokens.json` with one token per role (mode
//! 0600); operators hand them out. A token is checked by its SHA-256, in constant time.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Viewer,
    Operator,
    Approver,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenEntry {
    pub name: String,
    pub role: Role,
    pub token: String,
}

#[derive(Debug, Clone)]
pub struct Tokens {
    by_token: HashMap<String, (String, Role)>,
}

impl Tokens {
    pub fn from_entries(entries: &[TokenEntry]) -> Tokens {
        Tokens {
            by_token: entries
                .iter()
                .map(|e| (e.token.clone(), (e.name.clone(), e.role)))
                .collect(),
        }
    }

    /// Loads `DIR/tokens.json`, creating it with a fresh token per role if it does not exist.
    pub async fn load_or_create(dir: &Path) -> std::io::Result<(Tokens, Vec<TokenEntry>)> {
        let path = dir.join("tokens.json");
        match tokio::fs::read(&path).await {
            Ok(bytes) => {
                let entries: Vec<TokenEntry> = serde_json::from_slice(&bytes)
                    .map_err(|e| std::io::Error::other(format!("{}: {e}", path.display())))?;
                Ok((Tokens::from_entries(&entries), entries))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let entries: Vec<TokenEntry> = [
                    ("viewer", Role::Viewer),
                    ("operator", Role::Operator),
                    ("approver", Role::Approver),
                ]
                .into_iter()
                .map(|(name, role)| TokenEntry {
                    name: name.into(),
                    role,
                    token: secret("rp_"),
                })
                .collect();
                let text = serde_json::to_vec_pretty(&entries).map_err(std::io::Error::other)?;
                let tmp = dir.join("tokens.json.tmp");
                tokio::fs::write(&tmp, text).await?;
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    tokio::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
                        .await?;
                }
                tokio::fs::rename(&tmp, &path).await?;
                Ok((Tokens::from_entries(&entries), entries))
            }
            Err(e) => Err(e),
        }
    }

    /// The name and role of a bearer token.
    pub fn check(&self, token: &str) -> Option<(String, Role)> {
        self.by_token.get(token).cloned()
    }
}

/// 128 random bits from the operating system, hex, after `prefix`: API tokens, subscriber tokens
/// and webhook signing keys.
pub fn secret(prefix: &str) -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // The OS source failing is not something to limp on with a weaker one.
        panic!("the operating system's random source failed");
    }
    format!("{prefix}{}", hex::encode(bytes))
}

/// Who is asking.
#[derive(Debug, Clone)]
pub struct Actor {
    pub name: String,
    pub role: Role,
}
