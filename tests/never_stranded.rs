//! Conversations on the built-in knowledge base, in Chinese and English, where a customer
//! used to be left stuck or talking to nobody: each test is one such path, and what the
//! customer gets now.

mod common;

use common::knowledge;
use kefu_core::conversation::Holder;
use kefu_core::HandoffQueue;
use kefu_core::{
    ConversationKey, Engine, EngineConfig, Inbound, MemoryQueue, Outbound, OutboundKind,
};
use std::sync::Arc;

struct Chat {
    engine: Engine,
    queue: Arc<MemoryQueue>,
    key: ConversationKey,
    next: u32,
}

impl Chat {
    fn new() -> Chat {
        Chat::with(EngineConfig::default())
    }

    fn with(config: EngineConfig) -> Chat {
        let queue = Arc::new(MemoryQueue::new());
        let engine = Engine::builder(knowledge())
            .queue(queue.clone())
            .config(config)
            .build();
        Chat {
            engine,
            queue,
            key: ConversationKey::new("telegram", "c"),
            next: 0,
        }
    }

    async fn say(&mut self, text: &str) -> Vec<Outbound> {
        self.next += 1;
        let message = Inbound::new(self.key.clone(), "u", format!("m{}", self.next), text);
        self.engine.handle(message).await.expect("turn")
    }

    async fn holder(&self) -> Holder {
        self.engine
            .conversation(&self.key)
            .await
            .unwrap()
            .map(|c| c.holder)
            .unwrap_or_default()
    }
}

fn text(out: &[Outbound]) -> String {
    out.iter()
        .map(|o| o.text.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn chit_chat_and_out_of_scope_requests_offer_a_person_rather_than_queue_one() {
    for (first, second, offer) in [
        ("今天天气怎么样", "写一首诗", "没能理解"),
        (
            "what's the weather like today",
            "write me a poem",
            "still don't follow",
        ),
    ] {
        let mut chat = Chat::new();
        chat.say(first).await;
        let out = chat.say(second).await;
        assert!(text(&out).contains(offer), "{out:?}");
        assert_eq!(chat.holder().await, Holder::Bot);
        assert!(chat.queue.waiting().is_empty());
    }
}

#[tokio::test]
async fn a_number_outside_the_offered_choices_offers_them_again() {
    for (vague, again_words) in [
        ("钱", "请回复 1 到"),
        ("something about money", "from 1 to"),
    ] {
        let mut chat = Chat::new();
        let out = chat.say(vague).await;
        assert_eq!(out[0].kind, OutboundKind::Suggestion, "{out:?}");
        let n = out[0].quick_replies.len();
        let again = chat.say(&(n + 2).to_string()).await;
        assert_eq!(again[0].kind, OutboundKind::Suggestion, "{again:?}");
        assert!(text(&again).contains(again_words), "{again:?}");
        assert_eq!(again[0].quick_replies, out[0].quick_replies);
        assert!(chat.queue.waiting().is_empty());
        // And the choice still works.
        let chosen = chat.say("1").await;
        assert_ne!(chosen[0].kind, OutboundKind::Suggestion, "{chosen:?}");
    }
    // "paid twice by mistake" is understood now: duplicate charges go to the payments team.
    let mut chat = Chat::new();
    chat.say("paid twice by mistake").await;
    assert_eq!(chat.queue.waiting()[0].skill_group, "payments");
}

#[tokio::test]
async fn a_complaint_hands_off_and_what_the_customer_adds_reaches_the_person() {
    for (complaint, detail, ack) in [
        (
            "我要投诉你们 垃圾",
            "订单 2024112300017 卡密用不了，客服三天没回",
            "已转达",
        ),
        (
            "I want to file a complaint",
            "order 2024112300017, the key never worked and nobody answered for 3 days",
            "Got it",
        ),
    ] {
        let mut chat = Chat::new();
        let out = chat.say(complaint).await;
        assert_eq!(out.last().unwrap().kind, OutboundKind::Handoff, "{out:?}");
        let waiting = chat.queue.waiting();
        assert_eq!(waiting[0].skill_group, "complaints");
        let out = chat.say(detail).await;
        assert!(text(&out).contains(ack), "{out:?}");
        let relayed = chat.queue.relayed(&chat.key).await.unwrap();
        assert_eq!(relayed.len(), 1);
        assert_eq!(relayed[0].text, detail);
    }
}

#[tokio::test]
async fn an_uncertain_question_in_a_flow_offers_choices_with_going_on() {
    for (start, unsure, go_on) in [
        ("我要退款", "卡秘用不le", "继续办理我的订单"),
        ("我要退款", "點解我張卡用唔到", "继续办理我的订单"),
    ] {
        let mut chat = Chat::new();
        chat.say(start).await;
        let out = chat.say(unsure).await;
        let all = text(&out);
        // Either understood outright (then answered), or offered with going on as a choice:
        // never just the slot's question again.
        if out[0].kind == OutboundKind::Suggestion {
            assert!(all.contains(go_on), "{unsure}: {all}");
        } else {
            assert_eq!(out[0].kind, OutboundKind::Answer, "{unsure}: {all}");
            assert!(!all.contains("没有识别到单号"), "{unsure}: {all}");
        }
    }
}

#[tokio::test]
async fn a_bare_order_or_ticket_number_starts_the_right_flow() {
    let mut chat = Chat::new();
    let out = chat.say("20231201123456").await;
    assert_eq!(out[0].kind, OutboundKind::Suggestion, "{out:?}");
    assert!(text(&out).contains("20231201123456"), "{out:?}");
    let out = chat.say("1").await;
    assert!(text(&out).contains("20231201123456"), "{out:?}");

    let mut chat = Chat::new();
    let out = chat.say("T20261202000001").await;
    assert!(text(&out).contains("T20261202000001"), "{out:?}");
    assert_ne!(out[0].kind, OutboundKind::Suggestion);

    let mut chat = Chat::new();
    let out = chat.say("我的工单 T1234 进度").await;
    assert!(text(&out).contains("不是有效的工单号"), "{out:?}");
}

#[tokio::test]
async fn venting_gets_a_calm_reply_and_a_person_on_offer_not_a_hand_off() {
    for (vent, apology, person) in [
        ("垃圾机器人", "抱歉让您不愉快了", "转人工客服"),
        (
            "this bot is useless",
            "Sorry this has been frustrating",
            "Talk to a person",
        ),
    ] {
        let mut chat = Chat::new();
        let out = chat.say(vent).await;
        assert_eq!(out[0].kind, OutboundKind::Answer, "{out:?}");
        assert!(text(&out).contains(apology), "{out:?}");
        assert_eq!(chat.holder().await, Holder::Bot);
        assert!(chat.queue.waiting().is_empty());
        // The offer is one press away, and pressing it does hand off.
        let button = out[0]
            .quick_replies
            .iter()
            .find(|q| q.label == person)
            .unwrap_or_else(|| panic!("no {person:?} button: {out:?}"))
            .clone();
        chat.say(&button.payload).await;
        assert_eq!(chat.queue.waiting().len(), 1, "{vent}");
    }
}
