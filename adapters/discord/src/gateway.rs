//! The gateway bot: a serenity [`Client`](serenity::Client) whose event handler passes
//! direct messages and mentions to the engine (replies through the outbox), answers
//! interactions, and registers the slash commands on READY.

use crate::interactions::{Action, Interaction};
use crate::render::Say;
use crate::{build_http, Discord, DiscordError, Place};
use kefu_core::{EngineError, Inbound};
use serenity::all::{
    Command, CommandDataOptionValue, CommandInteraction, CommandOptionType, ComponentInteraction,
    ComponentInteractionDataKind, Context, CreateCommand, CreateCommandOption, EventHandler,
    GatewayIntents, InstallationContext, Interaction as SerenityInteraction, InteractionContext,
    Message, MessageType, Ready,
};
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// The gateway intents the bot asks for. MESSAGE_CONTENT is not among them: Discord gives a
/// bot the content of direct messages and of messages that mention it without that
/// privileged intent, and those are the only ones it answers.
pub(crate) fn intents() -> GatewayIntents {
    GatewayIntents::GUILD_MESSAGES | GatewayIntents::DIRECT_MESSAGES
}

/// How often a message whose conversation is busy is tried again.
const BUSY_TRIES: u32 = 3;

impl Discord {
    /// Runs the gateway bot until `shutdown` completes (then closes the connection), or until
    /// Discord refuses it for good (a wrong token, intents not allowed). Returns at once when
    /// [`crate::DiscordSettings::gateway`] is off. On READY the slash commands are registered
    /// (global commands, replacing the application's others).
    pub async fn run_gateway(
        self: Arc<Self>,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), DiscordError> {
        if !self.settings.gateway {
            tracing::info!("discord: the gateway bot is off (gateway: false)");
            return Ok(());
        }
        let http = build_http(&self.settings, self.client.clone());
        let mut client = serenity::client::ClientBuilder::new_with_http(http, intents())
            .event_handler(Handler {
                discord: self.clone(),
            })
            .await
            .map_err(|e| DiscordError::Gateway(e.to_string()))?;
        let shards = client.shard_manager.clone();
        tokio::select! {
            result = client.start() => {
                result.map_err(|e| DiscordError::Gateway(e.to_string()))
            }
            () = shutdown => {
                shards.shutdown_all().await;
                Ok(())
            }
        }
    }

    /// A message from the gateway: a direct message, or one in a server's channel that
    /// mentions the bot (the mention taken out), to the engine with its replies to the
    /// outbox. Bots' messages (the bot's own among them) are ignored.
    pub(crate) async fn on_message(&self, message: &Message) {
        let Some(inbound) = self.inbound(message) else {
            return;
        };
        if self
            .per_conversation
            .check(&inbound.conversation.id, std::time::Instant::now())
            .is_err()
        {
            self.rejections
                .count(crate::interactions::Cause::RateLimitedConversation);
            tracing::info!(conversation = %inbound.conversation,
                "Discord conversation over its message rate; message not read");
            return;
        }
        for attempt in 1..=BUSY_TRIES {
            match self.engine.handle_via_outbox(inbound.clone()).await {
                Ok(_) => {
                    self.wake.notify_one();
                    return;
                }
                Err(EngineError::Busy(_)) if attempt < BUSY_TRIES => {
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
                }
                Err(error) => {
                    tracing::warn!(%error, conversation = %inbound.conversation,
                        "a Discord message could not be handled");
                    return;
                }
            }
        }
    }

