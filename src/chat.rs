//! `kefu chat`: a conversation with the bot in the terminal.
//!
//! Builds the knowledge base like `kefu ask` does, puts the engine [`kefu_app::App`] builds from
//! the configuration in front of it (its database by default the SQLite file `data/kefu.db`,
//! created on first start), and sends every line typed as a customer
//! message of one conversation on the `cli` channel, printing the bot's replies. The
//! conversation is kept in the database, so a chat ended and started again goes on where it
//! stopped, mid-flow included; `--conversation` picks another one.
//!
//! - When standard input is a terminal, lines are read with rustyline (history, line editing,
//!   Chinese input); Ctrl-D or Ctrl-C ends the chat. Otherwise plain lines are read without a
//!   prompt or banner, so conversations can be scripted:
//!   `printf '你好\n卡密在哪\n' | kefu chat --json`.
//! - Replies are printed as `kefu> text` with their quick replies numbered underneath
//!   (coloured by kind when standard output is a terminal and `NO_COLOR` is unset), or with
//!   `--json` as one JSON object per reply and line.
//! - A bare number picks the numbered quick reply of the bot's last reply: its payload is sent
//!   instead of the number. After a "did you mean" suggestion the number itself is sent, since
//!   the engine maps it to the suggested entry.

use crate::config::Config;
use anyhow::Context;
use clap::Args;
use kefu_app::knowledge::load_kb;
use kefu_core::{ConversationKey, Engine, Inbound, Locale, Outbound, OutboundKind, QuickReply};
use rustyline::error::ReadlineError;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// The channel name of conversations held through `kefu chat`.
const CHANNEL: &str = "cli";
/// The sender id of the customer typing in the terminal.
const USER: &str = "cli-user";
/// The prompt shown before each line in a terminal.
const PROMPT: &str = "you> ";

/// Arguments of `kefu chat`.
#[derive(Debug, Args)]
pub struct ChatArgs {
    /// A directory of FAQ files (default: the configured one, else the built-in knowledge base).
    #[arg(long, value_name = "DIR")]
    kb: Option<PathBuf>,
    /// The customer's language (zh or en), passed to the bot as the platform's hint; without
    /// it the bot tells the language of each message.
    #[arg(long, value_name = "LOCALE")]
    lang: Option<Locale>,
    /// The conversation's id on the `cli` channel.
    #[arg(long, value_name = "ID", default_value = "local")]
    conversation: String,
    /// Print each reply as one JSON object per line instead of text (for scripts).
    #[arg(long)]
    json: bool,
}

/// Runs `kefu chat` until the end of input.
pub fn chat(config: &Config, args: ChatArgs) -> anyhow::Result<ExitCode> {
    let interactive = std::io::stdin().is_terminal();
    if interactive {
        eprintln!("loading the knowledge base…");
    }
    let kb = load_kb(config, args.kb.as_deref())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let app = runtime.block_on(kefu_app::App::with_knowledge(config, Arc::new(kb)))?;
    let engine = app.engine;
    let key = ConversationKey::new(CHANNEL, args.conversation.clone());
    if interactive {
        if let Some(earlier) = runtime.block_on(engine.conversation(&key))? {
            eprintln!(
                "continuing conversation `{}` ({} turns so far; --conversation NAME starts another)",
                key.id, earlier.version
            );
        }
    }
    let mut session = Session {
        engine,
        runtime,
        key,
        locale: args.lang,
        // Message ids must not repeat across runs, or the store would take a new message
        // for a redelivered one.
        run: kefu_core::conversation::now_millis(),
        next_id: 1,
        buttons: Buttons::default(),
        printer: Printer {
            json: args.json,
            colour: !args.json
                && std::io::stdout().is_terminal()
                && std::env::var_os("NO_COLOR").is_none(),
        },
    };
    let ended = if interactive {
        session.run_terminal()
    } else {
        session.run_piped()
    };
    match ended {
        Ok(()) => Ok(ExitCode::SUCCESS),
        // Whoever read our output stopped reading: the conversation is over.
        Err(e) if is_broken_pipe(&e) => Ok(ExitCode::SUCCESS),
        Err(e) => Err(e),
    }
}

