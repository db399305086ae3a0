//! [`SqlAttempts`]: the `Attempts` port on SQLite and PostgreSQL — a limit checked and an
//! attempt recorded in one transaction, so racing processes cannot pass it together.

use crate::db::{
    advisory_key, millis, on_pool, on_writer, unavailable, BeginWrite, Database, Pool,
};
use async_trait::async_trait;
use kefu_core::{Attempts, Counter, Limit, StoreError, Taken};
use sqlx::Row;

/// Attempts older than this are dropped by whichever take comes along (at most once an hour
/// per process), so counters nobody uses again — thousands of throwaway accounts — do not
/// stay for ever. Limits' windows must be shorter (they are an hour and a day).
pub const ATTEMPTS_KEPT_MS: u64 = 7 * 24 * 60 * 60 * 1000;

/// Limited attempts (ownership proofs, card-key views) in the database.
#[derive(Clone)]
pub struct SqlAttempts {
    db: Database,
}

impl SqlAttempts {
    pub(crate) fn new(db: Database) -> Self {
        SqlAttempts { db }
    }
}

/// What one take found, before it commits.
enum Found {
    Already,
    Full(Counter),
    Room,
}

#[async_trait]
impl Attempts for SqlAttempts {
    async fn take(
        &self,
        id: &str,
        counters: &[Counter],
        limit: Limit,
        at: u64,
    ) -> Result<Taken, StoreError> {
        let fail = |e| unavailable("cannot count attempts", e);
        // Counters in one order everywhere, so two takes never wait on each other in a circle.
        let mut counters = counters.to_vec();
        counters.sort();
        counters.dedup();
        let namespace = match &self.db.pool {
            Pool::Postgres { namespace, .. } => namespace.clone(),
            Pool::Sqlite { .. } => String::new(),
        };
        let since = millis(limit.since);
        on_writer!(self.db, |pool| {
            // SQLite: BEGIN IMMEDIATE holds the database's write lock from here to the commit.
            let mut tx = pool.begin_write().await.map_err(fail)?;
            if self.db.backend() == crate::Backend::Postgres {
                // PostgreSQL: one transaction-scoped lock per counter, freed at commit.
                let mut keys: Vec<i64> = counters
                    .iter()
                    .map(|c| advisory_key(&[&namespace, "kefu-attempts", c.space.as_str(), &c.key]))
                    .collect();
                keys.sort_unstable();
                keys.dedup();
                for key in keys {
                    sqlx::query("SELECT pg_advisory_xact_lock($1)")
                        .bind(key)
                        .execute(&mut *tx)
                        .await
                        .map_err(fail)?;
                }
            }
            let mut found = Found::Room;
            let mut recorded = 0;
            for counter in &counters {
                let row = sqlx::query(
                    "SELECT COUNT(*) AS n, \
                     COALESCE(SUM(CASE WHEN attempt = $4 THEN 1 ELSE 0 END), 0) AS mine \
                     FROM attempts WHERE space = $1 AND subject = $2 AND (at >= $3 OR attempt = $4)",
                )
                .bind(counter.space.as_str())
                .bind(&counter.key)
                .bind(since)
                .bind(id)
                .fetch_one(&mut *tx)
                .await
                .map_err(fail)?;
                let n: i64 = row.try_get("n").map_err(fail)?;
                let mine: i64 = row.try_get("mine").map_err(fail)?;
                recorded += usize::from(mine > 0);
                if mine == 0 && n >= limit.max as i64 && matches!(found, Found::Room) {
                    found = Found::Full(counter.clone());
                }
            }
            if !counters.is_empty() && recorded == counters.len() {
                found = Found::Already;
            }
            match found {
                Found::Already => {
                    tx.commit().await.map_err(fail)?;
                    Ok(Taken::Yes)
                }
                Found::Full(counter) => {
                    tx.rollback().await.map_err(fail)?;
                    Ok(Taken::Refused(counter))
                }
                Found::Room => {
                    let last = self
                        .db
                        .attempts_pruned
                        .load(std::sync::atomic::Ordering::Relaxed);
                    if at.saturating_sub(last) > 60 * 60 * 1000 {
                        self.db
                            .attempts_pruned
                            .store(at, std::sync::atomic::Ordering::Relaxed);
                        sqlx::query("DELETE FROM attempts WHERE at < $1")
                            .bind(millis(at.saturating_sub(ATTEMPTS_KEPT_MS)))
                            .execute(&mut *tx)
                            .await
                            .map_err(fail)?;
                    }
                    for counter in &counters {
                        // Attempts out of every window are dropped as the counter is used.
                        sqlx::query(
                            "DELETE FROM attempts WHERE space = $1 AND subject = $2 AND at < $3",
                        )
                        .bind(counter.space.as_str())
                        .bind(&counter.key)
                        .bind(since)
                        .execute(&mut *tx)
                        .await
                        .map_err(fail)?;
                        sqlx::query(
                            "INSERT INTO attempts (space, subject, attempt, at) VALUES ($1, $2, $3, $4) \
                             ON CONFLICT DO NOTHING",
                        )
                        .bind(counter.space.as_str())
                        .bind(&counter.key)
                        .bind(id)
                        .bind(millis(at))
                        .execute(&mut *tx)
                        .await
                        .map_err(fail)?;
                    }
                    tx.commit().await.map_err(fail)?;
                    Ok(Taken::Yes)
                }
            }
        })
    }

    async fn count(&self, counter: &Counter, since: u64) -> Result<usize, StoreError> {
        on_pool!(self.db, |pool| {
            let n: i64 = sqlx::query(
                "SELECT COUNT(*) FROM attempts WHERE space = $1 AND subject = $2 AND at >= $3",
            )
            .bind(counter.space.as_str())
            .bind(&counter.key)
            .bind(millis(since))
            .fetch_one(pool)
            .await
            .and_then(|r| r.try_get(0))
            .map_err(|e| unavailable("cannot count attempts", e))?;
            Ok(n.max(0) as usize)
        })
    }

    async fn withdraw(&self, id: &str) -> Result<(), StoreError> {
        on_writer!(self.db, |pool| {
            sqlx::query("DELETE FROM attempts WHERE attempt = $1")
                .bind(id)
                .execute(pool)
                .await
                .map_err(|e| unavailable("cannot withdraw an attempt", e))?;
            Ok(())
        })
    }
}
