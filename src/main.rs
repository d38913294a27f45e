//! `memeguard`: parses the command line, then serves, manages keys, or migrates.
#![forbid(unsafe_code)]

use anyhow::Context as _;
use clap::Parser as _;
use memeguard::config::{Cli, Command, KeysCommand, ServeConfig};
use memeguard::db::{Db, keys};
use memeguard::state::AppState;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        None => serve(cli.serve).await,
        Some(Command::Serve(config)) => serve(*config).await,
        Some(Command::Migrate(db)) => {
            init_logs("text");
            open(&db.database_url).await?;
            println!("migrations applied to {}", db.database_url);
            Ok(())
        }
        Some(Command::Keys { command }) => manage_keys(command).await,
        Some(Command::Users { command }) => {
            init_logs("text");
            let db = open(command.database_url()).await?;
            Ok(memeguard::web::cli::run(&db, command).await?)
        }
    }
}

fn init_logs(format: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,ort=warn"));
    // Colour codes only for a person at a terminal, never into a log file or a collector.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    if format == "json" { builder.json().init() } else { builder.init() }
}

async fn open(url: &str) -> anyhow::Result<Db> {
    let db = Db::connect(url).await.with_context(|| format!("opening the database {url}"))?;
    db.migrate().await.with_context(|| format!("migrating {url}"))?;
    Ok(db)
}

async fn serve(config: ServeConfig) -> anyhow::Result<()> {
    init_logs(&config.log_format);
    let bind = config.bind;
    let state = AppState::start(config).await?;
    let listener = tokio::net::TcpListener::bind(bind).await.with_context(|| format!("listening on {bind}"))?;
    tracing::info!(address = %listener.local_addr()?, "memeguard is listening");
    memeguard::serve::run(state, listener).await.context("serving")
}

async fn manage_keys(command: KeysCommand) -> anyhow::Result<()> {
    init_logs("text");
    match command {
        KeysCommand::Create { role, name, db } => {
            let db = open(&db.database_url).await?;
            let created = keys::create(&db, &name, role).await?;
            eprintln!(
                "created key {} `{}` with role {role}; the secret is shown once:",
                created.key.id, created.key.name
            );
            println!("{}", created.secret);
        }
        KeysCommand::List(args) => {
            let db = open(&args.database_url).await?;
            for key in keys::list(&db).await? {
                let state = key.revoked_at.map(|t| format!("revoked {t}")).unwrap_or_else(|| "active".into());
                println!(
                    "{}\t{}\t{}\t{}…\tcreated {}\t{state}",
                    key.id, key.name, key.role, key.prefix, key.created_at
                );
            }
        }
        KeysCommand::Revoke { id, db } => {
            let db = open(&db.database_url).await?;
            if !keys::revoke(&db, id).await? {
                anyhow::bail!("no active key with id {id}");
            }
            println!("key {id} revoked");
        }
    }
    Ok(())
}