/// Whether `e` is a write to a closed pipe.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.downcast_ref::<std::io::Error>()
        .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
}

/// The quick replies of the bot's last reply, so that a typed number can stand for one.
#[derive(Debug, Default)]
struct Buttons {
    /// The buttons, in the order they were numbered.
    replies: Vec<QuickReply>,
    /// Whether they came with a "did you mean" suggestion, whose numbers the engine maps itself.
    suggestion: bool,
}

impl Buttons {
    /// The buttons of a turn's replies: those of the last reply that has any.
    fn of(replies: &[Outbound]) -> Buttons {
        replies
            .iter()
            .rev()
            .find(|r| !r.quick_replies.is_empty())
            .map(|r| Buttons {
                replies: r.quick_replies.clone(),
                suggestion: r.kind == OutboundKind::Suggestion,
            })
            .unwrap_or_default()
    }

    /// What to send for the typed `line`: a bare number within range stands for that button's
    /// payload, except after a suggestion, where the engine expects the number itself.
    fn resolve(&self, line: &str) -> String {
        if !self.suggestion && !line.is_empty() && line.bytes().all(|b| b.is_ascii_digit()) {
            if let Some(button) = line
                .parse::<usize>()
                .ok()
                .and_then(|n| n.checked_sub(1))
                .and_then(|i| self.replies.get(i))
            {
                return button.payload.clone();
            }
        }
        line.to_string()
    }
}

/// One conversation with the engine.
struct Session {
    engine: Arc<Engine>,
    runtime: tokio::runtime::Runtime,
    key: ConversationKey,
    /// The `--lang` hint sent with every message.
    locale: Option<Locale>,
    /// When this run started (ms): the first part of its message ids.
    run: u64,
    /// The number of the next message id in this run.
    next_id: u64,
    /// The quick replies a typed number may pick from.
    buttons: Buttons,
    printer: Printer,
}

impl Session {
    /// Reads lines with rustyline until Ctrl-D or Ctrl-C.
    fn run_terminal(&mut self) -> anyhow::Result<()> {
        let mut editor =
            rustyline::DefaultEditor::new().context("cannot set up the terminal for input")?;
        println!(
            "kefu chat — type a question in Chinese or English. Commands: /help, /human, /lang zh|en, /cancel; Ctrl-D to quit."
        );
        loop {
            match editor.readline(PROMPT) {
                Ok(line) => {
                    let line = line.trim();
                    if line.is_empty() {
                        continue;
                    }
                    // A failure to record history does not stop the conversation.
                    let _ = editor.add_history_entry(line);
                    self.turn(line)?;
                }
                Err(ReadlineError::Eof | ReadlineError::Interrupted) => return Ok(()),
                Err(e) => return Err(e).context("cannot read from the terminal"),
            }
        }
    }

    /// Reads plain lines from standard input until its end.
    fn run_piped(&mut self) -> anyhow::Result<()> {
        let mut input = std::io::stdin().lock();
        let mut buf = Vec::new();
        loop {
            buf.clear();
            let read = input
                .read_until(b'\n', &mut buf)
                .context("cannot read standard input")?;
            if read == 0 {
                return Ok(());
            }
            let line = String::from_utf8_lossy(&buf);
            let line = line.trim();
            if !line.is_empty() {
                self.turn(line)?;
            }
        }
    }

    /// Sends one line to the engine and prints the replies. Engine errors are reported and the
    /// conversation goes on; only failing to print ends it.
    fn turn(&mut self, line: &str) -> anyhow::Result<()> {
        let text = self.buttons.resolve(line);
        let message_id = format!("{}-{}", self.run, self.next_id);
        self.next_id += 1;
        let mut message = Inbound::new(self.key.clone(), USER, message_id, text);
        if let Some(locale) = self.locale {
            message = message.with_locale(locale);
        }
        match self.runtime.block_on(self.engine.handle(message)) {
            Ok(replies) => {
                // No replies means a person holds the conversation: numbers are theirs to read.
                self.buttons = Buttons::of(&replies);
                self.printer.print(&replies)?;
            }
            Err(e) => eprintln!("error: {e}"),
        }
        Ok(())
    }
}

