//! The built-in card-shop knowledge base: valid, and good enough on held-out customer messages.
//!
//! `tests/data/customer_messages*.jsonl` hold messages written apart from the FAQ files (never
//! used for training): Chinese, English, mixed, slang and typos, plus out-of-scope chatter.
//! The floors below sit under the measured figures so a regression in matching or content
//! fails here; `kefu eval --cases tests/data/customer_messages.jsonl` prints the figures.

use kefu_core::{Decision, Knowledge};
use kefu_knowledge::import::read_labelled;
use kefu_knowledge::{defaults, eval, KnowledgeBase, MatcherOptions, ValidationOptions};
use std::path::Path;

fn knowledge_base() -> KnowledgeBase {
    let set =
        defaults::load(&ValidationOptions::default()).expect("the built-in FAQ files are valid");
    KnowledgeBase::build(set, MatcherOptions::default()).expect("builds")
}

#[test]
fn has_every_required_entry_with_paraphrases_in_both_languages() {
    let kb = knowledge_base();
    let required = [
        "order.card_key_lookup",
        "order.delivery_status",
        "order.delivery_time",
        "order.cancel",
        "order.query_password",
        "recharge.not_arrived",
        "recharge.wrong_account",
        "card_key.invalid",
        "card_key.how_to_redeem",
        "refund.policy",
        "refund.request",
        "refund.progress",
        "payment.methods",
        "payment.paid_no_order",
        "membership.cancel_auto_renew",
        "membership.unexpected_charge",
        "account.forgot_password",
        "account.change_contact",
        "account.stolen",
        "invoice.request",
        "wholesale.agent",
        "promotion.coupon",
        "service.contact_hours",
        "complaint.file",
        "ticket.progress",
        "human.request",
        "smalltalk.greeting",
        "smalltalk.thanks",
    ];
    for id in required {
        let entry = kb.entry(id).unwrap_or_else(|| panic!("missing {id}"));
        let han = entry
            .questions
            .iter()
            .filter(|q| q.chars().any(kefu_core::locale::is_han))
            .count();
        let latin = entry.questions.len() - han;
        assert!(
            han >= 8 && latin >= 8,
            "{id}: {han} Chinese, {latin} other questions"
        );
        assert!(
            !entry.answer.zh.is_empty() && !entry.answer.en.is_empty(),
            "{id}"
        );
    }
}

