//! Scripted conversations with the engine, one test per behaviour, on a knowledge port whose
//! confidences the test controls (so each policy band is hit exactly).

use kefu_core::conversation::{HandoffReason, Holder, Speaker};
use kefu_core::HandoffQueue;
use kefu_core::{
    Action, Answers, Candidate, ConversationKey, Decision, Engine, EngineConfig, FaqEntry, Inbound,
    Knowledge, Locale, MemoryQueue, MemoryStore, OutboundKind, Priority, Ranking,
};
use kefu_core::{Conversation, ConversationStore, StoreError};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A knowledge port ranking by keywords: each entry lists (keyword, confidence) pairs; the
/// best-scoring entries come first.
struct Keywords {
    entries: Vec<(FaqEntry, Vec<(&'static str, f32)>)>,
}

impl Knowledge for Keywords {
    fn rank(&self, query: &str, limit: usize) -> Ranking {
        let q = query.to_lowercase();
        let mut candidates: Vec<Candidate> = self
            .entries
            .iter()
            .filter_map(|(e, keys)| {
                let confidence = keys
                    .iter()
                    .filter(|(k, _)| q.contains(k))
                    .map(|(_, c)| *c)
                    .fold(0.0f32, f32::max);
                (confidence > 0.0).then(|| Candidate {
                    id: e.id.clone(),
                    score: confidence,
                    confidence,
                    matched_question: e.questions[0].clone(),
                })
            })
            .collect();
        candidates.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
        candidates.truncate(limit);
        Ranking { candidates }
    }

    fn entry(&self, id: &str) -> Option<&FaqEntry> {
        self.entries.iter().map(|(e, _)| e).find(|e| e.id == id)
    }

    fn with_action(&self, action: Action) -> Option<&FaqEntry> {
        self.entries
            .iter()
            .map(|(e, _)| e)
            .find(|e| e.action == Some(action))
    }
}

fn entry(id: &str, questions: &[&str], zh: &str, en: &str) -> FaqEntry {
    let answer = Answers {
        zh: zh.into(),
        en: en.into(),
    };
    FaqEntry::new(id, questions.iter().copied(), answer)
}

fn knowledge() -> Keywords {
    let hours = entry(
        "service.hours",
        &["客服几点上班", "what are your support hours"],
        "{shop_name}客服时间：{support_hours}",
        "{shop_name} support hours: {support_hours}",
    );
    let mut refund_policy = entry(
        "refund.policy",
        &["退款政策是什么", "what is the refund policy"],
        "未发货订单可全额退款。",
        "Undelivered orders are refunded in full.",
    );
    refund_policy.follow_ups = vec!["refund.request".into()];
    let mut refund_request = entry(
        "refund.request",
        &["我要退款", "i want a refund"],
        "好的，我来帮您申请退款。",
        "Sure, let's start your refund.",
    );
    refund_request.action = Some(Action::RefundRequest);
    refund_request.title = kefu_core::Titles {
        zh: Some("申请退款".into()),
        en: Some("Request a refund".into()),
    };
    refund_request.skill_group = Some("refunds".into());
    let mut card_key = entry(
        "order.card_key_lookup",
        &["我的卡密在哪里", "where is my card key"],
        "我来帮您查卡密。",
        "Let me find your card key.",
    );
    card_key.action = Some(Action::CardKeyLookup);
    card_key.skill_group = Some("orders".into());
    let mut stolen = entry(
        "account.stolen",
        &["账号被盗了", "my account was hacked"],
        "账号安全问题需要人工处理。",
        "Account security needs a person.",
    );
    stolen.action = Some(Action::Handoff);
    stolen.skill_group = Some("risk".into());
    stolen.priority = Some(Priority::Urgent);
    let mut ticket = entry(
        "ticket.progress",
        &["工单进度", "ticket status"],
        "我来查工单。",
        "Let me check your ticket.",
    );
    ticket.action = Some(Action::TicketProgress);
    let mut thanks = entry(
        "smalltalk.thanks",
        &["谢谢", "thanks"],
        "不客气！",
        "You're welcome!",
    );
    thanks.tags = vec!["smalltalk".into()];
    Keywords {
        entries: vec![
            (thanks, vec![("谢谢", 0.9), ("thanks", 0.9)]),
            (hours, vec![("几点", 0.9), ("hours", 0.9), ("time", 0.4)]),
            (
                refund_policy,
                vec![
                    ("退款政策", 0.9),
                    ("policy", 0.9),
                    ("refund?", 0.4),
                    ("money", 0.35),
                ],
            ),
            (
                refund_request,
                vec![("我要退款", 0.9), ("i want a refund", 0.9), ("money", 0.3)],
            ),
            (
                card_key,
                vec![("卡密", 0.9), ("card key", 0.9), ("money", 0.28)],
            ),
            (stolen, vec![("被盗", 0.95), ("hacked", 0.95)]),
            (ticket, vec![("工单", 0.9), ("ticket", 0.9)]),
        ],
    }
}

struct Bot {
    engine: Arc<Engine>,
    queue: Arc<MemoryQueue>,
    events: Arc<kefu_core::RecordedEvents>,
    chat: ConversationKey,
    next_id: u32,
}

impl Bot {
    fn new() -> Self {
        Self::with_config(EngineConfig::default())
    }

    fn with_config(mut config: EngineConfig) -> Self {
        config.variables = BTreeMap::from([
            ("shop_name".to_string(), "星辰卡铺".to_string()),
            ("support_hours".to_string(), "9:00-24:00".to_string()),
        ]);
        let queue = Arc::new(MemoryQueue::new());
        let events = Arc::new(kefu_core::RecordedEvents::new());
        let engine = Engine::builder(Arc::new(knowledge()))
            .store(Arc::new(MemoryStore::new()))
            .queue(queue.clone())
            .events(events.clone())
            .config(config)
            .build();
        Bot {
            engine: Arc::new(engine),
            queue,
            events,
            chat: ConversationKey::new("test", "chat-1"),
            next_id: 0,
        }
    }

    fn message(&mut self, text: &str) -> Inbound {
        self.next_id += 1;
        Inbound::new(self.chat.clone(), "u1", format!("m{}", self.next_id), text)
    }

    async fn say(&mut self, text: &str) -> Vec<kefu_core::Outbound> {
        let m = self.message(text);
        self.engine.handle(m).await.expect("turn")
    }

    async fn holder(&self) -> Holder {
        self.engine
            .conversation(&self.chat)
            .await
            .unwrap()
            .expect("conversation exists")
            .holder
    }
}

#[tokio::test]
async fn replies_in_the_customers_language_with_templates_filled() {
    let mut bot = Bot::new();
    let out = bot.say("客服几点上班？").await;
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].text, "星辰卡铺客服时间：9:00-24:00");
    assert_eq!(out[0].kind, OutboundKind::Answer);
    let out = bot.say("what are your support hours").await;
    assert_eq!(out[0].text, "星辰卡铺 support hours: 9:00-24:00");
}

