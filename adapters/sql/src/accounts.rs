//! [`SqlAccounts`]: the people who answer customers — accounts with Argon2id password hashes
//! and roles, and the console's log-in sessions, of which only a SHA-256 of the token is
//! stored (a copy of the database opens no session).

use crate::db::{millis, on_pool, on_writer, Database};
use crate::orders::{argon2, dummy_check, rand_salt};
use sha2::{Digest, Sha256};
use sqlx::Row;

/// The shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 10;
/// The longest account name.
pub const MAX_NAME_CHARS: usize = 64;

/// What an account may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Answers customers: the queue, conversations, tickets.
    Agent,
    /// An agent who also sees the dashboard and manages the team.
    Admin,
}

impl Role {
    /// Its name in the database and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Admin => "admin",
        }
    }

    /// The role named `name`.
    pub fn parse(name: &str) -> Option<Role> {
        match name {
            "agent" => Some(Role::Agent),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// Whether an agent takes conversations now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Status {
    /// Takes conversations (and is given them, with automatic assignment).
    Available,
    /// Not taking conversations.
    #[default]
    Away,
}

impl Status {
    /// Its name in the database and the console.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Available => "available",
            Status::Away => "away",
        }
    }

    /// The status named `name`.
    pub fn parse(name: &str) -> Option<Status> {
        match name {
            "available" => Some(Status::Available),
            "away" => Some(Status::Away),
            _ => None,
        }
    }
}

/// The capacity of a new account: open conversations an agent holds at once.
pub const DEFAULT_CAPACITY: u32 = 3;

/// An account (never its password).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// What they log in with and appear as to colleagues.
    pub name: String,
    /// What they may do.
    pub role: Role,
    /// Disabled accounts cannot log in and their sessions are ended.
    pub disabled: bool,
    /// When the account was made (ms since the epoch).
    pub created_at: u64,
    /// Whether they take conversations now.
    pub status: Status,
    /// How many open conversations they hold at most.
    pub capacity: u32,
    /// The skill groups they answer; empty: every group.
    pub groups: Vec<String>,
    /// When a console of theirs last showed a sign of life (ms since the epoch).
    pub seen_at: Option<u64>,
}

impl Account {
    /// Whether they answer `skill_group`.
    pub fn answers(&self, skill_group: &str) -> bool {
        self.groups.is_empty() || self.groups.iter().any(|g| g == skill_group)
    }
}

/// Why an account could not be made or changed.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// The name is empty, too long, or has characters other than letters, digits, `.`, `-`, `_`.
    #[error(
        "the name {0:?} is not usable: use 1 to {MAX_NAME_CHARS} letters, digits, '.', '-' or '_'"
    )]
    BadName(String),
    /// The password is too short.
    #[error("the password is too short: use at least {MIN_PASSWORD_CHARS} characters")]
    WeakPassword,
    /// An account of that name exists.
    #[error("there is already an account named {0:?}")]
    Exists(String),
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

/// Accounts and sessions in the database.
#[derive(Clone)]
pub struct SqlAccounts {
    db: Database,
}

fn split_groups(groups: &str) -> Vec<String> {
    groups
        .split(',')
        .map(str::trim)
        .filter(|g| !g.is_empty())
        .map(str::to_string)
        .collect()
}

fn check_name(name: &str) -> Result<(), AccountError> {
    let ok = !name.is_empty()
        && name.chars().count() <= MAX_NAME_CHARS
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if ok {
        Ok(())
    } else {
        Err(AccountError::BadName(name.to_string()))
    }
}

fn hash_password(password: &str) -> Result<String, AccountError> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(AccountError::WeakPassword);
    }
    let salt = SaltString::encode_b64(&rand_salt()).expect("16 bytes make a valid salt");
    Ok(argon2()
        .hash_password(password.as_bytes(), &salt)
        .expect("Argon2 hashes any input with valid parameters")
        .to_string())
}

fn password_matches(password: &str, stored: Option<&str>) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    match stored.map(PasswordHash::new) {
        Some(Ok(parsed)) => argon2()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        _ => {
            // An unknown account costs as much as a wrong password: names are not revealed by
            // timing.
            dummy_check(password.as_bytes());
            false
        }
    }
}

