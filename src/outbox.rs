//! `kefu outbox`: messages waiting to go to customers later (agents' replies, ticket
//! notices, surveys) — how many wait, which were given up on and why, and sending those
//! again once the cause is fixed.

use crate::config::Config;
use clap::Args;
use kefu_core::{Outbox, OutboxItem, OutboxState};
use std::process::ExitCode;

/// How many dead letters `kefu outbox dead` lists by default.
const SHOWN: usize = 50;

/// Arguments of `kefu outbox dead`.
#[derive(Debug, Args)]
pub struct DeadArgs {
    /// How many to list, oldest first.
    #[arg(long, default_value_t = SHOWN)]
    limit: usize,
    /// Also print each message's text (it may hold what an agent wrote to a customer).
    #[arg(long)]
    text: bool,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
}

/// Arguments of `kefu outbox resend`.
#[derive(Debug, Args)]
pub struct ResendArgs {
    /// The ids of dead letters to send again (see `kefu outbox dead`).
    #[arg(value_name = "ID", required_unless_present = "all")]
    ids: Vec<i64>,
    /// Every dead letter.
    #[arg(long, conflicts_with = "ids")]
    all: bool,
}

fn open<T>(
    config: &Config,
    work: impl AsyncFnOnce(&dyn Outbox) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    crate::with_database(config, async |db| work(&db.outbox()).await)
}

/// `kefu outbox status`: how many messages are in each state.
pub fn status(config: &Config) -> anyhow::Result<ExitCode> {
    let counts = open(config, async |outbox| Ok(outbox.counts().await?))?;
    out!(
        "pending: {}\nsent: {}\ndead: {}",
        counts.pending,
        counts.sent,
        counts.dead
    );
    if counts.dead > 0 {
        out!(
            "(`kefu outbox dead` lists the dead letters; `kefu outbox resend ID` sends one again)"
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `kefu outbox dead`: the messages given up on, with why.
pub fn dead(config: &Config, args: DeadArgs) -> anyhow::Result<ExitCode> {
    let items = open(config, async |outbox| {
        Ok(outbox.list(OutboxState::Dead, args.limit).await?)
    })?;
    if items.is_empty() && !args.json {
        out!("no dead letters");
    }
    for item in &items {
        if args.json {
            out!("{}", describe_json(item, args.text));
        } else {
            out!("{}", describe(item, args.text));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn describe(item: &OutboxItem, text: bool) -> String {
    let m = &item.message;
    let mut line = format!(
        "#{} to {} ({:?}, {} chars) after {} tr{}: {}",
        item.id,
        m.conversation,
        m.kind,
        m.text.chars().count(),
        item.attempts,
        if item.attempts == 1 { "y" } else { "ies" },
        item.last_error.as_deref().unwrap_or("no error recorded")
    );
    if text {
        line.push_str("\n    ");
        line.push_str(&m.text.replace('\n', "\n    "));
    }
    line
}

fn describe_json(item: &OutboxItem, text: bool) -> serde_json::Value {
    let m = &item.message;
    let mut value = serde_json::json!({
        "id": item.id,
        "channel": m.conversation.channel,
        "conversation": m.conversation.id,
        "kind": m.kind,
        "attempts": item.attempts,
        "created_at": item.created_at,
        "error": item.last_error,
    });
    if text {
        value["text"] = serde_json::Value::String(m.text.clone());
    }
    value
}

/// `kefu outbox resend`: dead letters become pending again, due now.
pub fn resend(config: &Config, args: ResendArgs) -> anyhow::Result<ExitCode> {
    let (sent_again, unknown) = open(config, async |outbox| {
        let ids = if args.all {
            outbox
                .list(OutboxState::Dead, usize::MAX)
                .await?
                .into_iter()
                .map(|i| i.id)
                .collect()
        } else {
            args.ids.clone()
        };
        let now = kefu_core::conversation::now_millis();
        let (mut again, mut unknown) = (0, Vec::new());
        for id in ids {
            if outbox.resend(id, now).await? {
                again += 1;
            } else {
                unknown.push(id);
            }
        }
        anyhow::Ok((again, unknown))
    })?;
    if sent_again > 0 || unknown.is_empty() {
        out!(
            "{sent_again} message{} will be sent again by the outbox worker",
            if sent_again == 1 { "" } else { "s" }
        );
    }
    if !unknown.is_empty() {
        let ids: Vec<String> = unknown.iter().map(|id| format!("#{id}")).collect();
        eprintln!(
            "not dead letters (sent, pending or unknown): {}; `kefu outbox dead` lists the dead ones",
            ids.join(", ")
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
