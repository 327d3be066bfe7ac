//! The measuring half of `scripts/bench` (which builds it, runs it and writes
//! docs/benchmarks.md from its JSON): Lambda cold starts and warm invocations
//! under a local Runtime API emulator, the bare-SDK floor, and projection
//! throughput and lag of `items serve --dynamodb`. Everything runs on
//! loopback against a DynamoDB Local it starts itself.
//!
//! ```sh
//! cargo run --release -p items-bench --bin bench_harness -- lambda --help
//! cargo run --release -p items-bench --bin bench_harness -- projection --help
//! cargo run --release -p items-bench --bin bench_harness -- shard --help
//! cargo run --release -p items-bench --bin bench_harness -- feed --help
//! cargo run --release -p items-bench --bin bench_harness -- scale --help
//! cargo run --release -p items-bench --bin bench_harness -- creator --help
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use clap::{Parser, Subcommand};

mod creator;
mod emulator;
mod feed;
mod lambda;
mod projection;
mod scale;
mod seed;
mod shard;

#[derive(Debug, Parser)]
#[command(about = "Items API benchmark harness (run by scripts/bench)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Cold starts, warm invocations and peak RSS: Rust Lambdas vs the classic handler vs the SDK floor.
    Lambda(lambda::LambdaArgs),
    /// Projector throughput (backlog drain) and POST-to-visible lag of `items serve --dynamodb`.
    Projection(projection::ProjectionArgs),
    /// Projector events/s on one stream shard at several batch sizes (DynamoDB Local, in process).
    Shard(shard::ShardArgs),
    /// Projector events/s draining the embedded store's change feed (SQLite, in process).
    Feed(feed::FeedArgs),
    /// `items replay`, `--verify`, `export` and `import` at 100k and 1M events: time and peak RSS.
    Scale(scale::ScaleArgs),
    /// A page of one creator's items from the by-creator index vs the full listing, as the table grows.
    Creator(creator::CreatorArgs),
}

/// Raw samples by name; the report computes the statistics.
#[derive(Default)]
pub struct Series(BTreeMap<String, Vec<f64>>);

impl Series {
    pub fn push(&mut self, name: &str, value: f64) {
        self.0.entry(name.to_owned()).or_default().push(value);
    }

    pub fn write(&self, path: &Path, meta: serde_json::Value) -> anyhow::Result<()> {
        let out = serde_json::json!({ "meta": meta, "series": self.0 });
        std::fs::write(path, serde_json::to_vec_pretty(&out)?)?;
        eprintln!("wrote {}", path.display());
        Ok(())
    }
}

pub fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Lambda(args) => lambda::run(args),
        Command::Projection(args) => projection::run(args),
        Command::Shard(args) => shard::run(args),
        Command::Feed(args) => feed::run(args),
        Command::Scale(args) => scale::run(args),
        Command::Creator(args) => creator::run(args),
    }
}
