//! The `semantic` feature on the real models (set up by `kefu model install`):
//! multilingual-e5-small (`KEFU_MODEL_DIR` or the default model directory) and the English
//! all-MiniLM-L6-v2 (`KEFU_ENGLISH_MODEL_DIR` or its default directory).
#![cfg(feature = "semantic")]

use kefu_core::Decision;
use kefu_core::Knowledge;
use kefu_knowledge::semantic::{dot, has_cjk, BertEmbedder, EmbedError, Embedder};
use kefu_knowledge::{defaults, faq, KnowledgeBase, MatcherOptions, ValidationOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

fn installed(var: &str, name: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os(var) {
        return dir.into();
    }
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".local/share")
        });
    base.join("kefu/models").join(name)
}

fn model_dir() -> PathBuf {
    installed("KEFU_MODEL_DIR", "multilingual-e5-small")
}

fn english_model_dir() -> PathBuf {
    installed("KEFU_ENGLISH_MODEL_DIR", "all-minilm-l6-v2")
}

fn loaded(
    cell: &'static OnceLock<Arc<BertEmbedder>>,
    load: impl FnOnce() -> Result<BertEmbedder, EmbedError>,
) -> Arc<BertEmbedder> {
    cell.get_or_init(|| {
        Arc::new(load().unwrap_or_else(|e| {
            panic!("{e}\nthe semantic tests need the models: run `kefu model install`")
        }))
    })
    .clone()
}

fn encoder() -> Arc<BertEmbedder> {
    static ENCODER: OnceLock<Arc<BertEmbedder>> = OnceLock::new();
    loaded(&ENCODER, || BertEmbedder::multilingual_e5(&model_dir()))
}

fn english() -> Arc<BertEmbedder> {
    static ENCODER: OnceLock<Arc<BertEmbedder>> = OnceLock::new();
    loaded(&ENCODER, || {
        BertEmbedder::english_minilm(&english_model_dir())
    })
}

/// Both encoders, as `knowledge.semantic` uses them by default.
fn encoders() -> Vec<Arc<dyn Embedder>> {
    vec![encoder(), english()]
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
    KnowledgeBase::build_with(set, options, encoders()).unwrap()
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

    // A restart: every vector of both encoders and both models come from the cache. The
    // English encoder holds the questions without Chinese characters.
    let again = kb_stats(cache.path());
    assert_eq!(again.embedded.embedded, 0, "{again:?}");
    let set = defaults::load(&ValidationOptions::default()).unwrap();
    let texts: Vec<&str> = set.texts().collect();
    let english = texts.iter().filter(|t| !has_cjk(t)).count();
    assert!(english > 100 && english < texts.len(), "{english}");
    assert_eq!(again.embedded.cached, first.questions + english);
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
    let semantic =
        KnowledgeBase::build_with(load(), MatcherOptions::default(), encoders()).unwrap();
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
    let message = |dir: &Path| match BertEmbedder::multilingual_e5(dir) {
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

#[test]
fn the_english_encoder_reads_english_only_and_knows_its_paraphrases() {
    let e = english();
    assert_eq!(e.dim(), 384);
    assert!(
        e.model_id().starts_with("minilm/53aa5117"),
        "{}",
        e.model_id()
    );
    assert!(e.model_id().ends_with("/english-only"), "{}", e.model_id());
    assert!(e.covers("where is my card key??"));
    assert!(e.covers("my psn code says invalid, help"));
    for text in [
        "我的卡密在哪里",
        "steam卡密无效",
        "ｒｅｆｕｎｄ",
        "カード",
        "환불",
    ] {
        assert!(!e.covers(text), "{text}");
        // The multilingual encoder reads everything.
        assert!(encoder().covers(text), "{text}");
    }
    let v = e
        .embed(&[
            "i want my money back",
            "please refund my order",
            "where is my card key",
            "what's the weather like",
        ])
        .unwrap();
    for row in &v {
        assert!((dot(row, row) - 1.0).abs() < 1e-4);
    }
    let refund = dot(&v[0], &v[1]);
    assert!(
        refund > dot(&v[0], &v[2]) && refund > dot(&v[0], &v[3]),
        "{refund}"
    );
    // Batching does not change a vector.
    let alone = e.embed(&["where is my card key"]).unwrap().remove(0);
    assert!(dot(&alone, &v[2]) > 0.9999);
}

/// Counts what an encoder is asked to embed.
struct Counting {
    inner: Arc<BertEmbedder>,
    texts: AtomicUsize,
    cjk: AtomicUsize,
}

impl Embedder for Counting {
    fn model_id(&self) -> &str {
        self.inner.model_id()
    }
    fn dim(&self) -> usize {
        self.inner.dim()
    }
    fn covers(&self, text: &str) -> bool {
        self.inner.covers(text)
    }
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.texts.fetch_add(texts.len(), Ordering::SeqCst);
        let cjk = texts.iter().filter(|t| has_cjk(t)).count();
        self.cjk.fetch_add(cjk, Ordering::SeqCst);
        self.inner.embed(texts)
    }
}

#[test]
fn english_messages_are_compared_by_both_encoders_chinese_ones_by_the_multilingual_one() {
    let english = Arc::new(Counting {
        inner: english(),
        texts: AtomicUsize::new(0),
        cjk: AtomicUsize::new(0),
    });
    let set = defaults::load(&ValidationOptions::default()).unwrap();
    let kb = KnowledgeBase::build_with(
        set,
        MatcherOptions::default(),
        vec![encoder() as Arc<dyn Embedder>, english.clone()],
    )
    .unwrap();
    assert!(english.texts.load(Ordering::SeqCst) > 100);
    assert_eq!(
        english.cjk.load(Ordering::SeqCst),
        0,
        "no Chinese text for it"
    );
    let before = english.texts.load(Ordering::SeqCst);

    for (query, id) in [
        ("我买的码在哪看", "order.card_key_lookup"),
        ("充值了但是没到账", "recharge.not_arrived"),
    ] {
        let ranking = kb.rank(query, 3);
        assert_eq!(ranking.top().map(|c| c.id.as_str()), Some(id), "{query}");
    }
    assert_eq!(english.texts.load(Ordering::SeqCst), before);

    for (query, id) in [
        (
            "where can i see the key i bought yesterday",
            "order.card_key_lookup",
        ),
        (
            "cash back please, this is not what i wanted",
            "refund.request",
        ),
    ] {
        let ranking = kb.rank(query, 3);
        assert_eq!(
            ranking.top().map(|c| c.id.as_str()),
            Some(id),
            "{query}: {ranking:?}"
        );
    }
    assert_eq!(english.texts.load(Ordering::SeqCst), before + 2);
    assert_eq!(english.cjk.load(Ordering::SeqCst), 0);
}