#[tokio::test]
async fn the_written_language_beats_the_platforms_hint_and_an_explicit_lang_command_beats_both() {
    // A Chinese customer on a phone set to English writes Chinese: answered in Chinese.
    let mut bot = Bot::new();
    let m = bot.message("客服几点上班").with_locale(Locale::En);
    let out = bot.engine.handle(m).await.unwrap();
    assert!(out[0].text.starts_with("星辰卡铺客服时间"), "{out:?}");
    // A message that says nothing about its language ("/start", "km") follows the hint in a new
    // conversation, and keeps the conversation's language in a going one.
    let mut fresh = Bot::new();
    let m = fresh.message("/start").with_locale(Locale::En);
    let out = fresh.engine.handle(m).await.unwrap();
    assert!(out[0].text.starts_with("Hi"), "{out:?}");
    let m = bot.message("ok").with_locale(Locale::En);
    let out = bot.engine.handle(m).await.unwrap();
    assert!(
        out.is_empty() || !out[0].text.is_ascii(),
        "still Chinese: {out:?}"
    );

    let out = bot.say("/lang en").await;
    assert_eq!(out[0].text, "OK, I'll reply in English from now on.");
    let out = bot.say("客服几点上班").await;
    assert_eq!(out[0].text, "星辰卡铺 support hours: 9:00-24:00");
    let out = bot.say("/lang klingon").await;
    assert_eq!(out[0].kind, OutboundKind::Question);
}

#[tokio::test]
async fn digits_alone_keep_the_conversations_language() {
    let mut bot = Bot::new();
    bot.say("我的卡密在哪里").await;
    let out = bot.say("202411230001").await;
    assert!(out[0].text.contains("已记录订单号 202411230001"), "{out:?}");

    // Letters inside an order number are not English words.
    let mut bot = Bot::new();
    bot.say("我的卡密在哪里").await;
    let out = bot.say("DD2024112300017").await;
    assert!(
        out[0].text.contains("已记录订单号 DD2024112300017"),
        "{out:?}"
    );
}

#[tokio::test]
async fn a_middle_confidence_suggests_the_top_three_and_a_choice_answers() {
    let mut bot = Bot::new();
    let out = bot.say("where did my money go").await;
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].kind, OutboundKind::Suggestion);
    let labels: Vec<&str> = out[0]
        .quick_replies
        .iter()
        .map(|q| q.label.as_str())
        .collect();
    // Titles: the editor's, else the first question in the language, capitalised.
    assert_eq!(
        labels,
        [
            "What is the refund policy",
            "Request a refund",
            "Where is my card key"
        ]
    );
    assert!(
        out[0].text.contains("1. What is the refund policy"),
        "{}",
        out[0].text
    );
    let out = bot.say("2").await;
    assert_eq!(out[0].text, "Sure, let's start your refund.");
    let transcript = bot.engine.transcript(&bot.chat).await.unwrap();
    let choice = transcript
        .iter()
        .rfind(|l| l.speaker == Speaker::Customer)
        .unwrap();
    assert_eq!(choice.entry.as_deref(), Some("refund.request"));
    assert_eq!(choice.decision, Some(Decision::Answer));
}

#[tokio::test]
async fn a_low_confidence_declines_and_repeated_misses_offer_a_person_without_forcing_one() {
    let mut bot = Bot::new();
    let out = bot.say("what's the weather on mars").await;
    assert_eq!(out[0].kind, OutboundKind::Answer);
    assert!(out[0].text.starts_with("Sorry, I can't answer that yet"));
    assert_eq!(out[0].quick_replies[0].payload, "Talk to a person");
    assert_eq!(bot.holder().await, Holder::Bot);

    // Chit-chat again: a person is offered more plainly, but nobody is queued.
    let out = bot.say("sing me a song").await;
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(out[0].text.contains("still don't follow"), "{out:?}");
    assert_eq!(out[0].quick_replies[0].label, "Talk to a person");
    assert_eq!(bot.holder().await, Holder::Bot);
    assert!(bot.queue.waiting().is_empty());
    // In Chinese too.
    let mut bot = Bot::new();
    bot.say("今天天气怎么样").await;
    let out = bot.say("写一首诗").await;
    assert!(out[0].text.contains("没能理解"), "{out:?}");
    assert!(bot.queue.waiting().is_empty());

    // Asking for the person then hands off, with the whole conversation.
    let out = bot.say("转人工").await;
    assert_eq!(out.last().unwrap().kind, OutboundKind::Handoff);
    let waiting = bot.queue.waiting();
    assert_eq!(waiting.len(), 1);
    assert_eq!(waiting[0].reason, HandoffReason::Requested);
    let texts: Vec<&str> = waiting[0]
        .transcript
        .iter()
        .map(|l| l.text.as_str())
        .collect();
    assert!(texts.contains(&"今天天气怎么样"));
    assert!(texts.contains(&"写一首诗"));
}

#[tokio::test]
async fn after_repeated_uncertain_questions_a_person_is_one_of_the_choices() {
    let mut bot = Bot::new();
    let out = bot.say("where did my money go").await;
    assert_eq!(out[0].quick_replies.len(), 3, "{out:?}");
    let out = bot.say("money money").await;
    assert_eq!(out[0].kind, OutboundKind::Suggestion);
    assert!(
        out[0].text.contains("4. Talk to a person"),
        "{}",
        out[0].text
    );
    assert!(bot.queue.waiting().is_empty());
    let out = bot.say("4").await;
    assert_eq!(out.last().unwrap().kind, OutboundKind::Handoff, "{out:?}");
    assert_eq!(bot.queue.waiting()[0].reason, HandoffReason::Requested);
}

#[tokio::test]
async fn a_number_outside_the_choices_offers_them_again() {
    let mut bot = Bot::new();
    bot.say("where did my money go").await;
    let out = bot.say("5").await;
    assert_eq!(out[0].kind, OutboundKind::Suggestion, "{out:?}");
    assert!(out[0].text.contains("from 1 to 3"), "{}", out[0].text);
    assert!(
        out[0].text.contains("2. Request a refund"),
        "{}",
        out[0].text
    );
    assert!(bot.queue.waiting().is_empty());
    let out = bot.say("2").await;
    assert_eq!(out[0].text, "Sure, let's start your refund.");
}

#[tokio::test]
async fn an_answer_between_misses_resets_the_count() {
    let mut bot = Bot::new();
    bot.say("blah blah").await;
    bot.say("what are your hours").await;
    let out = bot.say("more blah").await;
    assert_ne!(out.last().unwrap().kind, OutboundKind::Handoff);
}

#[tokio::test]
async fn explicit_requests_for_a_person_hand_off_at_once() {
    for text in [
        "转人工",
        "人工",
        "human",
        "agent",
        "/human",
        "Talk to a person",
        "人工客服！",
    ] {
        let mut bot = Bot::new();
        let out = bot.say(text).await;
        assert_eq!(out.len(), 1, "{text}");
        assert_eq!(out[0].kind, OutboundKind::Handoff, "{text}");
        assert_eq!(bot.queue.waiting()[0].reason, HandoffReason::Requested);
    }
    // Words that merely contain "agent" are questions, not requests.
    let mut bot = Bot::new();
    let out = bot.say("how do I become an agent").await;
    assert_ne!(out[0].kind, OutboundKind::Handoff);
}

#[tokio::test]
async fn entries_that_need_a_person_hand_off_with_their_group_and_priority() {
    let mut bot = Bot::new();
    let out = bot.say("我的账号被盗了！").await;
    assert_eq!(out[0].text, "账号安全问题需要人工处理。");
    assert_eq!(out[1].kind, OutboundKind::Handoff);
    assert!(out[1].text.contains("您目前排在第 1 位"), "{}", out[1].text);
    let waiting = bot.queue.waiting();
    assert_eq!(waiting[0].skill_group, "risk");
    assert_eq!(waiting[0].priority, Priority::Urgent);
    assert_eq!(waiting[0].reason, HandoffReason::NeedsPerson);
    assert_eq!(waiting[0].entry.as_deref(), Some("account.stolen"));
}

