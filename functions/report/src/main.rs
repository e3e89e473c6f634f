//! The report Lambda function: everything lives in `testexec::lambda`
//! (see docs/lambda.md for the events it takes).

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    testexec::lambda::run(testexec::lambda::Function::Report).await
}