#[test]
fn every_example_is_matched_by_its_own_entry() {
    let kb = knowledge_base();
    let mut wrong = Vec::new();
    for entry in kb.entries() {
        for example in &entry.examples {
            let top = kb.rank(example, 1).top().map(|c| c.id.clone());
            if top.as_deref() != Some(entry.id.as_str()) {
                wrong.push(format!("{example:?} -> {top:?}, expected {}", entry.id));
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// Floors for one held-out file: (top1, recall@3, in-scope accuracy, out-of-scope recall, AUROC).
fn check_held_out(file: &str, floors: [f64; 5]) {
    let kb = knowledge_base();
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(file);
    let cases = read_labelled(&path).expect("readable");
    let scored = eval::score_cases(&kb, &cases, |_| {});
    let report = eval::report(&scored, kb.thresholds().answer);
    assert!(report.n_in_scope >= 100 && report.n_oos >= 30, "{report:?}");
    let figures = [
        report.top1.unwrap(),
        report.recall_at_3.unwrap(),
        report.in_scope_accuracy.unwrap(),
        report.oos_recall.unwrap(),
        report.auroc.unwrap(),
    ];
    for (figure, floor) in figures.iter().zip(floors) {
        assert!(figure >= &floor, "{file}: {figures:?} under {floors:?}");
    }
}

#[test]
fn held_out_customer_messages_are_answered_or_declined_correctly() {
    // Measured: 0.972, 1.000, 0.908, 0.978, 0.976.
    check_held_out("customer_messages.jsonl", [0.93, 0.98, 0.86, 0.93, 0.95]);
}

#[test]
fn a_second_independent_set_of_messages_is_answered_or_declined_correctly() {
    // Measured: 0.951, 0.990, 0.874, 0.967, 0.985. Written apart from the first set and the FAQ
    // files, in other styles: long messages, Cantonese, traditional characters, abbreviations.
    check_held_out("customer_messages_2.jsonl", [0.92, 0.97, 0.82, 0.90, 0.95]);
}

#[test]
fn a_third_independent_set_of_messages_is_answered_or_declined_correctly() {
    // Measured: 0.973, 1.000, 0.908, 1.000, 0.992. Written apart from the FAQ files and the
    // other sets; more English, game and gift-card names, long messages with the question
    // buried inside. Never used to edit the FAQ files.
    check_held_out("customer_messages_3.jsonl", [0.94, 0.98, 0.87, 0.93, 0.97]);
}

#[test]
fn english_questions_with_typos_are_still_understood() {
    // tests/data/typos_en.jsonl: every English question of the built-in base with one slip in
    // each word of four or more letters (scripts/make-typo-set). Measured: top1 0.993 and
    // in-scope accuracy 0.961; without the speller, 0.961 and 0.573.
    let kb = knowledge_base();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/typos_en.jsonl");
    let cases = read_labelled(&path).expect("readable");
    assert!(cases.len() > 500);
    let scored = eval::score_cases(&kb, &cases, |_| {});
    let report = eval::report(&scored, kb.thresholds().answer);
    let (top1, answered) = (report.top1.unwrap(), report.in_scope_accuracy.unwrap());
    assert!(
        top1 >= 0.98 && answered >= 0.93,
        "top1 {top1}, in-scope {answered}"
    );
    // The message that showed the problem: every word of it but "my" misspelled.
    let ranking = kb.rank("my kye doesnt wrok", 1);
    assert_eq!(
        ranking.top().map(|c| c.id.as_str()),
        Some("card_key.invalid")
    );
    assert!(
        ranking.confidence() >= kb.thresholds().answer,
        "{ranking:?}"
    );
}

#[test]
fn screenshots_duplicate_charges_and_chat_contacts_have_answers() {
    // Phrasings that are not in the FAQ files.
    let kb = knowledge_base();
    for (text, id) in [
        ("截图能发给你吗", "service.screenshot"),
        (
            "how can i show you a picture of the error",
            "service.screenshot",
        ),
        ("客服有微信号吗", "service.contact_hours"),
        (
            "is there a telegram account for support",
            "service.contact_hours",
        ),
        ("同一笔订单我付了两次", "membership.unexpected_charge"),
        (
            "i paid for the same order two times",
            "membership.unexpected_charge",
        ),
    ] {
        let (decision, ranking) = kb.decide(text, 3);
        assert_eq!(
            ranking.top().map(|c| c.id.as_str()),
            Some(id),
            "{text}: {ranking:?}"
        );
        assert_ne!(decision, Decision::Decline, "{text}: {ranking:?}");
    }
    let contacts = kb.entry("service.contact_hours").unwrap();
    for variable in ["{wechat_id}", "{qq_contact}", "{telegram_contact}"] {
        assert!(contacts.answer.zh.contains(variable) && contacts.answer.en.contains(variable));
    }
}

#[test]
fn obvious_questions_are_answered_and_chatter_is_not() {
    let kb = knowledge_base();
    for (text, id) in [
        ("卡密在哪里看", "order.card_key_lookup"),
        ("where is my card key", "order.card_key_lookup"),
        ("转人工", "human.request"),
        ("i want to talk to a human", "human.request"),
        ("你好", "smalltalk.greeting"),
        ("thanks a lot", "smalltalk.thanks"),
    ] {
        let (decision, ranking) = kb.decide(text, 3);
        assert_eq!(ranking.top().map(|c| c.id.as_str()), Some(id), "{text}");
        assert_eq!(decision, Decision::Answer, "{text}: {ranking:?}");
    }
    for text in [
        "帮我写一首关于春天的诗",
        "what is the capital of france",
        "asdfgh qwerty",
    ] {
        not_answered(&kb, text);
    }
}

/// Asserts that `kb` answers `text` with entry `id`.
fn answered(kb: &KnowledgeBase, text: &str, id: &str) {
    let (decision, ranking) = kb.decide(text, 3);
    assert_eq!(
        ranking.top().map(|c| c.id.as_str()),
        Some(id),
        "{text}: {ranking:?}"
    );
    assert_eq!(decision, Decision::Answer, "{text}: {ranking:?}");
}

/// Asserts that `kb` does not answer `text` (it may suggest).
fn not_answered(kb: &KnowledgeBase, text: &str) {
    let (decision, ranking) = kb.decide(text, 3);
    assert_ne!(decision, Decision::Answer, "{text}: {ranking:?}");
}

#[test]
fn a_fourth_set_of_long_slangy_and_cantonese_messages_is_handled() {
    // Written apart from the FAQ files by someone who saw only the entries' ids and answers:
    // long messages with the question among other clauses, Cantonese and traditional
    // characters, card-shop abbreviations, sound-alike typos, English shorthand, near misses
    // about other companies and forbidden requests. Never used to edit the FAQ files or to
    // choose anything (tests/data/customer_messages_4_dev.jsonl was written the same way for
    // that). Measured: 0.955, 0.986, 0.906, 0.894, 0.972; before the vocabulary table, the
    // clause windows and the near misses: 0.934, 0.969, 0.826, 0.803, 0.905.
    check_held_out("customer_messages_4.jsonl", [0.93, 0.96, 0.86, 0.86, 0.95]);
}

#[test]
fn shop_slang_cantonese_and_sound_alike_typos_are_understood() {
    // The forms come from knowledge/faq/vocabulary.yaml; the sound-alike typos in the second
    // half are in no table and are matched through the pinyin of character pairs.
    let kb = knowledge_base();
    for (text, id) in [
        ("km呢", "order.card_key_lookup"),
        ("km发我一下", "order.card_key_lookup"),
        ("cz一直没到账", "recharge.not_arrived"),
        ("你哋啲卡用唔到，話無效", "card_key.invalid"),
        ("你哋嘅卡密點解用唔到", "card_key.invalid"),
        ("張單幾時發貨呀", "order.delivery_status"),
        ("ty that worked", "smalltalk.thanks"),
        ("pls refund my order", "refund.request"),
        ("卡蜜无效", "card_key.invalid"),
        ("会园自动续费怎么关", "membership.cancel_auto_renew"),
        ("兑还码提示无效", "card_key.invalid"),
    ] {
        answered(&kb, text, id);
    }
}

#[test]
fn a_clear_question_among_unrelated_clauses_keeps_its_confidence() {
    let kb = knowledge_base();
    for (text, id) in [
        (
            "昨天下班挺晚的，路上还堵车，晚饭也没吃，结果买的卡密显示无效怎么办",
            "card_key.invalid",
        ),
        (
            "hey so yesterday was my brother's birthday, we had a big dinner with the family, \
             and he tried the code i bought here but it says invalid, what do i do",
            "card_key.invalid",
        ),
        (
            "本来想送我妈一张视频会员 结果她自己已经开了 卡密还没兑换 能不能帮我退款",
            "refund.request",
        ),
    ] {
        answered(&kb, text, id);
    }
    // A clause on its own does not overrule the whole: the story decides between close
    // entries, and chatter around chatter stays chatter.
    for text in [
        "今天天气不错，下午去公园走了走，晚上吃了火锅，你们觉得明天会下雨吗",
        "my cat knocked over my coffee this morning, then the bus was late, anyway what's a good movie tonight",
    ] {
        not_answered(&kb, text);
    }
}

#[test]
fn other_companies_and_forbidden_requests_are_not_answered_and_venting_is_calmed() {
    let kb = knowledge_base();
    for text in [
        "腾讯游戏的官方客服怎么联系",
        "how do i get apple to refund an app store purchase",
        "帮我破解一个QQ号",
        "my riot account got banned, how do i appeal",
        "有没有原神的外挂卖",
    ] {
        not_answered(&kb, text);
    }
    for text in ["垃圾机器人", "useless bot", "你这破机器人听不懂人话"] {
        answered(&kb, text, "smalltalk.venting");
    }
    // Venting is not a request for a person: the entry hands nothing off by itself, and
    // offers a person as a button.
    let venting = kb.entry("smalltalk.venting").unwrap();
    assert_eq!(venting.action, None);
    assert_eq!(venting.follow_ups, ["human.request"]);
}
