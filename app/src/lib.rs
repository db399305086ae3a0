//! kefu-app: kefu's one wiring. [`config`] reads `kefu.yaml`; [`App::from_config`] builds
//! from it everything a running bot has — the knowledge base it names (FAQ files, sentence
//! encoders; [`knowledge::load_kb`]) — the [`Engine`], the [`Agents`] facade, the
//! [`Channels`] registry, the durable [`Outbox`] and its worker, and the [`Broadcast`] of
//! engine events — so `kefu chat` and a server build exactly the same thing.
//!
//! ```no_run
//! # async fn run() -> anyhow::Result<()> {
//! use kefu_app::{config::Config, App};
//!
//! let config = Config::load(None)?;
//! let app = App::from_config(&config).await?;
//! let mut events = app.events.subscribe();
//! let worker = app.outbox_worker();
//! tokio::spawn(async move { worker.run(std::future::pending()).await });
//! # let _ = events.try_recv();
//! # Ok(()) }
//! ```

pub mod config;
pub mod console;
pub mod knowledge;
pub mod metrics;
pub mod serve;
pub mod supervisor;

use anyhow::Context;
use config::Config;
use kefu_core::events::Broadcast;
use kefu_core::outbox::RetryPolicy;
use kefu_core::{Agents, Channel, Channels, Engine, Knowledge, Outbox, OutboxWorker};
use std::sync::Arc;

/// How many engine events a slow subscriber may fall behind before it loses the oldest.
pub const EVENT_BUFFER: usize = 1024;

/// A running bot's parts, built from one configuration.
#[derive(Clone)]
pub struct App {
    /// Answers customers' messages.
    pub engine: Arc<Engine>,
    /// What agents do with conversations and tickets.
    pub agents: Agents,
    /// The chat platforms messages go out through (none until registered).
    pub channels: Channels,
    /// Messages waiting to go out later (agents' replies, notices).
    pub outbox: Arc<dyn Outbox>,
    /// Every turn and agent action, for metrics and consoles.
    pub events: Broadcast,
    /// The counters behind `/metrics`, fed by the engine's events.
    pub metrics: Arc<metrics::Metrics>,
    /// The database conversations, the queue, tickets and orders live in.
    pub db: kefu_sql::Database,
    /// How the outbox worker retries.
    pub retry: RetryPolicy,
    /// Wakes this process's outbox worker: channels that write their replies to the outbox
    /// ([`Engine::handle_via_outbox`]) notify it so the replies go out at once.
    pub outbox_wake: Arc<tokio::sync::Notify>,
}

impl App {
    /// Loads the configured knowledge base (see [`knowledge::load_kb`]), then builds
    /// everything else as [`App::with_knowledge`] does.
    pub async fn from_config(config: &Config) -> anyhow::Result<App> {
        let kb = {
            let config = config.clone();
            tokio::task::spawn_blocking(move || knowledge::load_kb(&config, None))
                .await
                .context("loading the knowledge base stopped unexpectedly")??
        };
        Self::with_knowledge(config, Arc::new(kb)).await
    }

    /// Opens the configured database (creating and migrating it as needed), connects the
    /// configured order system, and builds the engine answering from `knowledge` (one loaded
    /// from elsewhere, as `kefu chat --kb DIR` does) with every port on that database.
    pub async fn with_knowledge(
        config: &Config,
        knowledge: Arc<dyn Knowledge>,
    ) -> anyhow::Result<App> {
        let lock_wait = std::time::Duration::from_millis(config.limits.turn_lock_wait_ms.max(1));
        let db = config.storage.open_with_lock_wait(lock_wait).await?;
        let events = Broadcast::new(EVENT_BUFFER);
        let metrics = Arc::new(metrics::Metrics::default());
        let store = Arc::new(db.conversations());
        let mut builder = Engine::builder(knowledge)
            .config(config.engine_config())
            .entities(config.entity_extractor()?)
            .store(store.clone())
            .queue(Arc::new(db.queue()))
            .tickets(Arc::new(db.tickets()))
            .audit(Arc::new(db.audit()))
            .attempts(Arc::new(db.attempts()))
            .events(Arc::new(events.clone()))
            .events(metrics.clone());
        if let Some(orders) = config.orders.open(&db).await? {
            builder = builder.orders(orders);
        }
        let engine = Arc::new(builder.build());
        Ok(App {
            agents: engine.agents(),
            engine,
            channels: Channels::new(),
            outbox: kefu_core::ConversationStore::outbox(&*store),
            events,
            metrics,
            db,
            retry: RetryPolicy::default(),
            outbox_wake: Arc::new(tokio::sync::Notify::new()),
        })
    }