#[tokio::test]
async fn a_flow_asks_for_its_slot_and_takes_it_from_the_next_message() {
    let mut bot = Bot::new();
    let out = bot.say("我的卡密在哪里").await;
    assert_eq!(out[0].text, "我来帮您查卡密。");
    assert_eq!(out[1].kind, OutboundKind::Question);
    assert!(out[1].text.contains("订单号"));
    let state = bot.engine.conversation(&bot.chat).await.unwrap().unwrap();
    assert_eq!(state.flow.as_ref().unwrap().name, "card_key_lookup");

    let out = bot.say("订单号是 DD202411230001").await;
    assert!(out[0].text.contains("DD202411230001"), "{out:?}");
    assert_eq!(out[1].kind, OutboundKind::Handoff);
    let waiting = bot.queue.waiting();
    assert_eq!(waiting[0].skill_group, "orders");
    assert_eq!(waiting[0].entities["order_no"], "DD202411230001");
    assert_eq!(waiting[0].reason, HandoffReason::FlowNeedsPerson);
}

#[tokio::test]
async fn an_entity_given_earlier_is_remembered_for_the_flow() {
    let mut bot = Bot::new();
    bot.say("hi, order 2024112300077 here").await;
    let out = bot.say("where is my card key").await;
    assert_eq!(out[0].text, "Let me find your card key.");
    assert!(out[1].text.contains("order 2024112300077"), "{out:?}");
    assert_eq!(out[2].kind, OutboundKind::Handoff);
}

#[tokio::test]
async fn a_ticket_flow_takes_a_ticket_number() {
    let mut bot = Bot::new();
    let out = bot.say("工单进度怎么样了").await;
    assert!(out[1].text.contains("工单号"), "{out:?}");
    let out = bot.say("T20241123001").await;
    assert!(out[0].text.contains("T20241123001"), "{out:?}");
}

#[tokio::test]
async fn a_customer_can_change_topic_or_cancel_in_the_middle_of_a_flow() {
    let mut bot = Bot::new();
    bot.say("我要退款").await;
    let out = bot.say("客服几点上班").await;
    assert_eq!(out[0].text, "星辰卡铺客服时间：9:00-24:00");
    let state = bot.engine.conversation(&bot.chat).await.unwrap().unwrap();
    assert!(state.flow.is_none());

    bot.say("我要退款").await;
    let out = bot.say("算了").await;
    assert_eq!(out[0].text, "好的，已取消。还有什么可以帮您？");
    let state = bot.engine.conversation(&bot.chat).await.unwrap().unwrap();
    assert!(state.flow.is_none());
    assert_eq!(state.holder, Holder::Bot);
}

#[tokio::test]
async fn a_flow_that_never_gets_its_slot_hands_off() {
    let mut bot = Bot::new();
    bot.say("i want a refund").await;
    let out = bot.say("uh").await;
    assert_eq!(out[0].kind, OutboundKind::Question);
    bot.say("dunno").await;
    let out = bot.say("what").await;
    assert_eq!(out.last().unwrap().kind, OutboundKind::Handoff);
    assert_eq!(bot.queue.waiting()[0].skill_group, "refunds");
}

#[tokio::test]
async fn the_same_message_delivered_twice_is_answered_once() {
    let mut bot = Bot::new();
    let m = bot.message("客服几点上班");
    assert_eq!(bot.engine.handle(m.clone()).await.unwrap().len(), 1);
    assert!(bot.engine.handle(m.clone()).await.unwrap().is_empty());
    let transcript = bot.engine.transcript(&bot.chat).await.unwrap();
    assert_eq!(transcript.len(), 2, "one customer line, one reply");
}

#[tokio::test]
async fn while_waiting_for_a_person_every_message_is_passed_on_and_acknowledged() {
    let mut bot = Bot::with_config(EngineConfig {
        answer_while_queued: false,
        ..EngineConfig::default()
    });
    bot.say("/human").await;
    for text in ["我的订单号是 2024112300017，充值一直没到", "还在吗", "人工"] {
        let out = bot.say(text).await;
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(out[0].text.starts_with("已转达"), "{out:?}");
        assert!(out[0].text.contains("排在第 1 位"), "{out:?}");
        assert!(out[0].text.contains("取消排队"), "{out:?}");
    }
    assert_eq!(bot.queue.relayed(&bot.chat).await.unwrap().len(), 3);
    assert_eq!(bot.holder().await, Holder::Queue);

    // In English.
    let mut bot = Bot::new();
    bot.say("talk to a person").await;
    let out = bot.say("my top-up still hasn't arrived").await;
    assert!(out[0].text.starts_with("Got it"), "{out:?}");
    assert!(out[0].text.contains("number 1 in line"), "{out:?}");
}

#[tokio::test]
async fn while_waiting_clear_questions_are_answered_too_if_the_shop_allows_it() {
    let mut bot = Bot::new();
    bot.say("/human").await;
    let out = bot.say("客服几点上班").await;
    assert_eq!(out[0].text, "星辰卡铺客服时间：9:00-24:00");
    assert!(out[1].text.contains("仍在排队"), "{out:?}");
    assert_eq!(
        bot.queue.relayed(&bot.chat).await.unwrap().len(),
        1,
        "the person sees it too"
    );
    // A question for a flow or a person is not taken over by the bot.
    let out = bot.say("我要退款").await;
    assert!(out[0].text.starts_with("已转达"), "{out:?}");

    let mut bot = Bot::with_config(EngineConfig {
        answer_while_queued: false,
        ..EngineConfig::default()
    });
    bot.say("/human").await;
    let out = bot.say("客服几点上班").await;
    assert!(out[0].text.starts_with("已转达"), "{out:?}");
}

#[tokio::test]
async fn a_customer_can_leave_the_queue_and_the_bot_answers_again() {
    for (leave, words) in [
        ("/cancel", "已为您取消排队"),
        ("取消排队", "已为您取消排队"),
        ("算了", "已为您取消排队"),
    ] {
        let mut bot = Bot::new();
        bot.say("转人工").await;
        let out = bot.say(leave).await;
        assert!(out[0].text.contains(words), "{leave}: {out:?}");
        assert_eq!(bot.holder().await, Holder::Bot);
        assert!(bot.queue.waiting().is_empty(), "{leave}");
        let out = bot.say("我要退款").await;
        assert_eq!(out[0].text, "好的，我来帮您申请退款。", "{leave}");
    }
    let mut bot = Bot::new();
    bot.say("human").await;
    let out = bot.say("never mind").await;
    assert!(out[0].text.contains("left the queue"), "{out:?}");
    let out = bot.say("/help").await;
    assert!(out[0].text.contains("/human"), "{out:?}");
}

