//! Moderators' accounts: a username, a role (moderator or admin, as API keys have) and an
//! argon2id password hash. Created with `memeguard users create`; checked at sign-in.

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use serde::Serialize;

use crate::auth::Role;
use crate::db::{Db, DbError, DbTime};
use crate::with_pool;

/// Shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 10;
/// Longest password accepted (argon2 takes any length; this bounds the work per sign-in).
pub const MAX_PASSWORD_CHARS: usize = 256;

/// A stored account, without its password hash.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Account {
    pub id: i64,
    pub username: String,
    pub role: String,
    pub created_at: DbTime,
    pub disabled_at: Option<DbTime>,
}

impl Account {
    /// The account's role; the schema allows only moderator and admin.
    pub fn role(&self) -> Result<Role, AccountError> {
        self.role.parse().map_err(|e: String| AccountError::Corrupt(format!("account {}: {e}", self.id)))
    }
}

/// Why an account operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error(
        "username `{0}` is not allowed: use 1 to 64 letters, digits, `.`, `_`, `-` or `@`, starting with a letter or digit"
    )]
    BadUsername(String),
    #[error("the password must have {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters")]
    BadPassword,
    #[error("accounts are for moderators and admins; scorers use API keys (`memeguard keys create`)")]
    ScorerAccount,
    #[error("an account named `{0}` exists already")]
    Exists(String),
    #[error(transparent)]
    Database(#[from] DbError),
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("the accounts table holds a bad row: {0}")]
    Corrupt(String),
}

fn valid_username(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.len() <= 64
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
}

/// Argon2id with the crate's defaults (19 MiB, 2 passes: OWASP's minimum), salted.
pub fn hash_password(password: &str) -> Result<String, AccountError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AccountError::Hash(e.to_string()))
}

/// Whether `password` matches a stored PHC hash (parameters are read from the hash, so
/// hashes made with older settings keep working).
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
}

/// Creates an account. Hashing is CPU work: runs on the blocking pool.
pub async fn create(db: &Db, username: &str, role: Role, password: &str) -> Result<Account, AccountError> {
    if !valid_username(username) {
        return Err(AccountError::BadUsername(username.to_string()));
    }
    if role == Role::Scorer {
        return Err(AccountError::ScorerAccount);
    }
    if !(MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&password.chars().count()) {
        return Err(AccountError::BadPassword);
    }
    if find(db, username).await?.is_some() {
        return Err(AccountError::Exists(username.to_string()));
    }
    let password = password.to_string();
    let hash = tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| AccountError::Hash(e.to_string()))??;
    let result = with_pool!(db, pool => {
        sqlx::query_as::<_, Account>(
            "INSERT INTO accounts (username, role, password_hash, created_at) VALUES ($1, $2, $3, $4)
             RETURNING id, username, role, created_at, disabled_at",
        )
        .bind(username)
        .bind(role.as_str())
        .bind(&hash)
        .bind(DbTime::now())
        .fetch_one(pool)
        .await
    });
    result.map_err(|e| match e {
        // Two creations racing: the UNIQUE constraint decides.
        sqlx::Error::Database(d) if d.is_unique_violation() => AccountError::Exists(username.to_string()),
        other => AccountError::Database(other.into()),
    })
}

/// The account with this username, if any.
pub async fn find(db: &Db, username: &str) -> Result<Option<Account>, DbError> {
    Ok(with_pool!(db, pool => {
        sqlx::query_as::<_, Account>(
            "SELECT id, username, role, created_at, disabled_at FROM accounts WHERE username = $1",
        )
        .bind(username)
        .fetch_optional(pool)
        .await?
    }))
}

/// The active account whose password this is, or `None` (unknown user, wrong password
/// and disabled account look the same to the caller). Takes as long whether or not the
/// user exists, so timing does not reveal usernames.
pub async fn authenticate(db: &Db, username: &str, password: &str) -> Result<Option<Account>, AccountError> {
    /// A hash of a random password, so unknown users cost one verification too.
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let row = with_pool!(db, pool => {
        sqlx::query_as::<_, (i64, String)>(
            "SELECT id, password_hash FROM accounts WHERE username = $1 AND disabled_at IS NULL",
        )
        .bind(username)
        .fetch_optional(pool)
        .await
        .map_err(DbError::from)?
    });
    if password.chars().count() > MAX_PASSWORD_CHARS {
        return Ok(None);
    }
    let password = password.to_string();
    let (id, hash) = match row {
        Some((id, hash)) => (Some(id), hash),
        None => (None, String::new()),
    };
    let matches = tokio::task::spawn_blocking(move || {
        let hash = if id.is_some() {
            hash
        } else {
            DUMMY.get_or_init(|| hash_password("not a password of anyone").unwrap_or_default()).clone()
        };
        verify_password(&password, &hash)
    })
    .await
    .map_err(|e| AccountError::Hash(e.to_string()))?;
    match (id, matches) {
        (Some(_), true) => Ok(find(db, username).await?),
        _ => Ok(None),
    }
}

/// All accounts, oldest first.
pub async fn list(db: &Db) -> Result<Vec<Account>, DbError> {
    Ok(with_pool!(db, pool => {
        sqlx::query_as::<_, Account>("SELECT id, username, role, created_at, disabled_at FROM accounts ORDER BY id")
            .fetch_all(pool)
            .await?
    }))
}

/// Disables an account and ends its sessions; returns false if no active account has
/// this name.
pub async fn disable(db: &Db, username: &str) -> Result<bool, DbError> {
    let changed = with_pool!(db, pool => {
        let mut tx = pool.begin().await?;
        let changed = sqlx::query("UPDATE accounts SET disabled_at = $1 WHERE username = $2 AND disabled_at IS NULL")
            .bind(DbTime::now())
            .bind(username)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query("DELETE FROM web_sessions WHERE account_id IN (SELECT id FROM accounts WHERE username = $1)")
            .bind(username)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        changed
    });
    Ok(changed == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_hashes_verify_and_differ() {
        let a = hash_password("correct horse battery").unwrap();
        let b = hash_password("correct horse battery").unwrap();
        assert!(a.starts_with("$argon2id$"), "{a}");
        assert_ne!(a, b, "each hash has its own salt");
        assert!(verify_password("correct horse battery", &a));
        assert!(!verify_password("correct horse battery!", &a));
        assert!(!verify_password("anything", "not a hash"));
    }

    #[test]
    fn usernames_are_plain() {
        assert!(valid_username("alice") && valid_username("a.b-c_d@example"));
        for bad in ["", "-x", "a b", "<script>", &"x".repeat(65)] {
            assert!(!valid_username(bad), "{bad}");
        }
    }
}
