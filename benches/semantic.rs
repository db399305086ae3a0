//! Benchmarks of semantic matching (needs `--features semantic` and `kefu model install`).
//!
//! - `semantic/embed_one`: the encoder on one customer message.
//! - `semantic/rank_default_kb` and `lexical/rank_default_kb`: `KnowledgeBase::rank` on the
//!   built-in knowledge base with and without the encoder, over the same rotating messages;
//!   their ratio is what semantic matching costs per message.
//!
//! ```sh
//! eval "$(scripts/install-libtorch)"
//! cargo bench --features semantic --bench semantic
//! ```

use criterion::{criterion_main, Criterion};
use kefu_core::Knowledge;
use kefu_knowledge::semantic::{E5Embedder, Embedder};
use kefu_knowledge::{defaults, KnowledgeBase, MatcherOptions, ValidationOptions};
use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;

/// Paraphrases, slang and chatter the built-in FAQ does not spell out.
const MESSAGES: &[&str] = &[
    "钱扣了订单还是待付款",
    "买的码咋还没到",
    "退钱!!!",
    "the key u sent me doesnt work",
    "money left my account but order says unpaid",
    "充值了游戏里没到账啊",
    "can a human help me",
    "今天天气怎么样",
];

fn model_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("KEFU_MODEL_DIR") {
        return dir.into();
    }
    let home = PathBuf::from(std::env::var_os("HOME").expect("HOME"));
    std::env::var_os("XDG_DATA_HOME")
        .map_or_else(|| home.join(".local/share"), PathBuf::from)
        .join("kefu/models/multilingual-e5-small")
}

fn benches() {
    let mut c = Criterion::default().configure_from_args();
    let encoder: Arc<dyn Embedder> = Arc::new(
        E5Embedder::load(&model_dir()).expect("the model: run `kefu model install` first"),
    );
    let set = || defaults::load(&ValidationOptions::default()).expect("built-in FAQ");
    let lexical = KnowledgeBase::build(set(), MatcherOptions::default()).expect("build");
    let semantic =
        KnowledgeBase::build_with(set(), MatcherOptions::default(), Some(encoder.clone()))
            .expect("build");
    let mut i = 0;
    c.bench_function("semantic/embed_one", |b| {
        b.iter(|| {
            i += 1;
            black_box(
                encoder
                    .embed(&[MESSAGES[i % MESSAGES.len()]])
                    .expect("embed"),
            )
        })
    });
    for (name, kb) in [("lexical", &lexical), ("semantic", &semantic)] {
        let mut i = 0;
        c.bench_function(&format!("{name}/rank_default_kb"), |b| {
            b.iter(|| {
                i += 1;
                black_box(kb.rank(MESSAGES[i % MESSAGES.len()], 3))
            })
        });
    }
    c.final_summary();
}

criterion_main!(benches);