/// The stored form of a session token.
fn token_hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn new_token() -> String {
    let mut bytes = [0u8; 32];
    bytes[..16].copy_from_slice(&rand_salt());
    bytes[16..].copy_from_slice(&rand_salt());
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The columns [`account_from`] reads, of `agent_accounts` as `a`.
const ACCOUNT_COLUMNS: &str = "a.name, a.role, CASE WHEN a.disabled THEN 1 ELSE 0 END AS off, \
     a.created_at, a.password_hash, a.status, CAST(a.capacity AS BIGINT), a.groups, a.seen_at";

/// An account and its password hash from a row of [`ACCOUNT_COLUMNS`].
fn account_from<R: Row>(row: &R) -> Result<(Account, String), sqlx::Error>
where
    usize: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i32: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let role: String = row.try_get(1)?;
    let off: i32 = row.try_get(2)?;
    let at: i64 = row.try_get(3)?;
    let status: String = row.try_get(5)?;
    let capacity: i64 = row.try_get(6)?;
    let groups: String = row.try_get(7)?;
    let seen_at: Option<i64> = row.try_get(8)?;
    Ok((
        Account {
            name: row.try_get(0)?,
            // An unknown role (written by hand) is the least powerful one.
            role: Role::parse(&role).unwrap_or(Role::Agent),
            disabled: off != 0,
            created_at: at.max(0) as u64,
            status: Status::parse(&status).unwrap_or_default(),
            capacity: u32::try_from(capacity.max(0)).unwrap_or(u32::MAX),
            groups: split_groups(&groups),
            seen_at: seen_at.map(|t| t.max(0) as u64),
        },
        row.try_get(4)?,
    ))
}

impl SqlAccounts {
    pub(crate) fn new(db: Database) -> Self {
        SqlAccounts { db }
    }

    /// Makes an account.
    pub async fn add(
        &self,
        name: &str,
        role: Role,
        password: &str,
        now: u64,
    ) -> Result<Account, AccountError> {
        check_name(name)?;
        let hash = hash_password(password)?;
        let inserted = on_writer!(self.db, |pool| {
            sqlx::query(
                "INSERT INTO agent_accounts (name, role, password_hash, created_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING",
            )
            .bind(name)
            .bind(role.as_str())
            .bind(&hash)
            .bind(millis(now))
            .execute(pool)
            .await?
            .rows_affected()
        });
        if inserted == 0 {
            return Err(AccountError::Exists(name.to_string()));
        }
        Ok(Account {
            name: name.to_string(),
            role,
            disabled: false,
            created_at: now,
            status: Status::Away,
            capacity: DEFAULT_CAPACITY,
            groups: Vec::new(),
            seen_at: None,
        })
    }

    /// Sets whether `name` takes conversations now. False when there is no such account.
    pub async fn set_status(&self, name: &str, status: Status) -> Result<bool, AccountError> {
        self.set_column(name, "status", status.as_str().to_string())
            .await
    }

    /// Sets the skill groups `name` answers (none: every group). False when there is no such
    /// account.
    pub async fn set_groups(&self, name: &str, groups: &[String]) -> Result<bool, AccountError> {
        let joined = groups
            .iter()
            .map(|g| g.trim())
            .filter(|g| !g.is_empty())
            .collect::<Vec<_>>()
            .join(",");
        self.set_column(name, "groups", joined).await
    }

