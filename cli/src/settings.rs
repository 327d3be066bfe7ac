//! Settings of the `items` CLI.

use std::path::PathBuf;

/// Where local state lives (the development signing key, the cursor key):
/// `$ITEMS_DATA_DIR`, else `$XDG_DATA_HOME/items-api`, else `~/.local/share/items-api`.
pub fn default_data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("ITEMS_DATA_DIR") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_DATA_HOME").map(PathBuf::from).unwrap_or_else(|| {
        std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(".")).join(".local/share")
    });
    base.join("items-api")
}

/// The development identity provider's issuer. A fixed name, not an address:
/// the JWKS URL is a separate setting, as it is for a real user pool.
pub const DEV_ISSUER: &str = "https://dev-idp.items-api.localhost";

/// Log setup for the CLI: human-readable, or JSON with `ITEMS_LOG_FORMAT=json`;
/// level from `RUST_LOG` (default `info`).
///
/// Lines go to stderr through a writer thread that buffers while lines keep
/// coming and flushes as soon as they stop: one line per request must not cost
/// a write system call per request. Nothing is dropped (a full queue waits);
/// keep the guard until the end, it flushes what is left.
pub fn init_cli_tracing() -> tracing_appender::non_blocking::WorkerGuard {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        // At most this many lines wait for stderr (about 2 MiB): past it, the
        // request that logs waits, rather than memory growing.
        .buffered_lines_limit(8192)
        .finish(std::io::BufWriter::new(std::io::stderr()));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer);
    if std::env::var("ITEMS_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json")) {
        builder.json().init();
    } else {
        builder.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).init();
    }
    guard
}

/// Which event log: the embedded store in the data dir, or a DynamoDB table.
#[derive(Debug, clap::Args)]
pub struct LogArgs {
    /// The log on DynamoDB instead of the embedded store in the data dir.
    #[arg(long)]
    pub dynamodb: bool,
    /// DynamoDB endpoint, such as DynamoDB Local's (implies `--dynamodb`); defaults to
    /// `AWS_ENDPOINT_URL_DYNAMODB` / `AWS_ENDPOINT_URL`.
    #[arg(long)]
    pub dynamodb_endpoint: Option<String>,
    #[arg(long, env = "EVENTS_TABLE", default_value_t = items_aws::dynamodb::TableNames::default().events)]
    pub events_table: String,
    /// The embedded store's data dir (and where DynamoDB commands keep checkpoints and scratch files).
    #[arg(long, env = "ITEMS_DATA_DIR", default_value_os_t = default_data_dir())]
    pub data_dir: PathBuf,
}

impl LogArgs {
    pub fn on_dynamodb(&self) -> bool {
        self.dynamodb || self.dynamodb_endpoint.is_some()
    }
}