#[tokio::test]
async fn once_a_person_holds_the_conversation_the_bot_stays_silent_and_relays() {
    let mut bot = Bot::new();
    bot.say("/human").await;
    let agents = bot.engine.agents();
    agents.join(&bot.chat, "agent-7").await.unwrap();
    let reply = agents
        .message(&bot.chat, "agent-7", "您好，我是小王")
        .await
        .unwrap();
    assert_eq!(reply.kind, OutboundKind::AgentMessage);
    assert_eq!(bot.holder().await, Holder::Agent("agent-7".into()));
    assert!(bot.say("谢谢").await.is_empty());
    assert!(bot.say("客服几点上班").await.is_empty());
    assert_eq!(bot.queue.relayed(&bot.chat).await.unwrap().len(), 2);
    agents.close(&bot.chat, "agent-7").await.unwrap();
    let out = bot.say("客服几点上班").await;
    assert_eq!(out[0].kind, OutboundKind::Answer);
    assert!(bot.queue.waiting().is_empty());
}

/// Support hours that are closed right now: one minute a day, two hours from now.
fn closed_now() -> kefu_core::hours::SupportHours {
    let minute = (kefu_core::conversation::now_millis() / 60_000 + 480) % 1440;
    let open = (minute + 120) % 1440;
    kefu_core::hours::SupportHours {
        days: [true; 7],
        open: open as u16,
        close: ((open + 1) % 1440).max(1) as u16,
    }
}

#[tokio::test]
async fn outside_support_hours_a_hand_off_opens_a_ticket_and_says_when_people_are_back() {
    let tickets = Arc::new(kefu_core::MemoryTickets::new());
    let queue = Arc::new(MemoryQueue::new());
    let engine = Engine::builder(Arc::new(knowledge()))
        .queue(queue.clone())
        .tickets(tickets.clone())
        .config(EngineConfig {
            support_hours: Some(closed_now()),
            ..EngineConfig::default()
        })
        .build();
    let chat = ConversationKey::new("test", "night");
    let say = |id: &str, text: &str| Inbound::new(chat.clone(), "u1", id, text);
    let out = engine.handle(say("m1", "转人工")).await.unwrap();
    assert!(out[0].text.contains("非工作时间"), "{out:?}");
    assert!(out[0].text.contains("上线"), "{out:?}");
    assert!(
        queue.waiting().is_empty(),
        "nobody waits in a queue nobody watches"
    );
    use kefu_core::Tickets;
    let opened = tickets.for_customer("test", "u1").await.unwrap();
    assert_eq!(opened.len(), 1);
    assert!(out[0].text.contains(&opened[0].number), "{out:?}");
    // The bot keeps answering, and asking again does not open a second ticket.
    let out = engine.handle(say("m2", "客服几点上班")).await.unwrap();
    assert_eq!(out[0].kind, OutboundKind::Answer);
    let out = engine.handle(say("m3", "human")).await.unwrap();
    assert!(out[0].text.contains(&opened[0].number), "{out:?}");
    assert_eq!(tickets.for_customer("test", "u1").await.unwrap().len(), 1);
    let out = engine
        .handle(Inbound::new(
            ConversationKey::new("test", "night-en"),
            "u2",
            "m1",
            "talk to a person",
        ))
        .await
        .unwrap();
    assert!(
        out[0].text.contains("offline") && out[0].text.contains("ticket T"),
        "{out:?}"
    );
}

#[tokio::test]
async fn commands_answer_in_the_conversations_language() {
    let mut bot = Bot::new();
    bot.say("我要退款").await;
    let out = bot.say("/cancel").await;
    assert_eq!(out[0].text, "好的，已取消。还有什么可以帮您？");
    // A command as the first message: the default language (or the platform's hint).
    let mut bot = Bot::new();
    let out = bot.say("/human").await;
    assert!(out[0].text.contains("已为您转接"), "{out:?}");
    let mut bot = Bot::new();
    let m = bot.message("/help").with_locale(Locale::En);
    let out = bot.engine.handle(m).await.unwrap();
    assert!(out[0].text.contains("/human talk to a person"), "{out:?}");
    let mut bot = Bot::new();
    let out = bot.say("/help").await;
    for command in ["/human", "/cancel", "/lang", "/ticket", "/refund"] {
        assert!(out[0].text.contains(command), "{command}: {out:?}");
    }
    assert!(out[0].text.contains("查卡密"), "{out:?}");
}

#[tokio::test]
async fn a_bare_order_number_asks_what_to_do_and_a_bare_ticket_number_is_looked_up() {
    let mut bot = Bot::new();
    let out = bot.say("2024112300017").await;
    assert_eq!(out[0].kind, OutboundKind::Suggestion, "{out:?}");
    assert!(out[0].text.contains("收到订单号 2024112300017"), "{out:?}");
    assert!(out[0].text.contains("我的卡密在哪里"), "{out:?}");
    // The number is remembered for what they choose.
    let out = bot.say("2").await;
    assert!(
        out.iter().any(|o| o.text.contains("2024112300017")),
        "{out:?}"
    );

    let mut bot = Bot::new();
    let out = bot.say("T20261202000001").await;
    assert!(out[0].text.contains("T20261202000001"), "{out:?}");
    assert!(bot.queue.waiting().is_empty());

    // In English (the platform says so: digits tell no language).
    let mut bot = Bot::new();
    let m = bot.message("2024112300017").with_locale(Locale::En);
    let out = bot.engine.handle(m).await.unwrap();
    assert!(
        out[0].text.starts_with("Got order number 2024112300017"),
        "{out:?}"
    );
    assert!(out[0].text.contains("Where is my card key"), "{out:?}");
}

#[tokio::test]
async fn a_ticket_number_too_short_to_be_one_is_explained() {
    let mut bot = Bot::new();
    let out = bot.say("我的工单 T1234 进度").await;
    assert!(out[0].text.contains("“T1234”不是有效的工单号"), "{out:?}");
    assert!(out[0].text.contains("T20261202000001"), "{out:?}");
    let mut bot = Bot::new();
    let out = bot.say("status of ticket T1234?").await;
    assert!(
        out[0].text.contains("isn't a valid ticket number"),
        "{out:?}"
    );
}

#[tokio::test]
async fn an_uncertain_question_in_a_flow_offers_choices_and_going_on_with_the_flow() {
    let mut bot = Bot::new();
    bot.say("where is my card key").await;
    let out = bot.say("where did my money go").await;
    assert_eq!(out[0].kind, OutboundKind::Suggestion, "{out:?}");
    assert!(
        out[0].text.contains("Continue with my order"),
        "{}",
        out[0].text
    );
    let n = out[0].quick_replies.len();
    // Going on: the flow asks for its order number again.
    let out = bot.say(&n.to_string()).await;
    assert!(out[0].text.contains("order number"), "{out:?}");
    let out = bot.say("2024112300017").await;
    assert!(out[0].text.contains("2024112300017"), "{out:?}");

    // Choosing another question leaves the flow.
    let mut bot = Bot::new();
    bot.say("我的卡密在哪里").await;
    bot.say("where did my money go").await;
    let out = bot.say("1").await;
    assert_eq!(out[0].text, "Undelivered orders are refunded in full.");
    let state = bot.engine.conversation(&bot.chat).await.unwrap().unwrap();
    assert!(state.flow.is_none());
}