    async fn set_column(
        &self,
        name: &str,
        column: &'static str,
        value: String,
    ) -> Result<bool, AccountError> {
        let changed = on_writer!(self.db, |pool| {
            sqlx::query(&format!(
                "UPDATE agent_accounts SET {column} = $1 WHERE name = $2"
            ))
            .bind(&value)
            .bind(name)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(changed > 0)
    }

    /// Sets how many open conversations `name` holds at most (at least 1). False when there
    /// is no such account.
    pub async fn set_capacity(&self, name: &str, capacity: u32) -> Result<bool, AccountError> {
        let changed = on_writer!(self.db, |pool| {
            sqlx::query("UPDATE agent_accounts SET capacity = $1 WHERE name = $2")
                .bind(i64::from(capacity.max(1)))
                .bind(name)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(changed > 0)
    }

    /// Records a sign of life from `name`'s console at `now`.
    pub async fn seen(&self, name: &str, now: u64) -> Result<(), AccountError> {
        on_writer!(self.db, |pool| {
            sqlx::query("UPDATE agent_accounts SET seen_at = $1 WHERE name = $2")
                .bind(millis(now))
                .bind(name)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Every account, by name.
    pub async fn list(&self) -> Result<Vec<Account>, AccountError> {
        let rows = on_pool!(self.db, |pool| {
            sqlx::query(&format!(
                "SELECT {ACCOUNT_COLUMNS} FROM agent_accounts a ORDER BY a.name"
            ))
            .fetch_all(pool)
            .await?
            .iter()
            .map(account_from)
            .collect::<Result<Vec<_>, _>>()?
        });
        Ok(rows.into_iter().map(|(account, _)| account).collect())
    }

    /// The account `name`, if there is one.
    pub async fn get(&self, name: &str) -> Result<Option<Account>, AccountError> {
        Ok(self.with_hash(name).await?.map(|(account, _)| account))
    }

    /// The account `name` and its password hash.
    async fn with_hash(&self, name: &str) -> Result<Option<(Account, String)>, AccountError> {
        let found = on_pool!(self.db, |pool| {
            sqlx::query(&format!(
                "SELECT {ACCOUNT_COLUMNS} FROM agent_accounts a WHERE a.name = $1"
            ))
            .bind(name)
            .fetch_optional(pool)
            .await?
            .as_ref()
            .map(account_from)
            .transpose()?
        });
        Ok(found)
    }

    /// Sets a new password. False when there is no such account.
    pub async fn set_password(&self, name: &str, password: &str) -> Result<bool, AccountError> {
        let hash = hash_password(password)?;
        let changed = on_writer!(self.db, |pool| {
            sqlx::query("UPDATE agent_accounts SET password_hash = $1 WHERE name = $2")
                .bind(&hash)
                .bind(name)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(changed > 0)
    }

    /// Disables or enables an account; disabling ends its sessions. False when there is no
    /// such account.
    pub async fn set_disabled(&self, name: &str, disabled: bool) -> Result<bool, AccountError> {
        let changed = on_writer!(self.db, |pool| {
            let mut tx = pool.begin().await?;
            let changed = sqlx::query("UPDATE agent_accounts SET disabled = $1 WHERE name = $2")
                .bind(disabled)
                .bind(name)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if disabled {
                sqlx::query("DELETE FROM agent_sessions WHERE agent = $1")
                    .bind(name)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            changed
        });
        Ok(changed > 0)
    }

    /// Checks a log-in: with the right password for an enabled account, a new session of
    /// `ttl_ms` — its token (for the cookie; only its hash is stored) and the account.
    /// `None` otherwise, after as long as a wrong password takes.
    pub async fn log_in(
        &self,
        name: &str,
        password: &str,
        now: u64,
        ttl_ms: u64,
    ) -> Result<Option<(String, Account)>, AccountError> {
        let stored = self
            .with_hash(name)
            .await?
            .filter(|(account, _)| !account.disabled);
        let password = password.to_string();
        let hash = stored.as_ref().map(|(_, h)| h.clone());
        // Argon2 takes tens of milliseconds of CPU: off the async threads.
        let matches =
            tokio::task::spawn_blocking(move || password_matches(&password, hash.as_deref()))
                .await
                .unwrap_or(false);
        let Some((account, _)) = stored.filter(|_| matches) else {
            return Ok(None);
        };
        let token = new_token();
        on_writer!(self.db, |pool| {
            sqlx::query(
                "INSERT INTO agent_sessions (token_hash, agent, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(token_hash(&token))
            .bind(name)
            .bind(millis(now))
            .bind(millis(now.saturating_add(ttl_ms)))
            .execute(pool)
            .await?;
        });
        Ok(Some((token, account)))
    }

    /// The account of a session token, if the session is live and the account enabled.
    pub async fn session(&self, token: &str, now: u64) -> Result<Option<Account>, AccountError> {
        if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        let found = on_pool!(self.db, |pool| {
            sqlx::query(&format!(
                "SELECT {ACCOUNT_COLUMNS} FROM agent_sessions s \
                 JOIN agent_accounts a ON a.name = s.agent \
                 WHERE s.token_hash = $1 AND s.expires_at > $2 AND NOT a.disabled"
            ))
            .bind(token_hash(token))
            .bind(millis(now))
            .fetch_optional(pool)
            .await?
            .as_ref()
            .map(account_from)
            .transpose()?
        });
        Ok(found.map(|(account, _)| account))
    }

    /// Ends a session (logging out). False when there was none.
    pub async fn log_out(&self, token: &str) -> Result<bool, AccountError> {
        let ended = on_writer!(self.db, |pool| {
            sqlx::query("DELETE FROM agent_sessions WHERE token_hash = $1")
                .bind(token_hash(token))
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(ended > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_passwords_are_checked() {
        assert!(check_name("alice").is_ok());
        assert!(check_name("小王").is_ok());
        assert!(check_name("a.b-c_d").is_ok());
        for bad in ["", "a b", "a/b", "<x>", &"x".repeat(MAX_NAME_CHARS + 1)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(matches!(
            hash_password("short"),
            Err(AccountError::WeakPassword)
        ));
        let hash = hash_password("correct horse battery").unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(password_matches("correct horse battery", Some(&hash)));
        assert!(!password_matches("correct horse battery!", Some(&hash)));
        assert!(!password_matches("anything", None));
        assert!(!password_matches("anything", Some("not a hash")));
    }

    #[test]
    fn session_tokens_are_stored_as_sha256() {
        // printf %s abc | sha256sum
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let (a, b) = (new_token(), new_token());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
    }
}
