//! API tokens with roles. `agent` may only register a gateway, long-poll and report (and, if
//! the token names environments, only in those); the others are ordered for reads and writes:
//! viewer < operator < approver. An agent token reads nothing else.
//!
//! At first start the control plane writes `DATA/tokens.json` with one token per role (mode
//! 0600): the bootstrap tokens, handed out by whoever runs it. Approvers create more through
//! the API (`rampart token create`); rampart keeps only their SHA-256 (in the store), shows a
//! secret once, and checks a presented token by its digest, compared in constant time. Any
//! token, bootstrap ones included, can be revoked by name; both are recorded as events.

use std::path::Path;
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

pub use rampart_api::Role;

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

/// A token rampart knows: its digest, never its secret.
#[derive(Debug, Clone)]
struct Known {
    actor: Actor,
    digest: [u8; 32],
    info: rampart_api::TokenInfo,
}

/// SHA-256 of a secret: an API token, or an instance credential.
pub fn digest(token: &str) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes()).into()
}

/// The tokens the API accepts; shared, so one created or revoked counts at once everywhere.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    known: Arc<RwLock<Vec<Known>>>,
}

impl Tokens {
    /// Bootstrap tokens (their secrets hashed here, not kept).
    pub fn from_entries(entries: &[TokenEntry]) -> Tokens {
        let known = entries
            .iter()
            .map(|e| Known {
                actor: Actor {
                    name: e.name.clone(),
                    role: e.role,
                    environments: e.environments.clone(),
                },
                digest: digest(&e.token),
                info: rampart_api::TokenInfo {
                    name: e.name.clone(),
                    role: e.role,
                    environments: e.environments.clone(),
                    bootstrap: true,
                    created_at: None,
                    created_by: None,
                    revoked_at: None,
                },
            })
            .collect();
        Tokens {
            known: Arc::new(RwLock::new(known)),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<Known>> {
        self.known.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Vec<Known>> {
        self.known.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds what the store holds: tokens created through the API, and revocations (of those
    /// and of bootstrap tokens).
    pub async fn load_stored(
        &self,
        store: &crate::store::Store,
    ) -> Result<(), crate::store::StoreError> {
        let stored = store.tokens().await?;
        let mut known = self.write();
        for t in stored {
            match known.iter_mut().find(|k| k.info.name == t.info.name) {
                Some(k) => k.info.revoked_at = t.info.revoked_at.clone(),
                None => known.push(Known {
                    actor: Actor {
                        name: t.info.name.clone(),
                        role: t.info.role,
                        environments: t.info.environments.clone(),
                    },
                    digest: t.digest,
                    info: t.info,
                }),
            }
        }
        Ok(())
    }

    /// Every token rampart knows, without secrets, by name.
    pub fn list(&self) -> Vec<rampart_api::TokenInfo> {
        let mut all: Vec<_> = self.read().iter().map(|k| k.info.clone()).collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// Creates a token: stored (its digest, and an event naming who), then accepted.
    pub async fn create(
        &self,
        store: &crate::store::Store,
        spec: &rampart_api::TokenSpec,
        by: &Actor,
    ) -> Result<rampart_api::NewToken, crate::ControlError> {
        use crate::ControlError;
        let valid = !spec.name.is_empty()
            && spec.name.len() <= 64
            && spec
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !valid {
            return Err(ControlError::Invalid(
                "name: 1 to 64 letters, digits, '.', '_' or '-'".into(),
            ));
        }
        if !spec.environments.is_empty() && spec.role != Role::Agent {
            return Err(ControlError::Invalid(
                "environments: only an agent token is bound to environments".into(),
            ));
        }
        if self.read().iter().any(|k| k.info.name == spec.name) {
            return Err(ControlError::Conflict(format!(
                "a token named {:?} exists (revoked ones keep their name)",
                spec.name
            )));
        }
        let secret = secret("rp_");
        let info = rampart_api::TokenInfo {
            name: spec.name.clone(),
            role: spec.role,
            environments: spec.environments.clone(),
            bootstrap: false,
            created_at: Some(crate::store::now()),
            created_by: Some(by.name.clone()),
            revoked_at: None,
        };
        let stored = crate::store::StoredToken {
            info: info.clone(),
            digest: digest(&secret),
        };
        if !store.create_token(&stored, &by.name).await? {
            return Err(ControlError::Conflict(format!(
                "a token named {:?} exists",
                spec.name
            )));
        }
        self.write().push(Known {
            actor: Actor {
                name: spec.name.clone(),
                role: spec.role,
                environments: spec.environments.clone(),
            },
            digest: stored.digest,
            info: info.clone(),
        });
        Ok(rampart_api::NewToken {
            info,
            token: secret,
        })
    }

    /// Revokes a token by name (bootstrap ones too): from now on it is refused.
    pub async fn revoke(
        &self,
        store: &crate::store::Store,
        name: &str,
        by: &Actor,
    ) -> Result<(), crate::ControlError> {
        use crate::ControlError;
        let Some(info) = self
            .read()
            .iter()
            .find(|k| k.info.name == name)
            .map(|k| k.info.clone())
        else {
            return Err(ControlError::NotFound(format!("no token named {name:?}")));
        };
        if info.revoked_at.is_some() {
            return Err(ControlError::Conflict(format!(
                "token {name:?} is revoked already"
            )));
        }
        if name == by.name {
            return Err(ControlError::Conflict(
                "a token cannot revoke itself; another approver can".into(),
            ));
        }
        let at = store.revoke_token(&info, &by.name).await?;
        if let Some(k) = self.write().iter_mut().find(|k| k.info.name == name) {
            k.info.revoked_at = Some(at);
        }
        Ok(())
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

    /// Who holds a bearer token: its digest compared with every known one in constant time
    /// (no early exit on a partial match), revoked tokens refused.
    pub fn check(&self, token: &str) -> Option<Actor> {
        let presented = digest(token);
        let known = self.read();
        let mut found: Option<&Known> = None;
        for k in known.iter() {
            if bool::from(k.digest.ct_eq(&presented)) {
                found = Some(k);
            }
        }
        found
            .filter(|k| k.info.revoked_at.is_none())
            .map(|k| k.actor.clone())
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
