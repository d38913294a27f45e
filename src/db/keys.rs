//! API keys: the secret (`mg_` + 32 random bytes, base64url) is shown once at creation;
//! only its sha256 is stored, so a leaked database leaks no usable key.

use base64::Engine as _;
use memeguard_package::package::sha256_hex;
use rand::RngCore as _;
use serde::Serialize;

use super::{Db, DbError, DbTime};
use crate::auth::Role;
use crate::with_pool;

/// Every key starts with this, so a key is recognisable in logs and secret scanners.
pub const KEY_PREFIX: &str = "mg_";

/// A stored key, without its secret.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ApiKey {
    pub id: i64,
    pub name: String,
    pub role: String,
    pub prefix: String,
    pub created_at: DbTime,
    pub revoked_at: Option<DbTime>,
}

/// A freshly created key and its secret (shown once, never stored).
#[derive(Debug, Clone)]
pub struct CreatedKey {
    pub key: ApiKey,
    pub secret: String,
}

/// The sha256 (hex) under which a secret is stored.
pub fn hash_secret(secret: &str) -> String {
    sha256_hex(secret.as_bytes())
}

fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{KEY_PREFIX}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// Creates a key with `role`; the returned secret is the only copy.
pub async fn create(db: &Db, name: &str, role: Role) -> Result<CreatedKey, DbError> {
    let secret = new_secret();
    let prefix: String = secret.chars().take(KEY_PREFIX.len() + 6).collect();
    let key = with_pool!(db, pool => {
        sqlx::query_as::<_, ApiKey>(
            "INSERT INTO api_keys (name, role, key_hash, prefix, created_at) VALUES ($1, $2, $3, $4, $5)
             RETURNING id, name, role, prefix, created_at, revoked_at",
        )
        .bind(name)
        .bind(role.as_str())
        .bind(hash_secret(&secret))
        .bind(&prefix)
        .bind(DbTime::now())
        .fetch_one(pool)
        .await?
    });
    Ok(CreatedKey { key, secret })
}

/// The active (not revoked) key with this secret, if any.
pub async fn find_active(db: &Db, secret: &str) -> Result<Option<ApiKey>, DbError> {
    Ok(with_pool!(db, pool => {
        sqlx::query_as::<_, ApiKey>(
            "SELECT id, name, role, prefix, created_at, revoked_at FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL",
        )
        .bind(hash_secret(secret))
        .fetch_optional(pool)
        .await?
    }))
}

/// All keys, oldest first.
pub async fn list(db: &Db) -> Result<Vec<ApiKey>, DbError> {
    Ok(with_pool!(db, pool => {
        sqlx::query_as::<_, ApiKey>("SELECT id, name, role, prefix, created_at, revoked_at FROM api_keys ORDER BY id")
            .fetch_all(pool)
            .await?
    }))
}

/// Revokes a key; returns false if no active key has this id.
pub async fn revoke(db: &Db, id: i64) -> Result<bool, DbError> {
    let result = with_pool!(db, pool => {
        sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(DbTime::now())
            .bind(id)
            .execute(pool)
            .await?
            .rows_affected()
    });
    Ok(result == 1)
}
