//! API keys: the key's SHA-256 compared in constant time against every configured hash.

use std::sync::Arc;

use http::{HeaderMap, HeaderName};
use rampart_model::ApiKeyConfig;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{AuthError, Identity};

pub struct ApiKeys {
    header: HeaderName,
    hashes: Vec<[u8; 32]>,
    name: Arc<str>,
}

impl ApiKeys {
    pub fn new(c: &ApiKeyConfig, name: Arc<str>) -> ApiKeys {
        ApiKeys {
            header: c.header.clone(),
            hashes: c.keys_sha256.clone(),
            name,
        }
    }

    pub fn check(&self, headers: &HeaderMap) -> Result<Arc<Identity>, AuthError> {
        let key = headers
            .get(&self.header)
            .ok_or_else(|| AuthError::Missing(format!("no {} header", self.header)))?;
        let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        // Compare against every hash without stopping early, so timing says nothing about which.
        let mut found = subtle::Choice::from(0u8);
        for h in &self.hashes {
            found |= h.ct_eq(&digest);
        }
        if bool::from(found) {
            Ok(Identity::new(
                self.name.clone(),
                Some(format!("apikey:{}", hex_prefix(&digest))),
                vec![],
                None,
                true,
            ))
        } else {
            Err(AuthError::Invalid("unknown API key".into()))
        }
    }
}

fn hex_prefix(d: &[u8; 32]) -> String {
    d[..4].iter().map(|b| format!("{b:02x}")).collect()
}
