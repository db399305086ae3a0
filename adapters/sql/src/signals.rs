//! What the processes sharing one database tell each other: settings made once for all of
//! them, and signals ("conversation X changed") from one process to the others.
//!
//! On PostgreSQL a signal is a `NOTIFY` on a channel named after the topic (and the schema,
//! so deployments in different schemas of one database stay apart); every process that
//! [`Database::listen`]s gets it, itself included. SQLite is one process's database, so a
//! signal there goes only to this process's listeners.

use crate::db::{on_pool, on_writer, Pool};
use crate::{Database, DbError};
use sqlx::Row;
use std::time::Duration;
use tokio::sync::mpsc;

/// How many signals may wait for a slow listener: beyond it the database connection (or, on
/// SQLite, the topic's broadcast, which then says [`Signal::Everything`]) holds the rest.
const BACKLOG: usize = 4096;

/// One signal heard by [`Database::listen`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    /// What another process (or this one) announced.
    Payload(String),
    /// Signals may have been missed (the connection to the database was lost and made
    /// again, or the listener fell behind): whatever depends on them should look again.
    Everything,
}

impl Database {
    /// The value of setting `name`; when there is none yet, `value` is stored and returned.
    /// Every process of the database gets the same value, even when several start at once.
    pub async fn setting_or_insert(&self, name: &str, value: &str) -> Result<String, DbError> {
        on_writer!(self, |pool| {
            sqlx::query(
                "INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
            )
            .bind(name)
            .bind(value)
            .execute(pool)
            .await?;
        });
        let value = on_writer!(self, |pool| {
            sqlx::query("SELECT value FROM settings WHERE name = $1")
                .bind(name)
                .fetch_one(pool)
                .await?
                .try_get::<String, _>(0)?
        });
        Ok(value)
    }

    /// Tells every listener of `topic` — in every process on this database — `payload`.
    pub async fn announce(&self, topic: &str, payload: &str) -> Result<(), DbError> {
        match &self.pool {
            Pool::Postgres { namespace, .. } => {
                on_pool!(self, |pool| {
                    sqlx::query("SELECT pg_notify($1, $2)")
                        .bind(channel_name(namespace, topic))
                        .bind(payload)
                        .execute(pool)
                        .await?;
                });
            }
            Pool::Sqlite { .. } => self.local_signals(topic).send(payload),
        }
        Ok(())
    }

    /// Listens to `topic`: every [`Database::announce`] on it from now on arrives on the
    /// receiver, until it is dropped. On PostgreSQL this holds one connection of its own,
    /// made again (with [`Signal::Everything`]) whenever it is lost.
    pub async fn listen(&self, topic: &str) -> Result<mpsc::Receiver<Signal>, DbError> {
        let (tx, rx) = mpsc::channel(BACKLOG);
        match &self.pool {
            Pool::Postgres {
                pool, namespace, ..
            } => {
                let name = channel_name(namespace, topic);
                let mut listener = sqlx::postgres::PgListener::connect_with(pool).await?;
                listener.listen(&name).await?;
                tokio::spawn(async move {
                    loop {
                        let signal = match listener.try_recv().await {
                            Ok(Some(n)) => Signal::Payload(n.payload().to_string()),
                            // The connection was lost and is made again on the next call.
                            Ok(None) => Signal::Everything,
                            Err(e) => {
                                tracing::warn!(error = %e, "lost the database's signals; trying again");
                                tokio::time::sleep(Duration::from_secs(1)).await;
                                Signal::Everything
                            }
                        };
                        if tx.send(signal).await.is_err() {
                            return;
                        }
                    }
                });
            }
            Pool::Sqlite { .. } => {
                let mut heard = self.local_signals(topic).subscribe();
                tokio::spawn(async move {
                    loop {
                        let signal = match heard.recv().await {
                            Ok(payload) => Signal::Payload(payload),
                            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                                Signal::Everything
                            }
                            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                        };
                        if tx.send(signal).await.is_err() {
                            return;
                        }
                    }
                });
            }
        }
        Ok(rx)
    }

    fn local_signals(&self, topic: &str) -> LocalTopic {
        let mut topics = self
            .signals
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        LocalTopic(
            topics
                .entry(topic.to_string())
                .or_insert_with(|| tokio::sync::broadcast::channel(BACKLOG).0)
                .clone(),
        )
    }
}

/// One topic's broadcast within this process (SQLite).
struct LocalTopic(tokio::sync::broadcast::Sender<String>);

impl LocalTopic {
    fn send(&self, payload: &str) {
        // No listener is not an error: nobody needed to hear it.
        let _ = self.0.send(payload.to_string());
    }

    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<String> {
        self.0.subscribe()
    }
}

/// The PostgreSQL channel of `topic` in the schema `namespace`.
fn channel_name(namespace: &str, topic: &str) -> String {
    if namespace.is_empty() {
        format!("kefu.{topic}")
    } else {
        format!("kefu.{namespace}.{topic}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DbOptions;

    async fn sqlite() -> (tempfile::TempDir, Database) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/kefu.db", dir.path().display());
        let db = Database::connect(&url, &DbOptions::default())
            .await
            .unwrap();
        (dir, db)
    }

    #[tokio::test]
    async fn a_setting_is_made_once_and_kept() {
        let (_dir, db) = sqlite().await;
        assert_eq!(db.setting_or_insert("k", "first").await.unwrap(), "first");
        assert_eq!(db.setting_or_insert("k", "second").await.unwrap(), "first");
        assert_eq!(db.setting_or_insert("j", "other").await.unwrap(), "other");
    }

    #[tokio::test]
    async fn signals_reach_the_listeners_of_their_topic_only() {
        let (_dir, db) = sqlite().await;
        let mut web = db.listen("web").await.unwrap();
        let mut other = db.listen("other").await.unwrap();
        db.announce("web", "conversation-1").await.unwrap();
        assert_eq!(
            web.recv().await,
            Some(Signal::Payload("conversation-1".into()))
        );
        assert!(other.try_recv().is_err());
    }

    #[test]
    fn channels_are_per_schema() {
        assert_eq!(channel_name("", "web"), "kefu.web");
        assert_ne!(channel_name("a", "web"), channel_name("b", "web"));
    }
}
