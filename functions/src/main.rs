//! `items`: run the API locally, issue development tokens, replay the event log.

use clap::{Parser, Subcommand};
use items_functions::{serve, settings, token};

#[derive(Debug, Parser)]
#[command(name = "items", version, about = "Items API: local server and tools")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the API locally (embedded store by default; `--dynamodb` for DynamoDB).
    Serve(serve::ServeArgs),
    /// Print an access token from the development identity provider.
    Token(token::TokenArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            settings::init_cli_tracing();
            serve::run(args).await
        }
        Command::Token(args) => token::run(args),
    }
}
