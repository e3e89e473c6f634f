//! The trigger Lambda function: everything lives in `testexec::hosts::lambda`
//! (see docs/lambda.md for the events it takes).

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    testexec::hosts::lambda::run(testexec::hosts::lambda::Function::Trigger).await
}
