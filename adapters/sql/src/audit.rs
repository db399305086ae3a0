//! [`SqlAudit`]: the `AuditLog` port on SQLite and PostgreSQL.

use crate::db::{millis, on_pool, on_writer, unavailable, Database};
use async_trait::async_trait;
use kefu_core::{AuditEvent, AuditLog, StoreError};
use sqlx::Row;

/// The audit log in the database (append only).
#[derive(Clone)]
pub struct SqlAudit {
    db: Database,
}

impl SqlAudit {
    pub(crate) fn new(db: Database) -> Self {
        SqlAudit { db }
    }
}

#[async_trait]
impl AuditLog for SqlAudit {
    async fn record(&self, event: AuditEvent) -> Result<(), StoreError> {
        on_writer!(self.db, |pool| {
            sqlx::query(
                "INSERT INTO audit_log (at, actor, action, subject, detail, dedupe_key) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            )
            .bind(millis(event.at))
            .bind(&event.actor)
            .bind(&event.action)
            .bind(&event.subject)
            .bind(&event.detail)
            .bind(event.dedupe_key.as_deref())
            .execute(pool)
            .await
            .map_err(|e| unavailable("cannot write the audit log", e))?;
            Ok(())
        })
    }

    async fn for_subject(&self, subject: &str) -> Result<Vec<AuditEvent>, StoreError> {
        let bad = |e| unavailable("cannot read the audit log", e);
        on_pool!(self.db, |pool| {
            let rows = sqlx::query(
                "SELECT at, actor, action, subject, detail, dedupe_key FROM audit_log WHERE subject = $1 ORDER BY id",
            )
            .bind(subject)
            .fetch_all(pool)
            .await
            .map_err(bad)?;
            rows.iter()
                .map(|row| {
                    Ok(AuditEvent {
                        at: row.try_get::<i64, _>("at").map_err(bad)?.max(0) as u64,
                        actor: row.try_get("actor").map_err(bad)?,
                        action: row.try_get("action").map_err(bad)?,
                        subject: row.try_get("subject").map_err(bad)?,
                        detail: row.try_get("detail").map_err(bad)?,
                        dedupe_key: row.try_get("dedupe_key").map_err(bad)?,
                    })
                })
                .collect()
        })
    }
}
