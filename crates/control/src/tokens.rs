//! API tokens with roles. `agent` may only register a gateway, long-poll and report (and, if
//! the token names environments, only in those); the others are ordered for reads and writes:
//! viewer < operator < approver. An agent token reads nothing else.
//!
//! At first start the control plane writes `DATA/tokens.json` with one token per role (mode
//! 0600); operators hand them out.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A gateway's agent: registers, long-polls, reports. Below viewer: it reads nothing else.
    Agent,
    Viewer,
    Operator,
    Approver,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenEntry {
    pub name: String,
    pub role: Role,
    pub token: String,
    /// For an agent token: the environments its gateways may join (none listed: any).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub environments: Vec<String>,
}

impl TokenEntry {
    /// A token for `name` with `role`, bound to no environment.
    pub fn new(name: &str, role: Role, token: &str) -> TokenEntry {
        TokenEntry {
            name: name.to_owned(),
            role,
            token: token.to_owned(),
            environments: vec![],
        }
    }
}

#[derive(Debug, Clone)]
pub struct Tokens {
    by_token: HashMap<String, Actor>,
}

impl Tokens {
    pub fn from_entries(entries: &[TokenEntry]) -> Tokens {
        Tokens {
            by_token: entries
                .iter()
                .map(|e| {
                    let actor = Actor {
                        name: e.name.clone(),
                        role: e.role,
                        environments: e.environments.clone(),
                    };
                    (e.token.clone(), actor)
                })
                .collect(),
        }
    }

    /// Loads `DIR/tokens.json`, creating it with a fresh token per role if it does not exist.
    /// A file from before agent tokens existed gains one (gateways use it, not the viewer's).
    pub async fn load_or_create(dir: &Path) -> std::io::Result<(Tokens, Vec<TokenEntry>)> {
        let path = dir.join("tokens.json");
        let mut entries: Vec<TokenEntry> = match tokio::fs::read(&path).await {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| std::io::Error::other(format!("{}: {e}", path.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => vec![],
            Err(e) => return Err(e),
        };
        let before = entries.len();
        let roles = [
            ("agent", Role::Agent),
            ("viewer", Role::Viewer),
            ("operator", Role::Operator),
            ("approver", Role::Approver),
        ];
        for (name, role) in roles {
            let missing = !entries.iter().any(|e| e.role == role);
            // A file that exists keeps its people: only the agent token is added to it.
            if missing && (before == 0 || role == Role::Agent) {
                entries.push(TokenEntry::new(name, role, &secret("rp_")));
            }
        }
        if entries.len() != before {
            write_private(dir, "tokens.json", &entries).await?;
        }
        Ok((Tokens::from_entries(&entries), entries))
    }

    /// Who holds a bearer token.
    pub fn check(&self, token: &str) -> Option<Actor> {
        self.by_token.get(token).cloned()
    }
}

/// Writes `DIR/NAME` as JSON readable by its owner only (0600), whole or not at all.
async fn write_private<T: Serialize>(dir: &Path, name: &str, value: &T) -> std::io::Result<()> {
    let text = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
    let tmp = dir.join(format!("{name}.tmp"));
    tokio::fs::write(&tmp, text).await?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tokio::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).await?;
    }
    tokio::fs::rename(&tmp, dir.join(name)).await
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
    /// The environments an agent token is bound to (empty: any).
    pub environments: Vec<String>,
}

impl Actor {
    /// Someone acting with `role` and no environment binding.
    pub fn new(name: &str, role: Role) -> Actor {
        Actor {
            name: name.to_owned(),
            role,
            environments: vec![],
        }
    }

    /// Whether this caller may act in `env`.
    pub fn may_act_in(&self, env: &str) -> bool {
        self.environments.is_empty() || self.environments.iter().any(|e| e == env)
    }
}
