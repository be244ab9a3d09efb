//! API tokens: digests of those created through the API, and revocations.

use sqlx::Row;

use super::*;

#[async_trait::async_trait]
impl TokenStore for Postgres {
    async fn create_token(&self, t: &StoredToken, actor: &str) -> Result<bool, StoreError> {
        let mut tx = self.write().await?;
        let inserted = sqlx::query(
            "INSERT INTO tokens (name, role, environments, digest, bootstrap, created_at, created_by) VALUES ($1, $2, $3, $4, 0, $5, $6) ON CONFLICT DO NOTHING",
        )
        .bind(&t.info.name)
        .bind(role_str(t.info.role))
        .bind(serde_json::to_string(&t.info.environments).unwrap_or_default())
        .bind(hex::encode(t.digest))
        .bind(&t.info.created_at)
        .bind(actor)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            return Ok(false);
        }
        let event = NewEvent {
            kind: "token.created",
            subject: &t.info.name,
            actor,
            data: serde_json::json!({ "role": t.info.role, "environments": t.info.environments }),
        };
        Self::append(&mut tx, &event).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn revoke_token(
        &self,
        t: &rampart_api::TokenInfo,
        actor: &str,
    ) -> Result<String, StoreError> {
        let mut tx = self.write().await?;
        let at = now();
        sqlx::query(
            "INSERT INTO tokens (name, role, environments, digest, bootstrap, revoked_at, revoked_by) VALUES ($1, $2, $3, '', 1, $4, $5) \
             ON CONFLICT(name) DO UPDATE SET revoked_at = excluded.revoked_at, revoked_by = excluded.revoked_by",
        )
        .bind(&t.name)
        .bind(role_str(t.role))
        .bind(serde_json::to_string(&t.environments).unwrap_or_default())
        .bind(&at)
        .bind(actor)
        .execute(&mut *tx)
        .await?;
        let event = NewEvent {
            kind: "token.revoked",
            subject: &t.name,
            actor,
            data: serde_json::json!({ "role": t.role, "bootstrap": t.bootstrap }),
        };
        Self::append(&mut tx, &event).await?;
        tx.commit().await?;
        Ok(at)
    }

    async fn tokens(&self) -> Result<Vec<StoredToken>, StoreError> {
        let rows = sqlx::query(
            "SELECT name, role, environments, digest, bootstrap, created_at, created_by, revoked_at FROM tokens ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let role: String = r.try_get(1)?;
                let envs: String = r.try_get(2)?;
                let hex_digest: String = r.try_get(3)?;
                let mut digest = [0u8; 32];
                if !hex_digest.is_empty() {
                    hex::decode_to_slice(&hex_digest, &mut digest)
                        .map_err(|e| StoreError::Malformed(format!("token digest: {e}")))?;
                }
                Ok(StoredToken {
                    info: rampart_api::TokenInfo {
                        name: r.try_get(0)?,
                        role: serde_json::from_value(serde_json::Value::String(role.clone()))
                            .map_err(|_| StoreError::Malformed(format!("token role {role:?}")))?,
                        environments: serde_json::from_str(&envs).unwrap_or_default(),
                        bootstrap: r.try_get::<i64, _>(4)? != 0,
                        created_at: r.try_get(5)?,
                        created_by: r.try_get(6)?,
                        revoked_at: r.try_get(7)?,
                    },
                    digest,
                })
            })
            .collect()
    }
}
