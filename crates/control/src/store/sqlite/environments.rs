//! Environments (desired version, last-known-good), the successes that make a version
//! last-known-good, and second-person approvals.

use sqlx::Row;

use super::*;

#[async_trait::async_trait]
impl EnvironmentStore for Sqlite {
    async fn environments(&self) -> Result<Vec<EnvRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT name, position, desired, last_known_good FROM environments ORDER BY position",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(EnvRow {
                    name: r.try_get(0)?,
                    position: r.try_get(1)?,
                    desired: opt_version_col(r, 2)?,
                    last_known_good: opt_version_col(r, 3)?,
                })
            })
            .collect()
    }

    async fn set_desired(
        &self,
        env: &str,
        version: &str,
        event: &NewEvent<'_>,
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        sqlx::query("UPDATE environments SET desired = ? WHERE name = ?")
            .bind(version)
            .bind(env)
            .execute(&mut *tx)
            .await?;
        Self::append(&mut tx, event).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn has_succeeded(&self, env: &str, version: &str) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT 1 FROM successes WHERE environment = ? AND version = ?")
            .bind(env)
            .bind(version)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    async fn record_success(
        &self,
        env: &str,
        version: &str,
        instances: usize,
    ) -> Result<bool, StoreError> {
        let mut tx = self.write().await?;
        let done = sqlx::query(
            "INSERT OR IGNORE INTO successes (environment, version, at) VALUES (?, ?, ?)",
        )
        .bind(env)
        .bind(version)
        .bind(now())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query("UPDATE environments SET last_known_good = ? WHERE name = ?")
            .bind(version)
            .bind(env)
            .execute(&mut *tx)
            .await?;
        if done > 0 {
            let event = NewEvent {
                kind: "release.succeeded",
                subject: env,
                actor: "control",
                data: serde_json::json!({ "version": version, "instances": instances }),
            };
            Self::append(&mut tx, &event).await?;
        }
        tx.commit().await?;
        Ok(done > 0)
    }

    async fn request_approval(
        &self,
        env: &str,
        version: &str,
        sections: &[&str],
        requested_by: &str,
    ) -> Result<rampart_api::Approval, StoreError> {
        let mut tx = self.write().await?;
        let existing = sqlx::query("SELECT id FROM approvals WHERE environment = ? AND version = ? AND approved_by IS NULL")
            .bind(env)
            .bind(version)
            .fetch_optional(&mut *tx)
            .await?;
        let id: i64 = match existing {
            Some(row) => row.get(0),
            None => {
                let id = sqlx::query("INSERT INTO approvals (environment, version, sections, requested_by, requested_at) VALUES (?, ?, ?, ?, ?)")
                    .bind(env)
                    .bind(version)
                    .bind(serde_json::json!(sections).to_string())
                    .bind(requested_by)
                    .bind(now())
                    .execute(&mut *tx)
                    .await?
                    .last_insert_rowid();
                let event = NewEvent {
                    kind: "approval.requested",
                    subject: env,
                    actor: requested_by,
                    data: serde_json::json!({ "approval": id, "version": version, "sections": sections }),
                };
                Self::append(&mut tx, &event).await?;
                id
            }
        };
        tx.commit().await?;
        self.approval(id)
            .await?
            .ok_or(StoreError::Db(sqlx::Error::RowNotFound))
    }

    async fn approval(&self, id: i64) -> Result<Option<rampart_api::Approval>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, environment, version, sections, requested_by, requested_at, approved_by FROM approvals WHERE id = ?",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(approval_row)
            .collect::<Result<Vec<_>, _>>()?
            .pop())
    }

    async fn approvals(&self) -> Result<Vec<rampart_api::Approval>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, environment, version, sections, requested_by, requested_at, approved_by FROM approvals ORDER BY id DESC",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(approval_row).collect()
    }

    async fn grant(&self, id: i64, approver: &str) -> Result<bool, StoreError> {
        let mut tx = self.write().await?;
        let Some(row) = sqlx::query("SELECT environment, version FROM approvals WHERE id = ?")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(false);
        };
        let (env, version): (String, String) = (row.get(0), row.get(1));
        // Only a pending approval is granted: of two approvers at once, one wins.
        let claimed = sqlx::query(
            "UPDATE approvals SET approved_by = ?, approved_at = ? WHERE id = ? AND approved_by IS NULL",
        )
        .bind(approver)
        .bind(now())
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if claimed == 0 {
            return Ok(false);
        }
        let event = NewEvent {
            kind: "approval.granted",
            subject: &env,
            actor: approver,
            data: serde_json::json!({ "approval": id, "version": version }),
        };
        Self::append(&mut tx, &event).await?;
        tx.commit().await?;
        Ok(true)
    }
}
