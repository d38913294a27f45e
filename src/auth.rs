//! Who is calling and what they may do. API keys arrive as `Authorization: Bearer mg_...`
//! (what OpenAI clients send); roles are ordered, each including the ones below it:
//! scorer (score) < moderator (also read and review decisions) < admin (also reload, keys).
//!
//! Seam for the moderators' pages: a browser session can produce the same [`Caller`]
//! (with `id` = `web:<account>`); handlers only ever check `caller.require(role)`.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use serde::Serialize;

use crate::db::keys;
use crate::error::AppError;
use crate::state::AppState;

/// A caller's permissions, from least to most.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Scorer,
    Moderator,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Scorer => "scorer",
            Role::Moderator => "moderator",
            Role::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "scorer" => Ok(Role::Scorer),
            "moderator" => Ok(Role::Moderator),
            "admin" => Ok(Role::Admin),
            other => Err(format!("unknown role `{other}`: use scorer, moderator or admin")),
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    /// What the decision log records as the caller: `key:<id>` or `web:<account>`.
    pub id: String,
    /// The key's or account's name, for logs and reviews.
    pub name: String,
    pub role: Role,
}

impl Caller {
    /// Succeeds if the caller has at least `role`.
    pub fn require(&self, role: Role) -> Result<(), AppError> {
        if self.role >= role {
            Ok(())
        } else {
            Err(AppError::Forbidden(format!(
                "this needs the {role} role; the key `{}` has the {} role",
                self.name, self.role
            )))
        }
    }
}

/// Reads the bearer secret from the Authorization header.
fn bearer(parts: &Parts) -> Result<&str, AppError> {
    let header = parts
        .headers
        .get(AUTHORIZATION)
        .ok_or_else(|| AppError::Unauthorized("missing API key: send `Authorization: Bearer mg_...`".into()))?;
    let value = header.to_str().map_err(|_| AppError::Unauthorized("the Authorization header is not ASCII".into()))?;
    let secret = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .ok_or_else(|| AppError::Unauthorized("the Authorization header must be `Bearer mg_...`".into()))?
        .trim();
    if secret.is_empty() {
        return Err(AppError::Unauthorized("empty API key".into()));
    }
    Ok(secret)
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let secret = bearer(parts)?;
        let key = keys::find_active(&state.db, secret)
            .await?
            .ok_or_else(|| AppError::Unauthorized("unknown or revoked API key".into()))?;
        let role = key.role.parse::<Role>().map_err(|e| AppError::Internal(format!("api_keys row {}: {e}", key.id)))?;
        Ok(Caller { id: format!("key:{}", key.id), name: key.name, role })
    }
}
