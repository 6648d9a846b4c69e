//! The `quiver` command line: `serve`, `inspect`, `debug`, and the model registry's `model`,
//! `alias`, `audit` (clients of a running server). Each subcommand lives in its own
//! module; this file only parses arguments and dispatches.

mod autotune_cli;
mod config;
mod debug;
mod inspect;
mod migrate_cli;
mod registry_cli;
mod serve;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "quiver",
    version,
    about = "Quiver: a Milvus-compatible vector database"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the Milvus gRPC API (and /healthz on the metrics address).
    Serve(serve::ServeArgs),
    /// Print a human-readable view of an on-disk file.
    #[command(subcommand)]
    Inspect(inspect::InspectCommand),
    /// Developer tools.
    #[command(subcommand)]
    Debug(debug::DebugCommand),
    /// Model registry: register, list, show (talks to a running server's /v1).
    #[command(subcommand)]
    Model(registry_cli::ModelCommand),
    /// Model aliases (set, history) and serving aliases (promote, rollback, history).
    #[command(subcommand)]
    Alias(registry_cli::AliasCommand),
    /// The registry's hash-chained audit log: verify, export.
    #[command(subcommand)]
    Audit(registry_cli::AuditCommand),
    /// Re-embedding migrations: start, status (with a progress bar), pause, resume, abort.
    #[command(subcommand)]
    Migrate(migrate_cli::MigrateCommand),
    /// Sweep a field's index search parameter against exact search; print the frontier.
    Autotune(autotune_cli::AutotuneArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Inspect(cmd) => inspect::run(cmd),
        Command::Debug(cmd) => debug::run(cmd),
        Command::Model(cmd) => registry_cli::model(cmd),
        Command::Alias(cmd) => registry_cli::alias(cmd),
        Command::Audit(cmd) => registry_cli::audit(cmd),
        Command::Migrate(cmd) => migrate_cli::run(cmd),
        Command::Autotune(args) => autotune_cli::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The error chain, without causes that an outer message already quotes.
            let mut msg = e.to_string();
            for cause in e.chain().skip(1) {
                let c = cause.to_string();
                if !msg.contains(&c) {
                    msg.push_str(": ");
                    msg.push_str(&c);
                }
            }
            eprintln!("error: {msg}");
            std::process::ExitCode::FAILURE
        }
    }
}
