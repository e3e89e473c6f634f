//! The collect Lambda function: everything lives in `testexec::hosts::lambda`
//! (see docs/lambda.md for the events it takes). The function is named by
//! type, so this binary links only the collect handler and its event sources.

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    testexec::hosts::lambda::run::<testexec::hosts::lambda::Collect>().await
}