#[tokio::test]
async fn every_turn_is_in_the_transcript_with_its_decision_and_confidence() {
    let mut bot = Bot::new();
    bot.say("客服几点上班").await;
    bot.say("where did my money go").await;
    bot.say("xyzzy").await;
    let transcript = bot.engine.transcript(&bot.chat).await.unwrap();
    let customer: Vec<_> = transcript
        .iter()
        .filter(|l| l.speaker == Speaker::Customer)
        .collect();
    assert_eq!(customer.len(), 3);
    assert_eq!(customer[0].decision, Some(Decision::Answer));
    assert_eq!(customer[0].confidence, Some(0.9));
    assert_eq!(customer[0].entry.as_deref(), Some("service.hours"));
    assert_eq!(customer[1].decision, Some(Decision::Suggest));
    assert_eq!(customer[2].decision, Some(Decision::Decline));
    assert_eq!(customer[2].confidence, Some(0.0));
    let bot_lines = transcript
        .iter()
        .filter(|l| l.speaker == Speaker::Bot)
        .count();
    assert_eq!(bot_lines, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn messages_of_one_conversation_are_handled_one_at_a_time_in_order() {
    let bot = Arc::new(Bot::new());
    let mut tasks = Vec::new();
    for i in 0..40 {
        let bot = bot.clone();
        tasks.push(tokio::spawn(async move {
            let m = Inbound::new(bot.chat.clone(), "u1", format!("c{i}"), "客服几点上班");
            bot.engine.handle(m).await.unwrap()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().len(), 1);
    }
    let transcript = bot.engine.transcript(&bot.chat).await.unwrap();
    assert_eq!(transcript.len(), 80);
    // Each customer line is immediately followed by its own reply: turns never interleave.
    for pair in transcript.chunks(2) {
        assert_eq!(pair[0].speaker, Speaker::Customer);
        assert_eq!(pair[1].speaker, Speaker::Bot);
    }
}

#[tokio::test]
async fn follow_ups_are_offered_as_quick_replies_in_the_customers_language() {
    let mut bot = Bot::new();
    let out = bot.say("退款政策").await;
    assert_eq!(out[0].quick_replies.len(), 1);
    assert_eq!(out[0].quick_replies[0].label, "申请退款");
    assert_eq!(out[0].quick_replies[0].payload, "我要退款");
    let out = bot.say(&out[0].quick_replies[0].payload.clone()).await;
    assert_eq!(out[0].text, "好的，我来帮您申请退款。");
}

#[tokio::test]
async fn start_and_help_greet_and_reset_the_flow() {
    let mut bot = Bot::new();
    bot.say("我要退款").await;
    let out = bot.say("/start").await;
    assert!(out[0].text.contains("星辰卡铺"), "{out:?}");
    let state = bot.engine.conversation(&bot.chat).await.unwrap().unwrap();
    assert!(state.flow.is_none());
}

/// A store that, like a second process sharing the database, changes the conversation
/// between the turn's load and its commit, `races` times.
struct RacedStore {
    inner: MemoryStore,
    races: std::sync::atomic::AtomicU32,
}

#[async_trait::async_trait]
impl ConversationStore for RacedStore {
    async fn lock(&self, key: &ConversationKey) -> Result<kefu_core::TurnLock, StoreError> {
        self.inner.lock(key).await
    }
    async fn load(&self, key: &ConversationKey) -> Result<Option<Conversation>, StoreError> {
        self.inner.load(key).await
    }
    async fn is_processed(&self, key: &ConversationKey, id: &str) -> Result<bool, StoreError> {
        self.inner.is_processed(key, id).await
    }
    async fn commit(
        &self,
        turn: kefu_core::TurnCommit,
    ) -> Result<kefu_core::Committed, StoreError> {
        use std::sync::atomic::Ordering;
        if self.races.load(Ordering::SeqCst) > 0 {
            self.races.fetch_sub(1, Ordering::SeqCst);
            // The other process's turn: same state, one version further.
            let other = kefu_core::TurnCommit {
                message_id: None,
                lines: Vec::new(),
                outbox: Vec::new(),
                ..turn.clone()
            };
            assert_eq!(
                self.inner.commit(other).await?,
                kefu_core::Committed::Stored
            );
        }
        self.inner.commit(turn).await
    }
    async fn transcript(
        &self,
        key: &ConversationKey,
    ) -> Result<Vec<kefu_core::TranscriptLine>, StoreError> {
        self.inner.transcript(key).await
    }
    fn outbox(&self) -> Arc<dyn kefu_core::Outbox> {
        self.inner.outbox()
    }
}

#[tokio::test]
async fn a_turn_raced_by_another_process_runs_again_and_is_answered_once() {
    let store = Arc::new(RacedStore {
        inner: MemoryStore::new(),
        races: 2.into(),
    });
    let engine = Engine::builder(Arc::new(knowledge()))
        .store(store.clone())
        .build();
    let key = ConversationKey::new("telegram", "raced");
    let replies = engine
        .handle(Inbound::new(key.clone(), "u", "m1", "客服几点上班？"))
        .await
        .unwrap();
    assert_eq!(replies.len(), 1, "{replies:?}");
    assert_eq!(replies[0].kind, OutboundKind::Answer);
    let transcript = store.transcript(&key).await.unwrap();
    assert_eq!(
        transcript
            .iter()
            .filter(|l| l.message_id.as_deref() == Some("m1"))
            .count(),
        1
    );
    // Two racing commits and the turn itself.
    assert_eq!(store.load(&key).await.unwrap().unwrap().version, 3);
}

/// A knowledge port that says it ranks slowly, and whose `rank` waits (up to ten seconds) for
/// a signal that another task on the same runtime sends.
struct Waiting {
    inner: Keywords,
    signal: std::sync::Mutex<std::sync::mpsc::Receiver<()>>,
    signalled: std::sync::atomic::AtomicBool,
}

impl Knowledge for Waiting {
    fn rank(&self, query: &str, limit: usize) -> Ranking {
        let got = self
            .signal
            .lock()
            .unwrap()
            .recv_timeout(std::time::Duration::from_secs(10))
            .is_ok();
        self.signalled
            .store(got, std::sync::atomic::Ordering::SeqCst);
        self.inner.rank(query, limit)
    }

    fn entry(&self, id: &str) -> Option<&FaqEntry> {
        self.inner.entry(id)
    }

    fn ranks_slowly(&self) -> bool {
        true
    }
}

// A current-thread runtime: had the ranking run on it, the signalling task could not run
// until the ranking had given up waiting.
#[tokio::test]
async fn a_slow_ranking_runs_off_the_runtime_so_other_tasks_go_on() {
    let (tx, rx) = std::sync::mpsc::channel();
    let knowledge = Arc::new(Waiting {
        inner: knowledge(),
        signal: std::sync::Mutex::new(rx),
        signalled: std::sync::atomic::AtomicBool::new(false),
    });
    let engine = Engine::builder(knowledge.clone())
        .store(Arc::new(MemoryStore::new()))
        .build();
    let signaller = tokio::spawn(async move { tx.send(()).unwrap() });
    let chat = ConversationKey::new("test", "chat-1");
    let out = engine
        .handle(Inbound::new(
            chat,
            "u1",
            "m1",
            "what are your support hours",
        ))
        .await
        .unwrap();
    signaller.await.unwrap();
    assert!(
        knowledge
            .signalled
            .load(std::sync::atomic::Ordering::SeqCst),
        "the ranking blocked the runtime"
    );
    assert_eq!(out[0].kind, OutboundKind::Answer);
}

/// The texts waiting in the outbox, oldest first.
async fn outbox_texts(bot: &Bot) -> Vec<String> {
    bot.engine
        .agents()
        .outbox()
        .list(kefu_core::OutboxState::Pending, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.message.text)
        .collect()
}

#[tokio::test]
async fn every_committed_turn_is_an_event_with_what_was_decided() {
    let mut bot = Bot::new();
    bot.say("客服几点上班").await;
    bot.say("我要退款").await;
    bot.say("/cancel").await;
    bot.say("人工").await;
    // A message delivered twice is one turn.
    let again = Inbound::new(bot.chat.clone(), "u1", "m4", "人工");
    assert!(bot.engine.handle(again).await.unwrap().is_empty());
    let turns = bot.events.turns();
    assert_eq!(turns.len(), 4, "{turns:#?}");
    assert_eq!(turns[0].decision, Some(Decision::Answer));
    assert_eq!(turns[0].entry.as_deref(), Some("service.hours"));
    assert!(turns[0].confidence.unwrap() > 0.8);
    assert_eq!(turns[0].replies, 1);
    assert_eq!(turns[0].locale, Locale::Zh);
    assert_eq!(turns[1].flow_started.as_deref(), Some("refund_request"));
    assert_eq!(turns[2].flow_finished.as_deref(), Some("refund_request"));
    assert_eq!(turns[3].handoff, Some(HandoffReason::Requested));
    assert_eq!(turns[3].holder, Holder::Queue);
    assert!(turns
        .iter()
        .all(|t| t.handoff.is_none() || t.message_id == "m4"));
}

#[tokio::test]
async fn agents_talk_to_the_customer_through_the_outbox_in_their_language() {
    for (first, joined, closed, survey) in [
        ("人工", "人工客服已接入", "本次服务已结束", "1–5 分"),
        (
            "human",
            "has joined",
            "conversation is now closed",
            "from 1 to 5",
        ),
    ] {
        let mut bot = Bot::new();
        bot.say(first).await;
        let agents = bot.engine.agents();
        let request = agents
            .claim("general", "alice")
            .await
            .unwrap()
            .expect("waiting");
        assert_eq!(request.conversation, bot.chat);
        assert_eq!(bot.holder().await, Holder::Agent("alice".into()));
        agents
            .message(&bot.chat, "alice", "hi, Alice here")
            .await
            .unwrap();
        agents.close(&bot.chat, "alice").await.unwrap();
        assert_eq!(bot.holder().await, Holder::Bot);
        let texts = outbox_texts(&bot).await;
        assert_eq!(texts.len(), 4, "{texts:?}");
        assert!(texts[0].contains(joined), "{texts:?}");
        assert_eq!(texts[1], "hi, Alice here");
        assert!(texts[2].contains(closed), "{texts:?}");
        assert!(texts[3].contains(survey), "{texts:?}");
        // The transcript shows the same, in the same order.
        let transcript = agents.transcript(&bot.chat).await.unwrap();
        let tail: Vec<_> = transcript.iter().rev().take(4).rev().collect();
        assert_eq!(tail[1].speaker, Speaker::Agent);
        assert_eq!(tail[1].text, "hi, Alice here");
        assert_eq!(tail[3].kind, Some(OutboundKind::Survey));
        let actions: Vec<_> = bot
            .events
            .agent_actions()
            .into_iter()
            .map(|a| a.action)
            .collect();
        assert_eq!(
            actions,
            [
                kefu_core::AgentAction::Claimed,
                kefu_core::AgentAction::Message,
                kefu_core::AgentAction::Closed
            ]
        );
    }
}

#[tokio::test]
async fn a_transfer_requeues_with_the_whole_context_and_tells_the_customer() {
    let mut bot = Bot::new();
    bot.say("我的卡密在哪里").await;
    bot.say("人工").await;
    let agents = bot.engine.agents();
    agents
        .claim("general", "alice")
        .await
        .unwrap()
        .expect("waiting");
    let position = agents
        .transfer(&bot.chat, "alice", "refunds")
        .await
        .unwrap();
    assert_eq!(position.position, 1);
    assert_eq!(bot.holder().await, Holder::Queue);
    let waiting = bot.queue.waiting();
    assert_eq!(waiting.len(), 1);
    assert_eq!(waiting[0].skill_group, "refunds");
    assert_eq!(waiting[0].reason, HandoffReason::Transferred);
    assert!(
        waiting[0]
            .transcript
            .iter()
            .any(|l| l.text == "我的卡密在哪里"),
        "the new team sees what was said"
    );
    let texts = outbox_texts(&bot).await;
    assert!(texts.last().unwrap().contains("第 1 位"), "{texts:?}");
    // Released to the bot, the bot answers again and the customer is told.
    agents.release_to_bot(&bot.chat, "bob").await.unwrap();
    assert!(bot.queue.waiting().is_empty());
    assert!(outbox_texts(&bot).await.last().unwrap().contains("机器人"));
    let out = bot.say("客服几点上班").await;
    assert_eq!(out[0].kind, OutboundKind::Answer);
}

/// A conversation an agent closed, with the survey asked.
async fn closed_by(agent: &str, first: &str) -> Bot {
    let mut bot = Bot::new();
    bot.say(first).await;
    let agents = bot.engine.agents();
    agents
        .claim("general", agent)
        .await
        .unwrap()
        .expect("waiting");
    agents.close(&bot.chat, agent).await.unwrap();
    bot
}

async fn ratings(bot: &Bot) -> Vec<kefu_core::Rating> {
    bot.engine
        .conversation(&bot.chat)
        .await
        .unwrap()
        .unwrap()
        .ratings
}

#[tokio::test]
async fn the_survey_takes_a_score_and_a_comment_in_chinese() {
    let mut bot = closed_by("alice", "人工").await;
    let survey = bot
        .engine
        .agents()
        .outbox()
        .list(kefu_core::OutboxState::Pending, 10)
        .await
        .unwrap();
    let ask = &survey.last().unwrap().message;
    assert_eq!(ask.kind, OutboundKind::Survey);
    let payloads: Vec<_> = ask
        .quick_replies
        .iter()
        .map(|q| q.payload.as_str())
        .collect();
    assert_eq!(payloads, ["5", "4", "3", "2", "1"]);
    assert_eq!(ask.quick_replies[0].label, "5 非常满意");
    let out = bot.say("5").await;
    assert!(out[0].text.contains("谢谢您的评分"), "{out:?}");
    assert_eq!(out[0].quick_replies[0].label, "跳过");
    let out = bot.say("客服很耐心，谢谢").await;
    assert!(out[0].text.contains("感谢您的反馈"), "{out:?}");
    let rated = ratings(&bot).await;
    assert_eq!(rated.len(), 1);
    assert_eq!(rated[0].score, 5);
    assert_eq!(rated[0].comment.as_deref(), Some("客服很耐心，谢谢"));
    assert_eq!(rated[0].agent.as_deref(), Some("alice"));
    assert!(bot.events.all().iter().any(|e| matches!(e,
        kefu_core::EngineEvent::Rated { score: 5, agent: Some(a), .. } if a == "alice")));
    // The survey is over: the bot answers again.
    let out = bot.say("客服几点上班").await;
    assert_eq!(out[0].kind, OutboundKind::Answer);
}

#[tokio::test]
async fn the_survey_takes_a_score_and_a_skip_in_english() {
    let mut bot = closed_by("bob", "human").await;
    let out = bot.say("4 stars").await;
    assert!(out[0].text.starts_with("Thanks for rating us"), "{out:?}");
    // Another score button pressed after the first changes the score; it is not a comment.
    let out = bot.say("2").await;
    assert!(out[0].text.starts_with("Thanks for rating us"), "{out:?}");
    assert_eq!(ratings(&bot).await[0].score, 2);
    let out = bot.say("4").await;
    assert!(out[0].text.starts_with("Thanks for rating us"), "{out:?}");
    let out = bot.say("skip").await;
    assert!(
        out[0].text.starts_with("Thank you for your feedback"),
        "{out:?}"
    );
    let rated = ratings(&bot).await;
    assert_eq!((rated[0].score, rated[0].comment.clone()), (4, None));
    assert_eq!(rated[0].agent.as_deref(), Some("bob"));
}

#[tokio::test]
async fn a_new_question_instead_of_the_survey_is_answered_and_rates_nothing() {
    // Instead of a score.
    let mut bot = closed_by("alice", "人工").await;
    let out = bot.say("客服几点上班").await;
    assert_eq!(out[0].kind, OutboundKind::Answer);
    assert!(out[0].text.contains("客服时间"), "{out:?}");
    assert!(ratings(&bot).await.is_empty());
    assert!(bot
        .say("5")
        .await
        .iter()
        .all(|o| o.kind != OutboundKind::Survey));
    // Instead of a comment: the score stays, the question is answered.
    let mut bot = closed_by("alice", "human").await;
    bot.say("3").await;
    let out = bot.say("what are your support hours").await;
    assert_eq!(out[0].text, "星辰卡铺 support hours: 9:00-24:00");
    let rated = ratings(&bot).await;
    assert_eq!((rated[0].score, rated[0].comment.clone()), (3, None));
}

#[tokio::test]
async fn a_thankful_comment_is_kept_and_a_new_problem_instead_of_a_comment_is_handled() {
    let mut bot = closed_by("amy", "human").await;
    bot.say("5").await;
    let out = bot.say("Amy was quick, thanks").await;
    assert!(
        out[0].text.starts_with("Thank you for your feedback"),
        "{out:?}"
    );
    assert_eq!(
        ratings(&bot).await[0].comment.as_deref(),
        Some("Amy was quick, thanks")
    );
    // A problem, not feedback: the bot takes it up (the card-key flow asks for the order).
    let mut bot = closed_by("amy", "人工").await;
    bot.say("4").await;
    let out = bot.say("卡密还是没收到").await;
    assert_eq!(out[0].text, "我来帮您查卡密。", "{out:?}");
    assert_eq!(ratings(&bot).await[0].comment, None);
}

#[tokio::test]
async fn no_survey_when_the_shop_turns_it_off() {
    let mut bot = Bot::with_config(EngineConfig {
        survey_on_close: false,
        ..EngineConfig::default()
    });
    bot.say("人工").await;
    let agents = bot.engine.agents();
    agents.claim("general", "alice").await.unwrap();
    agents.close(&bot.chat, "alice").await.unwrap();
    let texts = outbox_texts(&bot).await;
    assert!(
        texts.last().unwrap().contains("本次服务已结束"),
        "{texts:?}"
    );
    assert!(bot.say("5").await[0].kind != OutboundKind::Survey);
    assert!(ratings(&bot).await.is_empty());
}

#[tokio::test]
async fn an_empty_agent_message_is_refused() {
    let mut bot = Bot::new();
    bot.say("人工").await;
    let agents = bot.engine.agents();
    agents.claim("general", "amy").await.unwrap();
    let err = agents.message(&bot.chat, "amy", "  \n").await.unwrap_err();
    assert!(matches!(err, kefu_core::EngineError::EmptyMessage), "{err}");
    assert_eq!(outbox_texts(&bot).await.len(), 1, "only the joined notice");
}

#[tokio::test]
async fn an_agent_action_on_an_unknown_conversation_is_refused_and_creates_nothing() {
    let bot = Bot::new();
    let agents = bot.engine.agents();
    let typo = ConversationKey::new("test", "no-such-chat");
    let err = agents.message(&typo, "amy", "hello?").await.unwrap_err();
    assert!(
        matches!(&err, kefu_core::EngineError::NoConversation(k) if *k == typo),
        "{err}"
    );
    assert!(err.to_string().contains("test:no-such-chat"), "{err}");
    assert!(agents.close(&typo, "amy").await.is_err());
    assert!(agents.transfer(&typo, "amy", "refunds").await.is_err());
    assert!(
        bot.queue.waiting().is_empty(),
        "no request for a conversation that does not exist"
    );
    assert_eq!(bot.engine.conversation(&typo).await.unwrap(), None);
    assert!(outbox_texts(&bot).await.is_empty());
}

#[tokio::test]
async fn the_vip_lane_serves_listed_and_repeat_customers_first_and_marks_them() {
    use kefu_core::orders::{MemoryOrder, MemoryOrders, Order, OrderStatus};
    let orders = Arc::new(MemoryOrders::new());
    for n in 0..3 {
        orders.insert(MemoryOrder {
            order: Some(Order {
                number: format!("DD{n}"),
                product: "月卡".into(),
                status: OrderStatus::Delivered,
                amount_cents: 3000,
                currency: "CNY".into(),
                quantity: 1,
                created_at: Some(n),
                paid_at: (n < 2).then_some(n),
                delivered_at: None,
                delivery_due_at: None,
                redeem: None,
            }),
            identities: vec![("test".into(), "buyer".into())],
            ..MemoryOrder::default()
        });
    }
    let queue = Arc::new(MemoryQueue::new());
    let engine = Engine::builder(Arc::new(knowledge()))
        .queue(queue.clone())
        .orders(orders)
        .config(EngineConfig {
            vip_customers: ["test:listed".to_string()].into(),
            vip_min_paid_orders: Some(2),
            ..EngineConfig::default()
        })
        .build();
    let ask = |user: &str| {
        Inbound::new(
            ConversationKey::new("test", format!("chat-{user}")),
            user,
            "m1",
            "人工",
        )
    };
    for user in ["plain", "buyer", "listed"] {
        engine.handle(ask(user)).await.unwrap();
    }
    let waiting = queue.waiting();
    let lane: Vec<_> = waiting.iter().map(|r| (r.user.as_str(), r.vip)).collect();
    assert_eq!(
        lane,
        [("buyer", true), ("listed", true), ("plain", false)],
        "VIPs first, in arrival order; two paid orders are enough, one unpaid does not count"
    );
    assert!(waiting[..2].iter().all(|r| r.priority >= Priority::High));
    assert_eq!(waiting[2].priority, Priority::Normal);
}

#[tokio::test]
async fn a_group_outside_its_own_hours_opens_a_ticket_while_others_queue() {
    let tickets = Arc::new(kefu_core::MemoryTickets::new());
    let queue = Arc::new(MemoryQueue::new());
    let engine = Engine::builder(Arc::new(knowledge()))
        .queue(queue.clone())
        .tickets(tickets.clone())
        .config(EngineConfig {
            group_hours: [("risk".to_string(), closed_now())].into(),
            ..EngineConfig::default()
        })
        .build();
    let say =
        |chat: &str, text: &str| Inbound::new(ConversationKey::new("test", chat), "u1", "m1", text);
    let out = engine.handle(say("a", "我的账号被盗了！")).await.unwrap();
    let told: Vec<_> = out.iter().map(|o| o.text.as_str()).collect();
    assert!(told.iter().any(|t| t.contains("非工作时间")), "{told:?}");
    assert!(queue.waiting().is_empty(), "the risk team is not in");
    use kefu_core::Tickets;
    assert_eq!(tickets.for_customer("test", "u1").await.unwrap().len(), 1);
    // The general team is in: an ordinary hand-off queues.
    engine.handle(say("b", "人工")).await.unwrap();
    assert_eq!(queue.waiting().len(), 1);
    assert_eq!(queue.waiting()[0].skill_group, "general");
}

#[tokio::test]
async fn the_first_agent_who_answers_owns_the_case() {
    let mut bot = Bot::new();
    bot.say("人工").await;
    let agents = bot.engine.agents();
    // Answering a waiting conversation takes it.
    agents
        .message(&bot.chat, "alice", "我来帮您")
        .await
        .unwrap();
    assert_eq!(bot.queue.claimed_by(&bot.chat).as_deref(), Some("alice"));
    assert_eq!(bot.holder().await, Holder::Agent("alice".into()));
    let refused = agents
        .message(&bot.chat, "bob", "我也来")
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, kefu_core::EngineError::HeldBy(owner) if owner == "alice"),
        "{refused:?}"
    );
    let texts = outbox_texts(&bot).await;
    assert!(!texts.iter().any(|t| t == "我也来"), "{texts:?}");
    // Transferred to bob with a note, bob owns it and alice may no longer answer.
    let told = agents
        .transfer_to(
            &bot.chat,
            "alice",
            &kefu_core::TransferTo::Agent("bob".into()),
            "退款已批，等财务",
        )
        .await
        .unwrap();
    assert_eq!(told, None);
    assert_eq!(bot.queue.claimed_by(&bot.chat).as_deref(), Some("bob"));
    let held = bot.queue.held(Some("bob")).await.unwrap();
    assert_eq!(held.len(), 1);
    let note = held[0].request.note.as_deref().unwrap();
    assert!(note.contains("alice") && note.contains("等财务"), "{note}");
    assert!(
        held[0]
            .request
            .transcript
            .iter()
            .any(|l| l.text == "我来帮您"),
        "the history goes along"
    );
    assert!(agents.message(&bot.chat, "alice", "还在").await.is_err());
    agents
        .message(&bot.chat, "bob", "财务已处理")
        .await
        .unwrap();
    let texts = outbox_texts(&bot).await;
    assert!(texts.iter().any(|t| t.contains("另一位同事")), "{texts:?}");
    assert_eq!(texts.last().unwrap(), "财务已处理");
}

#[tokio::test]
async fn after_pick_ups_a_hand_off_tells_the_estimated_wait() {
    let mut bot = Bot::new();
    let out = bot.say("人工").await;
    assert!(
        !out[0].text.contains("预计等待"),
        "no pick-ups yet: {}",
        out[0].text
    );
    bot.engine
        .agents()
        .claim("general", "alice")
        .await
        .unwrap()
        .expect("waiting");
    let other = ConversationKey::new("test", "chat-2");
    let out = bot
        .engine
        .handle(Inbound::new(other.clone(), "u2", "m1", "人工"))
        .await
        .unwrap();
    assert!(out[0].text.contains("预计等待约 1 分钟"), "{}", out[0].text);
    let out = bot
        .engine
        .handle(Inbound::new(
            ConversationKey::new("test", "chat-3"),
            "u3",
            "m1",
            "talk to a person",
        ))
        .await
        .unwrap();
    assert!(out[0].text.contains("about 1 min"), "{}", out[0].text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_via_the_outbox_are_stored_with_the_turn_once_and_sent_by_a_woken_worker() {
    use kefu_core::testing::{OneEntry, ScriptedChannel, CHANNEL};
    use kefu_core::{Channels, MemoryStore, OutboxState, OutboxWorker, RetryPolicy};
    let store = Arc::new(MemoryStore::new());
    let engine = Engine::builder(Arc::new(OneEntry::new(
        "service.hours",
        "hours",
        "9点到24点",
        "9:00 to 24:00",
    )))
    .store(store.clone())
    .build();
    let outbox = store.outbox();
    let key = ConversationKey::new(CHANNEL, "alice");
    let message = Inbound::new(key.clone(), "alice", "m1", "what are your hours?");
    let written = engine.handle_via_outbox(message.clone()).await.unwrap();
    assert_eq!(written[0].text, "9:00 to 24:00");
    let pending = outbox.list(OutboxState::Pending, 10).await.unwrap();
    assert_eq!(
        pending.len(),
        1,
        "the reply waits in the outbox: {pending:?}"
    );
    assert_eq!(pending[0].message, written[0]);
    // Delivered again (a platform's retry): nothing more is written.
    assert!(engine.handle_via_outbox(message).await.unwrap().is_empty());
    assert_eq!(
        outbox.list(OutboxState::Pending, 10).await.unwrap().len(),
        1
    );

    // A worker that would look again only in an hour sends it at once when woken.
    let channel = Arc::new(ScriptedChannel::working());
    let wake = Arc::new(tokio::sync::Notify::new());
    let worker = OutboxWorker::new(
        outbox.clone(),
        Channels::new().with(channel.clone()),
        RetryPolicy {
            idle_poll: std::time::Duration::from_secs(3600),
            ..RetryPolicy::default()
        },
    )
    .with_wake(wake.clone());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(async move {
        worker
            .run(async {
                let _ = stopped.await;
            })
            .await
    });
    for _ in 0..400 {
        if channel.texts().len() == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(
        channel.texts(),
        ["9:00 to 24:00"],
        "the first round sends it"
    );
    let later = Inbound::new(key.clone(), "alice", "m2", "hours again?");
    engine.handle_via_outbox(later).await.unwrap();
    wake.notify_one();
    for _ in 0..400 {
        if channel.texts().len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(channel.texts().len(), 2, "woken, not after the hour");
    stop.send(()).unwrap();
    running.await.unwrap();
}

/// A channel whose sends each wait until `n` sends are in flight at once.
struct Together(tokio::sync::Barrier);

#[async_trait::async_trait]
impl kefu_core::Channel for Together {
    fn name(&self) -> &str {
        kefu_core::testing::CHANNEL
    }
    async fn send(&self, _message: &kefu_core::Outbound) -> Result<(), kefu_core::SendError> {
        self.0.wait().await;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_sends_different_conversations_side_by_side() {
    use kefu_core::testing::message;
    use kefu_core::{Channels, MemoryOutbox, Outbox, OutboxWorker, RetryPolicy};
    let outbox = Arc::new(MemoryOutbox::new());
    outbox
        .enqueue(vec![message("a", "to a"), message("b", "to b")], 1)
        .await
        .unwrap();
    let worker = OutboxWorker::new(
        outbox.clone(),
        Channels::new().with(Arc::new(Together(tokio::sync::Barrier::new(2)))),
        RetryPolicy::default(),
    );
    // One after the other, the first send would wait for the second forever.
    let stats = tokio::time::timeout(std::time::Duration::from_secs(30), worker.run_once())
        .await
        .expect("both sends in flight at once")
        .unwrap();
    assert_eq!(stats.sent, 2);
}
