//! `kefu agents`: the people who answer customers — adding them (with a role and a password,
//! stored as an Argon2id hash), listing them, changing a password, disabling and enabling.
//! Passwords are typed without echo at a terminal or read from standard input, never taken
//! from the command line (where `ps` and the shell's history would keep them).

use crate::config::Config;
use anyhow::Context;
use clap::Args;
use kefu_sql::{Role, SqlAccounts};
use std::io::BufRead;
use std::process::ExitCode;

/// Arguments of `kefu agents add`.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// The name they log in with and appear as (letters, digits, '.', '-', '_').
    name: String,
    /// `agent` (the queue, conversations, tickets) or `admin` (also the dashboard and team).
    #[arg(long, default_value = "agent", value_parser = ["agent", "admin"])]
    role: String,
}

/// Arguments of `kefu agents set`.
#[derive(Debug, Args)]
pub struct SetArgs {
    /// The account's name.
    name: String,
    /// How many open conversations they hold at most (at least 1).
    #[arg(long)]
    capacity: Option<u32>,
    /// The skill groups they answer, comma-separated (`refunds,orders`); empty: every group.
    #[arg(long)]
    groups: Option<String>,
}

/// Arguments naming one account.
#[derive(Debug, Args)]
pub struct NameArgs {
    /// The account's name.
    name: String,
}

fn open<T>(
    config: &Config,
    work: impl AsyncFnOnce(&SqlAccounts) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    crate::with_database(config, async |db| work(&db.accounts()).await)
}

/// The password: typed at a terminal without echo (twice, to catch typos), or else the first
/// line of standard input.
fn read_password(name: &str) -> anyhow::Result<String> {
    use std::io::IsTerminal;
    let password = if std::io::stdin().is_terminal() {
        let prompt = format!(
            "password for {name} (at least {} characters): ",
            kefu_sql::MIN_PASSWORD_CHARS
        );
        let first = rpassword::prompt_password(prompt).context("cannot read the password")?;
        let again = rpassword::prompt_password("the same password again: ")
            .context("cannot read the password")?;
        if first != again {
            anyhow::bail!("the two passwords differ; nothing was changed");
        }
        first
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the password from standard input")?;
        line.trim_end_matches(['\r', '\n']).to_string()
    };
    if password.is_empty() {
        anyhow::bail!(
            "no password on standard input: printf '%s\\n' \"$PASSWORD\" | kefu agents add {name}"
        );
    }
    Ok(password)
}

fn now() -> u64 {
    kefu_core::conversation::now_millis()
}

/// `kefu agents add NAME [--role agent|admin]`.
pub fn add(config: &Config, args: AddArgs) -> anyhow::Result<ExitCode> {
    let role = Role::parse(&args.role).unwrap_or(Role::Agent);
    let password = read_password(&args.name)?;
    let account = open(config, async |accounts| {
        Ok(accounts.add(&args.name, role, &password, now()).await?)
    })?;
    out!("added {} ({})", account.name, account.role.as_str());
    Ok(ExitCode::SUCCESS)
}

/// `kefu agents list`.
pub fn list(config: &Config) -> anyhow::Result<ExitCode> {
    let accounts = open(config, async |accounts| Ok(accounts.list().await?))?;
    if accounts.is_empty() {
        out!("no accounts yet: kefu agents add NAME --role admin");
    }
    for account in accounts {
        out!(
            "{}\t{}\tcapacity {}\t{}{}",
            account.name,
            account.role.as_str(),
            account.capacity,
            if account.groups.is_empty() {
                "all groups".to_string()
            } else {
                account.groups.join(",")
            },
            if account.disabled { "\tdisabled" } else { "" }
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `kefu agents set NAME [--capacity N] [--groups a,b]`.
pub fn set(config: &Config, args: SetArgs) -> anyhow::Result<ExitCode> {
    if args.capacity.is_none() && args.groups.is_none() {
        anyhow::bail!("nothing to set: give --capacity N and/or --groups a,b");
    }
    if args.capacity == Some(0) {
        anyhow::bail!("--capacity must be at least 1");
    }
    let groups: Option<Vec<String>> = args.groups.as_ref().map(|g| {
        g.split(',')
            .map(str::trim)
            .filter(|g| !g.is_empty())
            .map(str::to_string)
            .collect()
    });
    if let Some(unknown) = groups
        .iter()
        .flatten()
        .find(|g| !config.skill_groups.contains(*g))
    {
        anyhow::bail!(
            "`{unknown}` is not one of the skill_groups ({}); fix the name or add it to kefu.yaml",
            config
                .skill_groups
                .iter()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let changed = open(config, async |accounts| {
        let mut changed = true;
        if let Some(capacity) = args.capacity {
            changed &= accounts.set_capacity(&args.name, capacity).await?;
        }
        if let Some(groups) = &groups {
            changed &= accounts.set_groups(&args.name, groups).await?;
        }
        Ok(changed)
    })?;
    done(changed, &args.name, "updated")
}

/// `kefu agents password NAME`: a new password from standard input.
pub fn password(config: &Config, args: NameArgs) -> anyhow::Result<ExitCode> {
    let password = read_password(&args.name)?;
    let changed = open(config, async |accounts| {
        Ok(accounts.set_password(&args.name, &password).await?)
    })?;
    done(changed, &args.name, "password changed")
}

/// `kefu agents disable NAME` / `enable NAME`.
pub fn set_disabled(config: &Config, args: NameArgs, disabled: bool) -> anyhow::Result<ExitCode> {
    let changed = open(config, async |accounts| {
        Ok(accounts.set_disabled(&args.name, disabled).await?)
    })?;
    done(
        changed,
        &args.name,
        if disabled {
            "disabled (its sessions ended)"
        } else {
            "enabled"
        },
    )
}

fn done(changed: bool, name: &str, what: &str) -> anyhow::Result<ExitCode> {
    if !changed {
        anyhow::bail!("there is no account named {name:?} (kefu agents list)");
    }
    out!("{name}: {what}");
    Ok(ExitCode::SUCCESS)
}
