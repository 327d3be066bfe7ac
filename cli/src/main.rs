//! `items`: run the API locally, issue development tokens, replay the event log.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use items_cli::{quarantine, replay, serve, settings, token, transfer, user};

#[derive(Debug, Parser)]
#[command(name = "items", version, about = "Items API: local server and tools")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the API locally (durable embedded store by default; `--in-memory`, `--dynamodb`).
    Serve(serve::ServeArgs),
    /// Print an access token from the development identity provider.
    Token(token::TokenArgs),
    /// Manage the development users who sign in on the local Hosted UI.
    User(user::UserArgs),
    /// Rebuild the read model from the event log (embedded store, or `--dynamodb`); `--verify` compares them.
    Replay(replay::ReplayArgs),
    /// List the records the embedded store's projection set aside as poison; `--redrive` re-projects their items.
    Quarantine(quarantine::QuarantineArgs),
    /// Write the event log as JSON Lines (embedded store, or `--dynamodb`), with a count and a SHA-256.
    Export(transfer::ExportArgs),
    /// Append an exported log to the embedded store or DynamoDB, keeping event ids and versions (idempotent).
    Import(transfer::ImportArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => {
            let _log_writer = settings::init_cli_tracing();
            serve::run(args).await
        }
        Command::Token(args) => token::run(args),
        Command::User(args) => user::run(args),
        Command::Replay(args) => return replay::run(args).await,
        Command::Export(args) => transfer::export(args).await,
        Command::Import(args) => transfer::import(args).await,
        Command::Quarantine(args) => match quarantine::run(args).await {
            Ok(code) => return code,
            Err(error) => Err(error),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serve(args: &[&str]) -> Result<serve::ServeArgs, clap::Error> {
        match Cli::try_parse_from([&["items", "serve"][..], args].concat())?.command {
            Command::Serve(args) => Ok(args),
            other => panic!("not serve: {other:?}"),
        }
    }

    /// One set of store flags for every command: an endpoint means DynamoDB
    /// for `serve` as for `replay`, `export` and `import`.
    #[test]
    fn an_endpoint_means_dynamodb_for_serve_too() {
        assert!(serve(&["--dynamodb-endpoint", "http://127.0.0.1:8000"]).unwrap().on_dynamodb());
        assert!(serve(&["--dynamodb"]).unwrap().on_dynamodb());
        assert!(!serve(&[]).unwrap().on_dynamodb());
        assert!(serve(&["--in-memory", "--dynamodb-endpoint", "http://127.0.0.1:8000"]).is_err());
        let export = Cli::try_parse_from(["items", "export", "--dynamodb-endpoint", "http://127.0.0.1:8000"]).unwrap();
        let Command::Export(export) = export.command else { panic!("export") };
        assert!(export.log.on_dynamodb());
    }
}
