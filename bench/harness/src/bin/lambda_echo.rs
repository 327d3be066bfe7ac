//! The Runtime API floor for the benchmarks: a `lambda_runtime` function that
//! parses the event and answers at once, with no AWS call and no handler work.
//! `post-item` minus this minus the bare SDK call is what the handler itself
//! costs. Run by `scripts/bench` under its Runtime API emulator.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|_event: LambdaEvent<Value>| async {
        Ok::<_, Error>(json!({"statusCode": 200, "body": "{}"}))
    }))
    .await
}
