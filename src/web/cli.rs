//! `memeguard users ...`: moderators' accounts from the command line. The password is
//! read from standard input (one line), so it never appears in the process list or the
//! shell history: `memeguard users create --role moderator --username alice < pw.txt`,
//! or type it when asked.

use std::io::{BufRead as _, IsTerminal as _, Write as _};

use clap::Subcommand;

use super::accounts::{self, AccountError};
use crate::auth::Role;
use crate::config::DatabaseArgs;
use crate::db::Db;

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Create an account for the moderators' pages; the password is read from stdin.
    Create {
        /// moderator (check memes, review decisions) or admin (the same, plus admin actions).
        #[arg(long)]
        role: Role,
        /// The name to sign in with.
        #[arg(long)]
        username: String,
        #[command(flatten)]
        db: DatabaseArgs,
    },
    /// List accounts (without password hashes).
    List(DatabaseArgs),
    /// Disable an account and end its sessions.
    Disable {
        #[arg(long)]
        username: String,
        #[command(flatten)]
        db: DatabaseArgs,
    },
}

impl UsersCommand {
    pub fn database_url(&self) -> &str {
        match self {
            UsersCommand::Create { db, .. } | UsersCommand::Disable { db, .. } => &db.database_url,
            UsersCommand::List(db) => &db.database_url,
        }
    }
}

/// Errors of `memeguard users`.
#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    #[error(transparent)]
    Account(#[from] AccountError),
    #[error("reading the password from standard input: {0}")]
    Stdin(#[from] std::io::Error),
    #[error("no password on standard input")]
    NoPassword,
    #[error("no active account named `{0}`")]
    NoAccount(String),
}

fn read_password() -> Result<String, UsersError> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("password (at least {} characters; shown as typed): ", accounts::MIN_PASSWORD_CHARS);
        std::io::stderr().flush()?;
    }
    let mut line = String::new();
    stdin.lock().read_line(&mut line)?;
    let password = line.trim_end_matches(['\r', '\n']).to_string();
    if password.is_empty() { Err(UsersError::NoPassword) } else { Ok(password) }
}

/// Runs a `users` subcommand on an opened, migrated database.
pub async fn run(db: &Db, command: UsersCommand) -> Result<(), UsersError> {
    match command {
        UsersCommand::Create { role, username, .. } => {
            let password = read_password()?;
            let account = accounts::create(db, &username, role, &password).await?;
            println!("created account {} `{}` with role {}", account.id, account.username, account.role);
        }
        UsersCommand::List(_) => {
            for a in accounts::list(db).await.map_err(AccountError::from)? {
                let state = a.disabled_at.map(|t| format!("disabled {t}")).unwrap_or_else(|| "active".into());
                println!("{}\t{}\t{}\tcreated {}\t{state}", a.id, a.username, a.role, a.created_at);
            }
        }
        UsersCommand::Disable { username, .. } => {
            if !accounts::disable(db, &username).await.map_err(AccountError::from)? {
                return Err(UsersError::NoAccount(username));
            }
            println!("account `{username}` disabled");
        }
    }
    Ok(())
}
