//! Your own bot on the kefu engine: `cargo run --example embed`.
//!
//! Builds the built-in card-shop knowledge base, an `Engine` with the in-memory conversation
//! store and hand-off queue, and plays a short scripted exchange: a question in Chinese, one in
//! English, then `/human`, which hands the conversation to a person.

use kefu_core::{ConversationKey, Engine, EngineConfig, Inbound};
use kefu_knowledge::{defaults, KnowledgeBase, MatcherOptions, ValidationOptions};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let faq = defaults::load(&ValidationOptions::default())?;
    let knowledge = KnowledgeBase::build(faq, MatcherOptions::default())?;
    let vars = [
        ("shop_name", "Acme"),
        ("refund_days", "7"),
        ("support_hours", "9-18"),
    ];
    let variables = vars.map(|(k, v)| (k.to_string(), v.to_string())).into();
    let config = EngineConfig {
        variables,
        ..EngineConfig::default()
    };
    // No .store(..)/.queue(..): the in-memory conversation store and hand-off queue.
    let engine = Engine::builder(Arc::new(knowledge)).config(config).build();
    let chat = ConversationKey::new("my-app", "customer-42");
    let script = ["卡密无效怎么办", "can I get a refund?", "/human"];
    for (i, text) in script.into_iter().enumerate() {
        println!("customer> {text}");
        let message = Inbound::new(chat.clone(), "customer-42", format!("m{i}"), text);
        for reply in engine.handle(message).await? {
            println!("bot [{:?}]> {}", reply.kind, reply.text);
        }
    }
    Ok(())
}
