//! `smsledger`: the service and its operator commands.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use smsledger::commands;
use smsledger::config::Settings;

#[derive(Parser)]
#[command(name = "smsledger", version, about = "Event-sourced ledger for an SMS-verification service")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP service and the projectors (migrates the database first).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Inspect or rebuild the read models.
    Projections {
        #[command(subcommand)]
        command: ProjectionsCommand,
    },
    /// Replay the whole log: hash chain, aggregates, projections. Exits 1 on any mismatch.
    Verify,
    /// Ledger queries.
    Ledger {
        #[command(subcommand)]
        command: LedgerCommand,
    },
    /// Stream the ledger's postings (one row per leg) between two bounds, with totals per
    /// account at the end, to stdout.
    Export {
        /// A log position, an RFC 3339 instant or a date (inclusive); the start when omitted.
        #[arg(long)]
        from: Option<String>,
        /// A log position (inclusive), an RFC 3339 instant or a date (exclusive); the head when omitted.
        #[arg(long)]
        to: Option<String>,
        /// csv or jsonl.
        #[arg(long, default_value = "csv")]
        format: String,
        /// What to export: postings, orders or deposits (orders and deposits take dates or instants).
        #[arg(long, default_value = "postings")]
        kind: String,
    },
    /// Admin accounts.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Make the account with this email an admin, creating it if needed. A new account's
    /// password is read from stdin with --password-stdin, or generated and printed once.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Subcommand)]
enum ProjectionsCommand {
    /// Rebuild one projection (or all) from position 0, aside, then swap it in.
    Rebuild {
        /// balances, statement, trial_balance, orders or deposits; all when omitted.
        name: Option<String>,
    },
    /// Each projection's position and lag behind the log.
    Status,
}

#[derive(Subcommand)]
enum LedgerCommand {
    /// Balance of one account, now or at a past position or instant.
    Balance {
        /// e.g. `user:<uuid>:available`, `revenue:margin`, `clearing:stripe`.
        #[arg(long)]
        account: String,
        /// A log position (e.g. 1200) or an RFC 3339 instant (e.g. 2026-11-01T00:00:00Z).
        #[arg(long)]
        at: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("configuration error: {error:#}");
            return ExitCode::from(2);
        }
    };
    commands::init_tracing(&settings.log_level);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve => commands::serve(settings).await.map(|()| true),
            Command::Migrate => commands::migrate(&settings).await.map(|()| true),
            Command::Projections { command: ProjectionsCommand::Rebuild { name } } => {
                commands::rebuild(&settings, name.as_deref()).await.map(|()| true)
            }
            Command::Projections { command: ProjectionsCommand::Status } => {
                commands::status(&settings).await.map(|()| true)
            }
            Command::Verify => commands::verify(&settings).await,
            Command::Ledger { command: LedgerCommand::Balance { account, at } } => {
                commands::balance(&settings, &account, at.as_deref()).await.map(|()| true)
            }
            Command::Export { from, to, format, kind } => {
                commands::export(&settings, from.as_deref(), to.as_deref(), &format, &kind).await.map(|()| true)
            }
            Command::Admin { command: AdminCommand::Create { email, password_stdin } } => {
                commands::create_admin(&settings, &email, password_stdin).await.map(|()| true)
            }
        }
    });
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}
