//! Engines over shared databases: many processes (here: engines with their own pools), one
//! database, messages in random interleaving. Run on SQLite and PostgreSQL.

mod common;

use common::{on_both, TestDb};
use kefu_core::{ConversationKey, ConversationStore, Engine, Inbound, Outbound, OutboundKind};
use kefu_knowledge::faq::ValidationOptions;
use kefu_knowledge::{KnowledgeBase, MatcherOptions};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

fn knowledge() -> Arc<KnowledgeBase> {
    static KB: OnceLock<Arc<KnowledgeBase>> = OnceLock::new();
    KB.get_or_init(|| {
        let set =
            kefu_knowledge::defaults::load(&ValidationOptions::default()).expect("default FAQ");
        Arc::new(KnowledgeBase::build(set, MatcherOptions::default()).expect("default KB"))
    })
    .clone()
}

fn engine(db: &kefu_sql::Database) -> Arc<Engine> {
    Arc::new(
        Engine::builder(knowledge())
            .store(Arc::new(db.conversations()))
            .queue(Arc::new(db.queue()))
            .build(),
    )
}

/// Customer messages in both languages: FAQ questions, flows and their slots, commands,
/// chit-chat and requests for a person, so conversations wander through every path.
const MESSAGES: &[&str] = &[
    "你好",
    "我的卡密在哪里",
    "DD2024112300017",
    "怎么退款",
    "充值了没到账",
    "where is my card key",
    "how do i get a refund",
    "thanks!",
    "支持支付宝吗",
    "客服几点上班",
    "1",
    "/lang en",
    "/lang zh",
    "卡密显示无效",
    "订单号 DD2024112300042",
    "今天天气怎么样",
    "can i pay with paypal",
    "取消",
    "my order T20261123000042 any progress",
    "/start",
];

/// What a customer sees of a reply. The queue position in a hand-off depends on who else is
/// waiting, which differs between runs, so digits are dropped from hand-off texts.
fn visible(replies: &[Outbound]) -> Vec<(OutboundKind, String, usize)> {
    replies
        .iter()
        .map(|r| {
            let text = match r.kind {
                OutboundKind::Handoff => r.text.chars().filter(|c| !c.is_ascii_digit()).collect(),
                _ => r.text.clone(),
            };
            (r.kind, text, r.quick_replies.len())
        })
        .collect()
}

type Script = Vec<(String, String)>;

/// A script step that is not a message: a person hands the conversation back to the bot.
const RELEASE: &str = "<agent releases the conversation>";

fn scripts(conversations: usize, messages: usize, seed: u64) -> Vec<(ConversationKey, Script)> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..conversations)
        .map(|c| {
            let key = ConversationKey::new("telegram", format!("c{c}"));
            let script = (0..messages)
                .map(|m| {
                    let text = if rng.random_bool(0.15) {
                        RELEASE
                    } else {
                        MESSAGES[rng.random_range(0..MESSAGES.len())]
                    };
                    (format!("c{c}-m{m}"), text.to_string())
                })
                .collect();
            (key, script)
        })
        .collect()
}