    /// The engine's message for a gateway message, or `None` when the bot does not answer it.
    pub(crate) fn inbound(&self, message: &Message) -> Option<Inbound> {
        let me = self.bot_user_id();
        if message.author.bot || message.author.id.get() == me || message.webhook_id.is_some() {
            return None;
        }
        if !matches!(
            message.kind,
            MessageType::Regular | MessageType::InlineReply
        ) {
            return None;
        }
        let channel = message.channel_id.get();
        let user = message.author.id.get();
        let (place, text) = match message.guild_id {
            None => (
                Place::Direct { channel },
                message.content.trim().to_string(),
            ),
            Some(_) => {
                let mentioned = message.mentions.iter().any(|u| u.id.get() == me)
                    || mentions(&message.content, me);
                if !mentioned {
                    return None;
                }
                let text = strip_mentions(&message.content, me);
                // A bare mention greets.
                let text = if text.is_empty() {
                    "/start".to_string()
                } else {
                    text
                };
                (Place::Guild { channel, user }, text)
            }
        };
        if text.is_empty() {
            // An attachment or a sticker alone: nothing the engine can read.
            return None;
        }
        let inbound = Inbound::new(place.key(), user.to_string(), message.id.to_string(), text);
        Some(if place.private() {
            inbound
        } else {
            inbound.in_group()
        })
    }

    /// Answers an interaction from the gateway in its response.
    async fn on_interaction(&self, ctx: &Context, interaction: SerenityInteraction) {
        match interaction {
            SerenityInteraction::Command(command) => {
                let ours = command_interaction(&command);
                let response = self.respond(&ours).await;
                if let Err(error) = command.create_response(&ctx.http, response).await {
                    tracing::warn!(%error, "a Discord command could not be answered");
                }
            }
            SerenityInteraction::Component(component) => {
                let Some(ours) = component_interaction(&component) else {
                    return;
                };
                let response = self.respond(&ours).await;
                if let Err(error) = component.create_response(&ctx.http, response).await {
                    tracing::warn!(%error, "a Discord button press could not be answered");
                }
            }
            _ => {}
        }
    }

    async fn respond(&self, interaction: &Interaction) -> serenity::all::CreateInteractionResponse {
        let answer = match self.answer(interaction).await {
            Ok(answer) => answer,
            Err(error) => {
                tracing::warn!(%error, "a Discord interaction could not be handled");
                crate::interactions::Answer {
                    text: Say::TryAgain.text(interaction.locale).to_string(),
                    buttons: Vec::new(),
                    ephemeral: true,
                }
            }
        };
        self.response(&answer)
    }

    async fn on_ready(&self, ctx: &Context, ready: &Ready) {
        self.bot_user.store(ready.user.id.get(), Ordering::Relaxed);
        tracing::info!(user = %ready.user.name, "discord: the gateway bot is connected");
        match Command::set_global_commands(&ctx.http, commands()).await {
            Ok(registered) => {
                tracing::info!(
                    count = registered.len(),
                    "discord: slash commands registered"
                )
            }
            Err(error) => tracing::warn!(%error, "discord: the slash commands were not registered"),
        }
    }
}

/// Whether `content` mentions user `id` (`<@id>` or `<@!id>`).
fn mentions(content: &str, id: u64) -> bool {
    content.contains(&format!("<@{id}>")) || content.contains(&format!("<@!{id}>"))
}

