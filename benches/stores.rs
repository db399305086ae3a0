//! Turns per second through the engine with each conversation store.
//!
//! # What is measured
//!
//! [`Engine::handle`] on the built-in knowledge base with its conversation store and hand-off
//! queue in memory, in an SQLite file (WAL, as `kefu` runs by default; `sqlite_uncached` without
//! the in-process copy of recently committed conversations) and in PostgreSQL
//! (`KEFU_BENCH_POSTGRES_URL`, default `postgres://postgres@127.0.0.1:5432/test`, in a schema of
//! its own that is dropped afterwards; skipped with a notice when the server cannot be reached).
//!
//! - `store_turn/*`: one turn at a time. Conversations are eight messages long (a greeting,
//!   shop questions in both languages, thanks), so most turns load and update an existing
//!   conversation and append to its transcript, as in real traffic; every turn is a new
//!   message id, so none is short-circuited as a duplicate.
//! - `store_turns_16/*`: sixteen turns of sixteen different conversations at once, on a
//!   multi-threaded runtime with the machine's cores: what a busy bot sees. Criterion's
//!   throughput line gives turns per second.
//!
//! ```sh
//! cargo bench --bench stores
//! ```

use criterion::{criterion_main, Criterion, Throughput};
use kefu_core::{ConversationKey, Engine, Inbound};
use kefu_knowledge::{defaults, KnowledgeBase, MatcherOptions, ValidationOptions};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// One conversation's messages, in order: small talk and shop questions that the bot answers
/// itself, so every turn is a full one (ranked, answered, committed).
const SCRIPT: &[&str] = &[
    "你好",
    "可以用支付宝付款吗",
    "how long til i get the code after i pay",
    "退款多久能到账",
    "do you offer bulk discounts for resellers",
    "刚买的steam充值卡 卡密在哪查",
    "what payment methods do you take",
    "谢谢",
];

struct Bench {
    name: &'static str,
    engine: Arc<Engine>,
    cleanup: Option<kefu_sql::Database>,
    _dir: Option<tempfile::TempDir>,
}

fn knowledge() -> Arc<KnowledgeBase> {
    let set = defaults::load(&ValidationOptions::default()).expect("default FAQ");
    Arc::new(KnowledgeBase::build(set, MatcherOptions::default()).expect("default KB"))
}

async fn setups(kb: Arc<KnowledgeBase>) -> Vec<Bench> {
    let mut out = vec![Bench {
        name: "memory",
        engine: Arc::new(Engine::builder(kb.clone()).build()),
        cleanup: None,
        _dir: None,
    }];
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = format!("sqlite://{}/kefu.db", dir.path().display());
    let db = kefu_sql::Database::connect(&url, &Default::default())
        .await
        .expect("SQLite");
    out.push(Bench {
        name: "sqlite",
        engine: sql_engine(&kb, &db),
        cleanup: None,
        _dir: Some(dir),
    });
    // The same without the in-process copy of recently committed conversations: every turn
    // reads its conversation from the file first (what a turn costs after a restart, or when
    // several processes share the file).
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = format!("sqlite://{}/kefu.db", dir.path().display());
    let uncached = kefu_sql::DbOptions {
        conversation_cache: 0,
        ..Default::default()
    };
    let db = kefu_sql::Database::connect(&url, &uncached)
        .await
        .expect("SQLite");
    out.push(Bench {
        name: "sqlite_uncached",
        engine: sql_engine(&kb, &db),
        cleanup: None,
        _dir: Some(dir),
    });
    let options = kefu_sql::DbOptions {
        schema: Some(schema()),
        ..Default::default()
    };
    match kefu_sql::Database::connect(&postgres_url(), &options).await {
        Ok(db) => out.push(Bench {
            name: "postgres",
            engine: sql_engine(&kb, &db),
            cleanup: Some(db),
            _dir: None,
        }),
        Err(e) => eprintln!("PostgreSQL benchmarks skipped: {e}"),
    }
    out
}

fn postgres_url() -> String {
    std::env::var("KEFU_BENCH_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

fn schema() -> String {
    format!("kefu_bench_{}", std::process::id())
}

fn sql_engine(kb: &Arc<KnowledgeBase>, db: &kefu_sql::Database) -> Arc<Engine> {
    Arc::new(
        Engine::builder(kb.clone())
            .store(Arc::new(db.conversations()))
            .queue(Arc::new(db.queue()))
            .build(),
    )
}

/// The `n`-th message of the benchmark: conversation `n / 8`, its `n % 8`-th line.
fn message(prefix: &str, n: u64) -> Inbound {
    let key = ConversationKey::new("bench", format!("{prefix}-{}", n / SCRIPT.len() as u64));
    let text = SCRIPT[(n % SCRIPT.len() as u64) as usize];
    Inbound::new(key, "customer", format!("m{n}"), text)
}

fn benches() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(6))
        .configure_from_args();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let kb = knowledge();
    let benches = runtime.block_on(setups(kb));
    let counter = AtomicU64::new(0);

    let mut group = c.benchmark_group("store_turn");
    group.throughput(Throughput::Elements(1));
    for bench in &benches {
        group.bench_function(bench.name, |b| {
            b.iter(|| {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                runtime
                    .block_on(bench.engine.handle(message("seq", n)))
                    .expect("turn")
            })
        });
    }
    group.finish();

    const AT_ONCE: u64 = 16;
    let mut group = c.benchmark_group("store_turns_16");
    group.throughput(Throughput::Elements(AT_ONCE));
    for bench in &benches {
        group.bench_function(bench.name, |b| {
            b.iter(|| {
                // Sixteen conversations, one turn each, all at once.
                let round = counter.fetch_add(1, Ordering::Relaxed);
                runtime.block_on(async {
                    let turns: Vec<_> = (0..AT_ONCE)
                        .map(|i| {
                            let engine = bench.engine.clone();
                            let n = (round / SCRIPT.len() as u64 * AT_ONCE + i)
                                * SCRIPT.len() as u64
                                + round % SCRIPT.len() as u64;
                            tokio::spawn(async move { engine.handle(message("par", n)).await })
                        })
                        .collect();
                    for turn in turns {
                        turn.await.expect("task").expect("turn");
                    }
                })
            })
        });
    }
    group.finish();

    for bench in benches {
        if let Some(db) = bench.cleanup {
            runtime.block_on(async {
                use sqlx::Connection;
                db.close().await;
                let mut conn = sqlx::PgConnection::connect(&postgres_url())
                    .await
                    .expect("PostgreSQL");
                sqlx::query(&format!("DROP SCHEMA IF EXISTS {} CASCADE", schema()))
                    .execute(&mut conn)
                    .await
                    .expect("drop the benchmark schema");
            });
        }
    }
}

criterion_main!(benches);