/// An agent's release succeeds, or is refused because the customer has not written yet.
fn released_or_not_started(released: Result<(), kefu_core::EngineError>) {
    match released {
        Ok(()) | Err(kefu_core::EngineError::NoConversation(_)) => {}
        Err(e) => panic!("release failed: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_engines_answer_1000_interleaved_messages_exactly_once_and_in_order() {
    on_both(async |t: &TestDb| {
        let engines = [engine(&t.open().await), engine(&t.open().await)];
        let all = scripts(50, 20, 7);

        // 50 customers write at once, each waiting for the bot's answer before writing again;
        // each message goes to a random engine, and one in five is delivered to both at once
        // (a platform retrying a webhook). Replies are collected per message.
        let mut tasks = Vec::new();
        for (i, (key, script)) in all.iter().cloned().enumerate() {
            let engines = engines.clone();
            tasks.push(tokio::spawn(async move {
                let mut rng = StdRng::seed_from_u64(1000 + i as u64);
                let mut got: Vec<Vec<Outbound>> = Vec::new();
                for (id, text) in script {
                    tokio::time::sleep(Duration::from_micros(rng.random_range(0..3000))).await;
                    if text == RELEASE {
                        let released = engines[rng.random_range(0..2)]
                            .agents()
                            .release_to_bot(&key, "agent")
                            .await;
                        released_or_not_started(released);
                        got.push(Vec::new());
                        continue;
                    }
                    let message = Inbound::new(key.clone(), "customer", id, text);
                    let first = rng.random_range(0..2);
                    if rng.random_bool(0.2) {
                        let (a, b) = tokio::join!(
                            engines[first].handle(message.clone()),
                            engines[1 - first].handle(message)
                        );
                        let (a, b) = (a.unwrap(), b.unwrap());
                        assert!(
                            a.is_empty() || b.is_empty(),
                            "{key}: a message was answered twice"
                        );
                        got.push(if a.is_empty() { b } else { a });
                    } else {
                        got.push(engines[first].handle(message).await.unwrap());
                    }
                }
                (key, got)
            }));
        }
        let mut concurrent = BTreeMap::new();
        for task in tasks {
            let (key, got) = task.await.unwrap();
            concurrent.insert(key, got);
        }

        // The same conversations, one message at a time, in memory: what the bot must have said.
        let reference = Arc::new(Engine::builder(knowledge()).build());
        let mut answered = 0;
        for (key, script) in &all {
            let transcript = engines[0].transcript(key).await.unwrap();
            let customer_ids: Vec<_> = transcript
                .iter()
                .filter_map(|l| l.message_id.clone())
                .collect();
            let sent: Vec<_> = script
                .iter()
                .filter(|(_, text)| text != RELEASE)
                .map(|(id, _)| id.clone())
                .collect();
            assert_eq!(
                customer_ids, sent,
                "{}: {key}: every message once, in order",
                t.name
            );
            for ((id, text), got) in script.iter().zip(&concurrent[key]) {
                if text == RELEASE {
                    let released = reference.agents().release_to_bot(key, "agent").await;
                    released_or_not_started(released);
                    continue;
                }
                let expected = reference
                    .handle(Inbound::new(
                        key.clone(),
                        "customer",
                        id.clone(),
                        text.clone(),
                    ))
                    .await
                    .unwrap();
                assert_eq!(
                    visible(got),
                    visible(&expected),
                    "{}: {key} {id} {text:?}",
                    t.name
                );
                answered += usize::from(!got.is_empty());
            }
            let stored = engines[1].conversation(key).await.unwrap().expect("stored");
            // A release before the customer's first message finds no conversation and
            // commits nothing.
            let refused = script.iter().take_while(|(_, t)| t == RELEASE).count();
            assert_eq!(
                stored.version,
                (script.len() - refused) as u64,
                "{}: {key}: one committed turn per step",
                t.name
            );
        }
        // Most messages get an answer (the rest are relayed to the person holding the
        // conversation after a hand-off).
        assert!(
            answered > 500,
            "{}: only {answered} of 1000 steps answered",
            t.name
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_of_one_conversation_racing_on_two_engines_are_serialised() {
    on_both(async |t: &TestDb| {
        let dbs = [t.open().await, t.open().await];
        let engines = [engine(&dbs[0]), engine(&dbs[1])];
        for c in 0..5 {
            let key = ConversationKey::new("discord", format!("race{c}"));
            // Eight different messages of one conversation at the same moment, on both engines.
            let mut tasks = Vec::new();
            for m in 0..8 {
                let engine = engines[m % 2].clone();
                let message = Inbound::new(key.clone(), "racer", format!("r{m}"), MESSAGES[m]);
                tasks.push(tokio::spawn(async move {
                    engine.handle(message).await.unwrap()
                }));
            }
            for task in tasks {
                task.await.unwrap();
            }
            let stored = dbs[0].conversations().load(&key).await.unwrap().unwrap();
            assert_eq!(stored.version, 8, "{}: {key}: a turn was lost", t.name);
            let transcript = dbs[1].conversations().transcript(&key).await.unwrap();
            let mut ids: Vec<_> = transcript
                .iter()
                .filter_map(|l| l.message_id.clone())
                .collect();
            // Each turn's lines are together: a customer line, then only bot lines until the next.
            assert_eq!(transcript[0].speaker, kefu_core::Speaker::Customer);
            ids.sort();
            assert_eq!(
                ids,
                (0..8).map(|m| format!("r{m}")).collect::<Vec<_>>(),
                "{}",
                t.name
            );
        }
    })
    .await;
}
