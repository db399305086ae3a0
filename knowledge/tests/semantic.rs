//! The `semantic` feature on the real multilingual-e5-small model (set up by
//! `kefu model install`; `KEFU_MODEL_DIR` or the default model directory).
#![cfg(feature = "semantic")]

use kefu_core::Decision;
use kefu_core::Knowledge;
use kefu_knowledge::semantic::{dot, E5Embedder, Embedder};
use kefu_knowledge::{defaults, faq, KnowledgeBase, MatcherOptions, ValidationOptions};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

fn model_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("KEFU_MODEL_DIR") {
        return dir.into();
    }
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".local/share")
        });
    base.join("kefu/models/multilingual-e5-small")
}

fn encoder() -> Arc<E5Embedder> {
    static ENCODER: OnceLock<Arc<E5Embedder>> = OnceLock::new();
    ENCODER
        .get_or_init(|| {
            Arc::new(E5Embedder::load(&model_dir()).unwrap_or_else(|e| {
                panic!("{e}\nthe semantic tests need the model: run `kefu model install`")
            }))
        })
        .clone()
}

#[test]
fn vectors_are_unit_length_deterministic_and_independent_of_the_batch() {
    let e = encoder();
    assert_eq!(e.dim(), 384);
    let texts = [
        "我的卡密在哪里",
        "where is my card key",
        "a much longer sentence about a top-up that never arrived on my account",
    ];
    let batch = e.embed(&texts).unwrap();
    for (text, v) in texts.iter().zip(&batch) {
        assert!((dot(v, v) - 1.0).abs() < 1e-4);
        let alone = e.embed(&[text]).unwrap().remove(0);
        assert!(
            dot(v, &alone) > 0.9999,
            "{text}: padding changed the vector"
        );
    }
    assert!(e.model_id().starts_with("e5/8520eedb"), "{}", e.model_id());
}

#[test]
fn meaning_crosses_languages() {
    let e = encoder();
    let v = e
        .embed(&[
            "退钱",
            "I want a refund",
            "where is my card key",
            "what's the weather like",
        ])
        .unwrap();
    let refund = dot(&v[0], &v[1]);
    assert!(
        refund > dot(&v[0], &v[2]),
        "退钱 is closer to a refund than to a card key"
    );
    assert!(
        refund > dot(&v[0], &v[3]),
        "退钱 is closer to a refund than to the weather"
    );
}

fn kb(cache: &Path) -> KnowledgeBase {
    let set = defaults::load(&ValidationOptions::default()).unwrap();
    let options = MatcherOptions {
        cache_dir: Some(cache.to_path_buf()),
        ..MatcherOptions::default()
    };
    KnowledgeBase::build_with(set, options, Some(encoder() as Arc<dyn Embedder>)).unwrap()
}

#[test]
fn paraphrases_in_other_words_and_languages_find_their_entry_and_a_restart_embeds_nothing() {
    let cache = tempfile::tempdir().unwrap();
    let kb = kb(cache.path());
    let first = kb.stats();
    assert!(first.embedded.embedded > 100, "{first:?}");
    assert!(!first.model_cached);
    for (query, id) in [
        ("钱扣了订单还是待付款", "payment.paid_no_order"),
        (
            "money left my account but the order still says unpaid",
            "payment.paid_no_order",
        ),
        ("退钱", "refund.request"),
        ("please return my money for this order", "refund.request"),
        ("我买的码在哪看", "order.card_key_lookup"),
    ] {
        let ranking = kb.rank(query, 3);
        let (_, evidence) = &kb.rank_with_evidence(query, 1)[0];
        assert!(evidence.has_semantic);
        assert_eq!(
            ranking.top().map(|c| c.id.as_str()),
            Some(id),
            "{query}: {ranking:?}"
        );
    }
    let chatter = kb.rank("帮我写一首关于春天的诗", 1).confidence();
    assert!(
        chatter < kb.thresholds().answer,
        "chatter confidence {chatter}"
    );

    // A restart: every vector and both models come from the cache.
    let again = kb_stats(cache.path());
    assert_eq!(again.embedded.embedded, 0, "{again:?}");
    assert_eq!(again.embedded.cached, first.questions);
    assert!(again.model_cached);
}

fn kb_stats(cache: &Path) -> kefu_knowledge::matcher::BuildStats {
    kb(cache).stats()
}

#[test]
fn a_chinese_question_finds_an_entry_written_only_in_english() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("shop.yaml"),
        "entries:
  - id: refund.request
    questions: [i want a refund, give me my money back, refund my order please]
    answer: { zh: 退款, en: refund }
  - id: order.card_key_lookup
    questions: [where is my card key, i did not receive my code, show me the key i bought]
    answer: { zh: 卡密, en: card key }
  - id: service.hours
    questions: [when are you open, what are your support hours, is anyone online at night]
    answer: { zh: 时间, en: hours }
",
    )
    .unwrap();
    let load = || faq::load_dir(dir.path(), &ValidationOptions::default()).unwrap();
    let lexical = KnowledgeBase::build(load(), MatcherOptions::default()).unwrap();
    let semantic = KnowledgeBase::build_with(
        load(),
        MatcherOptions::default(),
        Some(encoder() as Arc<dyn Embedder>),
    )
    .unwrap();
    for (query, id) in [
        ("退钱", "refund.request"),
        ("我的卡密在哪里", "order.card_key_lookup"),
        ("你们晚上有人在吗", "service.hours"),
    ] {
        // No word in common: the lexical matcher cannot answer.
        assert_ne!(lexical.decide(query, 3).0, Decision::Answer, "{query}");
        let ranking = semantic.rank(query, 3);
        assert_eq!(
            ranking.top().map(|c| c.id.as_str()),
            Some(id),
            "{query}: {ranking:?}"
        );
    }
}

#[test]
fn a_missing_or_damaged_model_is_a_clear_error_naming_the_install_command() {
    let dir = tempfile::tempdir().unwrap();
    let message = |dir: &Path| match E5Embedder::load(dir) {
        Ok(_) => panic!("loaded a model from {}", dir.display()),
        Err(e) => e.to_string(),
    };
    let missing = message(dir.path());
    assert!(
        missing.contains("model.safetensors is missing"),
        "{missing}"
    );
    assert!(missing.contains("kefu model install"), "{missing}");

    for file in ["model.safetensors", "tokenizer.json"] {
        std::fs::write(dir.path().join(file), b"not a model").unwrap();
    }
    std::fs::write(dir.path().join("config.json"), b"{\"hidden_size\": ").unwrap();
    let damaged = message(dir.path());
    assert!(damaged.contains("bad config.json"), "{damaged}");
    std::fs::copy(
        model_dir().join("config.json"),
        dir.path().join("config.json"),
    )
    .unwrap();
    let damaged = message(dir.path());
    assert!(damaged.contains("kefu model install"), "{damaged}");
}
