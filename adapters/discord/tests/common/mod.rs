//! What the Discord tests share: a real engine on a small knowledge base with orders, and a
//! fake of the parts of Discord's HTTP API and gateway serenity uses, on loopback.

#![allow(dead_code)]

use kefu_core::orders::{MemoryOrder, MemoryOrders, Order, OrderStatus};
use kefu_core::{
    Action, Answers, Candidate, Engine, FaqEntry, Knowledge, MemoryStore, Ranking, Titles,
};
use std::sync::Arc;
use std::time::Duration;

/// The customer's user id.
pub const CUSTOMER: u64 = 900_000_000_000_009;
/// Their order, linked to their Discord account, with a card key.
pub const ORDER: &str = "DD20240001";
pub const CARD_KEY: &str = "KEY-AAAA-BBBB-CCCC";
/// A follow-up question longer than a button's custom_id can carry.
pub const LONG_QUESTION: &str = "what is the warranty on a game top-up card that was bought during the spring festival sale with a coupon";

/// A knowledge port ranking by keywords.
pub struct Keywords {
    entries: Vec<(FaqEntry, Vec<&'static str>)>,
}

impl Knowledge for Keywords {
    fn rank(&self, query: &str, limit: usize) -> Ranking {
        let q = query.to_lowercase();
        let mut candidates: Vec<Candidate> = self
            .entries
            .iter()
            .filter(|(_, keys)| keys.iter().any(|k| q.contains(k)))
            .map(|(e, _)| Candidate {
                id: e.id.clone(),
                score: 0.95,
                confidence: 0.95,
                matched_question: e.questions[0].clone(),
            })
            .collect();
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
    FaqEntry::new(
        id,
        questions.iter().copied(),
        Answers {
            zh: zh.into(),
            en: en.into(),
        },
    )
}

/// The knowledge base: the refund policy (with two follow-up buttons, one whose question is
/// too long for a custom_id), the warranty, the card key lookup.
pub fn knowledge() -> Keywords {
    let mut policy = entry(
        "refund.policy",
        &["what is the refund policy", "退款政策是什么"],
        "未发货订单可全额退款。",
        "Undelivered orders are refunded in full.",
    );
    policy.follow_ups = vec!["refund.howto".into(), "warranty".into()];
    let mut howto = entry(
        "refund.howto",
        &["how do i get a refund", "怎么退款"],
        "在订单页点“申请退款”。",
        "Press \"Request a refund\" on the order page.",
    );
    howto.title = Titles {
        zh: Some("怎么退款".into()),
        en: Some("How to get a refund".into()),
    };
    let mut warranty = entry(
        "warranty",
        &[LONG_QUESTION, "保修多久"],
        "保修 7 天。",
        "The warranty is 7 days.",
    );
    warranty.title = Titles {
        zh: Some("保修".into()),
        en: Some("Warranty".into()),
    };
    let mut card_key = entry(
        "order.card_key_lookup",
        &["where is my card key", "我的卡密在哪里"],
        "我来帮您查卡密。",
        "Let me find your card key.",
    );
    card_key.action = Some(Action::CardKeyLookup);
    Keywords {
        entries: vec![
            (policy, vec!["refund policy", "退款政策"]),
            (howto, vec!["how do i get a refund", "怎么退款"]),
            (warranty, vec!["warranty", "保修"]),
            (card_key, vec!["card key", "卡密"]),
        ],
    }
}

/// The customer's orders: [`ORDER`], delivered, with [`CARD_KEY`], linked to `users`.
pub fn orders(users: &[u64]) -> Arc<MemoryOrders> {
    let orders = Arc::new(MemoryOrders::new());
    orders.insert(MemoryOrder {
        order: Some(Order {
            number: ORDER.into(),
            product: "Steam 100".into(),
            status: OrderStatus::Delivered,
            amount_cents: 10_000,
            currency: "CNY".into(),
            quantity: 1,
            created_at: Some(1),
            paid_at: Some(1),
            delivered_at: Some(2),
            delivery_due_at: None,
            redeem: None,
        }),
        keys: vec![CARD_KEY.into()],
        identities: users
            .iter()
            .map(|u| (kefu_discord::CHANNEL.to_string(), u.to_string()))
            .collect(),
        ..MemoryOrder::default()
    });
    orders
}

/// A real engine on memory stores with [`knowledge`] and [`orders`] of [`CUSTOMER`].
pub fn engine() -> (Arc<Engine>, Arc<MemoryStore>) {
    let store = Arc::new(MemoryStore::new());
    let engine = Engine::builder(Arc::new(knowledge()))
        .store(store.clone())
        .orders(orders(&[CUSTOMER]))
        .build();
    (Arc::new(engine), store)
}

/// Polls `check` every 20 ms for up to 10 s.
pub async fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    for _ in 0..500 {
        if let Some(found) = check() {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

pub use kefu_discord::testing::*;
