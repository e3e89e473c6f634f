//! The cold-start peer: the smallest useful Rust function on `lambda_runtime`
//! (echo a JSON greeting), shaped like the hello-world functions that public
//! cold-start comparisons measure. No AWS SDK, no tracing subscriber: its init
//! is the floor that `scripts/bench/lambda.sh` compares `functions/*` against.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

async fn hello(_event: LambdaEvent<Value>) -> Result<Value, Error> {
    Ok(json!({ "message": "hello world" }))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(hello)).await
}
