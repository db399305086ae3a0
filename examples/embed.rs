//! Your own bot on the kefu engine: `cargo run --example embed`.
//!
//! Builds the built-in card-shop knowledge base, an `Engine` with the in-memory stores, and
//! plays a short scripted exchange: a question in Chinese, one in English, then `/human`, which
//! hands the conversation to a person. An agent then claims it through `Agents`, answers and
//! closes it; what the agent says goes through the outbox and reaches the customer through
//! your `Channel` when the `OutboxWorker` runs. The customer rates the help.

use async_trait::async_trait;
use kefu_core::{
    Channel, Channels, ConversationKey, Engine, EngineConfig, Inbound, Outbound, OutboxWorker,
    RetryPolicy, SendError,
};
use kefu_knowledge::{defaults, KnowledgeBase, MatcherOptions, ValidationOptions};
use std::sync::Arc;

/// Your messaging platform: here, the terminal.
struct MyApp;

#[async_trait]
impl Channel for MyApp {
    fn name(&self) -> &str {
        "my-app"
    }

    async fn send(&self, message: &Outbound) -> Result<(), SendError> {
        // A real channel calls its platform here and maps a 429 to RateLimited, a 5xx to
        // Unavailable, a blocked bot to Unreachable.
        println!(
            "to {} [{:?}]> {}",
            message.conversation.id, message.kind, message.text
        );
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let faq = defaults::load(&ValidationOptions::default())?;
    let knowledge = KnowledgeBase::build(faq, MatcherOptions::default())?;
    let vars = [
        ("shop_name", "Acme"),
        ("refund_days", "7"),
        ("support_hours", "9-18"),
        ("support_email", "help@acme.example"),
    ];
    let variables = vars.map(|(k, v)| (k.to_string(), v.to_string())).into();
    let config = EngineConfig {
        variables,
        ..EngineConfig::default()
    };
    // No .store(..)/.queue(..): the in-memory stores.
    let engine = Arc::new(Engine::builder(Arc::new(knowledge)).config(config).build());
    let chat = ConversationKey::new("my-app", "customer-42");
    let mut next = 0;
    let mut say = async |text: &str| -> Result<(), Box<dyn std::error::Error>> {
        println!("customer> {text}");
        next += 1;
        let message = Inbound::new(chat.clone(), "customer-42", format!("m{next}"), text);
        for reply in engine.handle(message).await? {
            println!("bot [{:?}]> {}", reply.kind, reply.text);
        }
        Ok(())
    };
    for text in ["卡密无效怎么办", "can I get a refund?", "/human"] {
        say(text).await?;
    }

    // A person takes over. What agents say is queued in the outbox with its transcript line.
    let agents = engine.agents();
    let worker = OutboxWorker::new(
        agents.outbox(),
        Channels::new().with(Arc::new(MyApp)),
        RetryPolicy::default(),
    );
    if let Some(request) = agents.claim("general", "amy").await? {
        println!(
            "(amy claimed {} with {} transcript lines)",
            request.conversation,
            request.transcript.len()
        );
    }
    agents
        .message(
            &chat,
            "amy",
            "Hi, Amy here. I've sent you a new key by e-mail.",
        )
        .await?;
    agents.close(&chat, "amy").await?;
    // Your process runs the worker in the background (`worker.run(shutdown)`); here, until
    // the outbox is empty (each round sends the oldest waiting message of each conversation).
    while worker.run_once().await?.claimed > 0 {}
    for text in ["5", "Amy was quick, thanks"] {
        say(text).await?;
    }
    Ok(())
}