    /// Adds a chat platform messages can go out through.
    pub fn with_channel(mut self, channel: Arc<dyn Channel>) -> Self {
        self.channels.register(channel);
        self
    }

    /// A worker delivering the outbox through the registered channels (run one per process).
    pub fn outbox_worker(&self) -> OutboxWorker {
        OutboxWorker::new(
            self.outbox.clone(),
            self.channels.clone(),
            self.retry.clone(),
        )
        .with_wake(self.outbox_wake.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kefu_core::testing::{OneEntry, ScriptedChannel};
    use kefu_core::ConversationStore;
    use kefu_core::{ConversationKey, EngineEvent, Inbound};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_app_wires_engine_agents_outbox_channels_and_events_on_one_database() {
        let dir = tempfile::tempdir().unwrap();
        let yaml = format!(
            "storage:\n  url: sqlite://{}/kefu.db\n",
            dir.path().display()
        );
        let config = Config::parse(std::path::Path::new("kefu.yaml"), &yaml).unwrap();
        let kb = Arc::new(OneEntry::new(
            "service.hours",
            "hours",
            "9点到24点",
            "9:00 to 24:00",
        ));
        let channel = Arc::new(ScriptedChannel::working());
        let app = App::with_knowledge(&config, kb)
            .await
            .unwrap()
            .with_channel(channel.clone());
        let mut events = app.events.subscribe();
        let chat = ConversationKey::new(kefu_core::testing::CHANNEL, "alice");
        let replies = app
            .engine
            .handle(Inbound::new(
                chat.clone(),
                "alice",
                "m1",
                "what are your hours?",
            ))
            .await
            .unwrap();
        assert_eq!(replies[0].text, "9:00 to 24:00");
        match events.try_recv().unwrap() {
            EngineEvent::Turn(turn) => assert_eq!(turn.entry.as_deref(), Some("service.hours")),
            other => panic!("{other:?}"),
        }
        app.agents
            .message(&chat, "bob", "hello from Bob")
            .await
            .unwrap();
        let stats = app.outbox_worker().run_once().await.unwrap();
        assert_eq!(stats.sent, 1);
        assert_eq!(channel.texts(), ["hello from Bob"]);
        // The same database the engine stores conversations in.
        assert_eq!(
            app.db
                .conversations()
                .transcript(&chat)
                .await
                .unwrap()
                .len(),
            3
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn from_config_loads_the_editors_faq_files_it_names() {
        let dir = tempfile::tempdir().unwrap();
        let faq = dir.path().join("faq");
        std::fs::create_dir(&faq).unwrap();
        std::fs::write(
            faq.join("shop.yaml"),
            "entries:\n  - id: shop.pickup\n    questions: [can i pick up in store, 可以到店自取吗]\n    answer:\n      zh: 可以，地址是人民路 1 号。\n      en: Yes, at 1 People's Road.\n",
        )
        .unwrap();
        let yaml = format!(
            "storage:\n  url: sqlite://{0}/kefu.db\nknowledge:\n  dir: {0}/faq\n",
            dir.path().display()
        );
        let config = Config::parse(std::path::Path::new("kefu.yaml"), &yaml).unwrap();
        let app = App::from_config(&config).await.unwrap();
        let chat = ConversationKey::new(kefu_core::testing::CHANNEL, "carol");
        let replies = app
            .engine
            .handle(Inbound::new(chat, "carol", "m1", "can I pick up in store?"))
            .await
            .unwrap();
        assert_eq!(replies[0].text, "Yes, at 1 People's Road.");
    }
}
