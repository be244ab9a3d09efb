//! Versions: immutable, stored once by content hash.

use rampart_api::{VersionId, VersionInfo};
use sqlx::Row;

use super::*;

#[async_trait::async_trait]
impl VersionStore for Postgres {
    async fn insert_version(
        &self,
        id: &str,
        document: &str,
        author: &str,
        message: &str,
        extra: serde_json::Value,
    ) -> Result<(VersionInfo, bool), StoreError> {
        let mut tx = self.write().await?;
        if let Some(existing) = Self::version_row(&mut tx, id).await? {
            return Ok((existing.0, false));
        }
        let parent = match sqlx::query("SELECT id FROM versions ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut *tx)
            .await?
        {
            Some(r) => Some(version_col(&r, 0)?),
            None => None,
        };
        let created_at = now();
        sqlx::query("INSERT INTO versions (id, document, parent, author, message, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(id)
            .bind(document)
            .bind(parent.as_ref().map(VersionId::as_str))
            .bind(author)
            .bind(message)
            .bind(&created_at)
            .execute(&mut *tx)
            .await?;
        let event = NewEvent {
            kind: "version.created",
            subject: id,
            actor: author,
            data: {
                let mut data = serde_json::json!({ "message": message, "parent": parent });
                if let (Some(d), serde_json::Value::Object(more)) = (data.as_object_mut(), extra) {
                    d.extend(more);
                }
                data
            },
        };
        Self::append(&mut tx, &event).await?;
        tx.commit().await?;
        let info = VersionInfo {
            id: VersionId::parse(id).map_err(StoreError::Malformed)?,
            parent,
            author: author.to_owned(),
            message: message.to_owned(),
            created_at,
        };
        Ok((info, true))
    }

    async fn version(&self, id: &str) -> Result<Option<(VersionInfo, String)>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        Self::version_row(&mut conn, id).await
    }

    async fn versions(&self) -> Result<Vec<VersionInfo>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, parent, author, message, created_at FROM versions ORDER BY seq DESC",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(version_info).collect()
    }
}

impl Postgres {
    async fn version_row(
        conn: &mut sqlx::PgConnection,
        id: &str,
    ) -> Result<Option<(VersionInfo, String)>, StoreError> {
        let row = sqlx::query(
            "SELECT id, parent, author, message, created_at, document FROM versions WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(conn)
        .await?;
        row.map(|r| Ok((version_info(&r)?, r.try_get(5)?)))
            .transpose()
    }
}
