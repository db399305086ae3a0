//! Benchmarks of semantic matching (needs `--features semantic` and `kefu model install`).
//!
//! - `semantic/embed_one` and `english/embed_one`: multilingual-e5-small on one customer
//!   message, and the English encoder on one English message.
//! - `semantic/rank_default_kb`, `multilingual/rank_default_kb` and `lexical/rank_default_kb`:
//!   `KnowledgeBase::rank` on the built-in knowledge base with both encoders (the default),
//!   with the multilingual one alone, and with none, over the same rotating messages; their
//!   ratios are what semantic matching costs per message.
//!
//! ```sh
//! eval "$(scripts/install-libtorch)"
//! cargo bench --features semantic --bench semantic
//! ```

use criterion::{criterion_main, Criterion};
use kefu_core::Knowledge;
use kefu_knowledge::semantic::{has_cjk, BertEmbedder, Embedder};
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

fn model_dir(var: &str, name: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os(var) {
        return dir.into();
    }
    let home = PathBuf::from(std::env::var_os("HOME").expect("HOME"));
    std::env::var_os("XDG_DATA_HOME")
        .map_or_else(|| home.join(".local/share"), PathBuf::from)
        .join("kefu/models")
        .join(name)
}

fn benches() {
    let mut c = Criterion::default().configure_from_args();
    let install = "the models: run `kefu model install` first";
    let dir = model_dir("KEFU_MODEL_DIR", "multilingual-e5-small");
    let encoder: Arc<dyn Embedder> = Arc::new(BertEmbedder::multilingual_e5(&dir).expect(install));
    let dir = model_dir("KEFU_ENGLISH_MODEL_DIR", "all-minilm-l6-v2");
    let english: Arc<dyn Embedder> = Arc::new(BertEmbedder::english_minilm(&dir).expect(install));
    let set = || defaults::load(&ValidationOptions::default()).expect("built-in FAQ");
    let options = MatcherOptions::default;
    let lexical = KnowledgeBase::build(set(), options()).expect("build");
    let multilingual =
        KnowledgeBase::build_with(set(), options(), vec![encoder.clone()]).expect("build");
    let both = vec![encoder.clone(), english.clone()];
    let semantic = KnowledgeBase::build_with(set(), options(), both).expect("build");
    let english_messages: Vec<&str> = MESSAGES.iter().copied().filter(|m| !has_cjk(m)).collect();
    for (name, encoder, messages) in [
        ("semantic", &encoder, MESSAGES),
        ("english", &english, english_messages.as_slice()),
    ] {
        let mut i = 0;
        c.bench_function(&format!("{name}/embed_one"), |b| {
            b.iter(|| {
                i += 1;
                black_box(
                    encoder
                        .embed(&[messages[i % messages.len()]])
                        .expect("embed"),
                )
            })
        });
    }
    for (name, kb) in [
        ("lexical", &lexical),
        ("multilingual", &multilingual),
        ("semantic", &semantic),
    ] {
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