/// `content` without mentions of user `id`, trimmed.
fn strip_mentions(content: &str, id: u64) -> String {
    content
        .replace(&format!("<@{id}>"), " ")
        .replace(&format!("<@!{id}>"), " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn group(guild: bool, context: Option<InteractionContext>) -> bool {
    guild || context.is_some_and(|c| c != InteractionContext::BotDm)
}

fn command_interaction(command: &CommandInteraction) -> Interaction {
    let option = command.data.options.iter().find_map(|o| match &o.value {
        CommandDataOptionValue::String(s) => Some(s.clone()),
        CommandDataOptionValue::Integer(n) => Some(n.to_string()),
        _ => None,
    });
    Interaction {
        id: command.id.get(),
        channel: command.channel_id.get(),
        group: group(command.guild_id.is_some(), command.context),
        user: command.user.id.get(),
        locale: crate::locale(&command.locale),
        action: Action::Command {
            name: command.data.name.clone(),
            option,
        },
    }
}

fn component_interaction(component: &ComponentInteraction) -> Option<Interaction> {
    if !matches!(component.data.kind, ComponentInteractionDataKind::Button) {
        return None;
    }
    Some(Interaction {
        id: component.id.get(),
        channel: component.channel_id.get(),
        group: group(component.guild_id.is_some(), component.context),
        user: component.user.id.get(),
        locale: crate::locale(&component.locale),
        action: Action::Button {
            custom_id: component.data.custom_id.clone(),
            message: component.message.content.clone(),
        },
    })
}

/// The slash commands: `/ask <question>`, `/human`, `/order <number>`, in English with
/// Chinese names and descriptions; usable in servers and in the bot's DM.
pub(crate) fn commands() -> Vec<CreateCommand> {
    let contexts = vec![InteractionContext::Guild, InteractionContext::BotDm];
    let chinese = |command: CreateCommand, zh_cn: (&str, &str), zh_tw: (&str, &str)| {
        command
            .name_localized("zh-CN", zh_cn.0)
            .description_localized("zh-CN", zh_cn.1)
            .name_localized("zh-TW", zh_tw.0)
            .description_localized("zh-TW", zh_tw.1)
    };
    let option = |name: &str, description: &str, zh_cn: (&str, &str), zh_tw: (&str, &str)| {
        CreateCommandOption::new(CommandOptionType::String, name, description)
            .required(true)
            .max_length(1000)
            .name_localized("zh-CN", zh_cn.0)
            .description_localized("zh-CN", zh_cn.1)
            .name_localized("zh-TW", zh_tw.0)
            .description_localized("zh-TW", zh_tw.1)
    };
    vec![
        chinese(
            CreateCommand::new("ask").description("Ask the support bot a question"),
            ("提问", "向客服机器人提问"),
            ("提問", "向客服機器人提問"),
        )
        .add_option(option(
            "question",
            "Your question",
            ("问题", "您的问题"),
            ("問題", "您的問題"),
        ))
        .contexts(contexts.clone())
        .integration_types(vec![InstallationContext::Guild]),
        chinese(
            CreateCommand::new("human").description("Talk to a person from support"),
            ("人工客服", "转人工客服"),
            ("真人客服", "轉真人客服"),
        )
        .contexts(contexts.clone())
        .integration_types(vec![InstallationContext::Guild]),
        chinese(
            CreateCommand::new("order").description("Check an order by its number"),
            ("订单", "按订单号查询订单"),
            ("訂單", "按訂單號查詢訂單"),
        )
        .add_option(option(
            "number",
            "Your order number",
            ("订单号", "您的订单号"),
            ("訂單號", "您的訂單號"),
        ))
        .contexts(contexts)
        .integration_types(vec![InstallationContext::Guild]),
    ]
}

struct Handler {
    discord: Arc<Discord>,
}

#[serenity::async_trait]
impl EventHandler for Handler {
    async fn ready(&self, ctx: Context, ready: Ready) {
        self.discord.on_ready(&ctx, &ready).await;
    }

    async fn message(&self, _ctx: Context, message: Message) {
        self.discord.on_message(&message).await;
    }

    async fn interaction_create(&self, ctx: Context, interaction: SerenityInteraction) {
        self.discord.on_interaction(&ctx, interaction).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_are_found_and_taken_out() {
        assert!(mentions("hi <@42> there", 42));
        assert!(mentions("<@!42>", 42));
        assert!(!mentions("<@421>", 42));
        assert_eq!(
            strip_mentions("<@42> where is  my key", 42),
            "where is my key"
        );
        assert_eq!(strip_mentions("key? <@!42>", 42), "key?");
        assert_eq!(strip_mentions("<@42>", 42), "");
        assert_eq!(strip_mentions("<@7> hi <@42>", 42), "<@7> hi");
    }

    #[test]
    fn commands_have_chinese_localizations() {
        let json = serde_json::to_value(commands()).unwrap();
        let names: Vec<_> = json
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(names, ["ask", "human", "order"]);
        assert_eq!(json[0]["name_localizations"]["zh-CN"], "提问");
        assert_eq!(json[2]["options"][0]["required"], true);
        assert_eq!(
            json[2]["options"][0]["name_localizations"]["zh-CN"],
            "订单号"
        );
    }
}
