//! The `quiver` command line: `serve`, `inspect`, `debug`. Each subcommand lives in its own
//! module; this file only parses arguments and dispatches.

mod config;
mod debug;
mod inspect;
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
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Inspect(cmd) => inspect::run(cmd),
        Command::Debug(cmd) => debug::run(cmd),
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