/// Prints the bot's replies as text or JSON lines.
struct Printer {
    /// One JSON object per reply and line.
    json: bool,
    /// ANSI colours by reply kind.
    colour: bool,
}

impl Printer {
    /// Prints `replies` to standard output and flushes it.
    fn print(&self, replies: &[Outbound]) -> anyhow::Result<()> {
        let mut out = std::io::stdout().lock();
        for reply in replies {
            if self.json {
                writeln!(out, "{}", serde_json::to_string(reply)?)?;
            } else {
                out.write_all(self.render(reply).as_bytes())?;
            }
        }
        out.flush()?;
        Ok(())
    }

    /// One reply as text: `kefu> ` before its first line, the rest indented under it, then its
    /// quick replies numbered, unless the text already lists them so.
    fn render(&self, reply: &Outbound) -> String {
        let (start, end) = match (self.colour, colour_of(reply.kind)) {
            (true, code) => (format!("\x1b[{code}m"), "\x1b[0m"),
            (false, _) => (String::new(), ""),
        };
        let mut text = String::new();
        for (i, line) in reply.text.lines().enumerate() {
            let lead = if i == 0 { "kefu> " } else { "      " };
            text.push_str(&format!("{start}{lead}{line}{end}\n"));
        }
        if reply.text.is_empty() {
            text.push_str(&format!("{start}kefu>{end}\n"));
        }
        let listed = reply
            .quick_replies
            .iter()
            .enumerate()
            .all(|(i, q)| reply.text.contains(&format!("{}. {}", i + 1, q.label)));
        if !listed {
            for (i, q) in reply.quick_replies.iter().enumerate() {
                text.push_str(&format!("  [{}] {}\n", i + 1, q.label));
            }
        }
        text
    }
}

/// The ANSI colour code of a reply kind.
fn colour_of(kind: OutboundKind) -> &'static str {
    match kind {
        OutboundKind::Answer => "32",
        OutboundKind::Suggestion | OutboundKind::Question | OutboundKind::Survey => "33",
        OutboundKind::Handoff => "35",
        OutboundKind::AgentMessage | OutboundKind::Notification => "36",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(kind: OutboundKind, text: &str, buttons: &[(&str, &str)]) -> Outbound {
        Outbound {
            conversation: ConversationKey::new(CHANNEL, "t"),
            text: text.to_string(),
            quick_replies: buttons
                .iter()
                .map(|(l, p)| QuickReply::new(*l, *p))
                .collect(),
            kind,
        }
    }

    #[test]
    fn a_number_sends_the_buttons_payload_except_after_a_suggestion() {
        let declined = Buttons::of(&[reply(
            OutboundKind::Answer,
            "sorry",
            &[("转人工", "转人工")],
        )]);
        assert_eq!(declined.resolve("1"), "转人工");
        assert_eq!(declined.resolve("2"), "2");
        assert_eq!(declined.resolve("0"), "0");
        assert_eq!(declined.resolve("1个"), "1个");

        let suggested = Buttons::of(&[reply(
            OutboundKind::Suggestion,
            "which?\n1. a\n2. b",
            &[("a", "1"), ("b", "2")],
        )]);
        assert_eq!(suggested.resolve("2"), "2");

        let none = Buttons::of(&[reply(OutboundKind::Handoff, "queued", &[])]);
        assert_eq!(none.resolve("1"), "1");
    }

    #[test]
    fn renders_prefix_indent_and_numbered_buttons_without_colour() {
        let printer = Printer {
            json: false,
            colour: false,
        };
        let text = printer.render(&reply(
            OutboundKind::Answer,
            "hello\nthere",
            &[("more", "more")],
        ));
        assert_eq!(text, "kefu> hello\n      there\n  [1] more\n");
        // A suggestion lists its choices in the text already.
        let text = printer.render(&reply(
            OutboundKind::Suggestion,
            "which?\n1. a\n2. b",
            &[("a", "1"), ("b", "2")],
        ));
        assert_eq!(text, "kefu> which?\n      1. a\n      2. b\n");
    }
}
