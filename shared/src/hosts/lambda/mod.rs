//! The Lambda host of the four functions (feature `lambda`).
//!
//! - [`events`]: tells an invocation payload's source apart by shape.
//! - [`sqs`]: batches with partial failures.
//! - [`host`]: clients built once per process; the four functions as
//!   [`LambdaFunction`] types, each dispatching to its own handler.
//! - `trigger` (feature `lambda-http`): the trigger's HTTP requests,
//!   answered by the front door's Router (`hosts::http`), its schedules
//!   and direct invokes.
//! - [`emf`]: the metrics of `app::metrics` as CloudWatch embedded metric
//!   format lines in the log, flushed after each invocation.
//!
//! Each `functions/<name>/src/main.rs` is one call to [`run`] with its
//! function's type (`run::<Collect>()`), so each binary links only its own
//! function's code (see [`host`]). Events, their answers and failure
//! semantics are documented in docs/lambda.md.

pub mod emf;
pub mod events;
pub mod host;
pub mod sqs;
#[cfg(feature = "lambda-http")]
mod trigger;

#[cfg(feature = "github")]
pub use host::Report;
#[cfg(feature = "lambda-http")]
pub use host::Trigger;
pub use host::{Collect, Execute, Function, Host, LambdaFunction};

/// The whole `main` of a function: JSON logs (per Lambda's
/// `AWS_LAMBDA_LOG_FORMAT` / `AWS_LAMBDA_LOG_LEVEL`), the host built once,
/// then the runtime loop. `execute` started outside Lambda (no
/// `AWS_LAMBDA_RUNTIME_API`) polls the shards queue instead.
pub async fn run<F: LambdaFunction>() -> Result<(), lambda_runtime::Error> {
    let function = F::FUNCTION;
    lambda_runtime::tracing::init_default_subscriber();
    let outside_lambda = std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_none();
    if function == Function::Execute && outside_lambda {
        let args = crate::hosts::worker::Args::parse(std::env::args().skip(1))?;
        return Ok(crate::hosts::worker::run(args).await?);
    }
    let host = match Host::from_env::<F>().await {
        Ok(host) => host,
        Err(e) => {
            // Init errors end the process; Lambda shows this line in the
            // function's log and reports Runtime.ExitError.
            tracing::error!(function = function.name(), error = %e, "cannot start");
            return Err(e.into());
        }
    };
    let emf = emf::install(function);
    let host = &host;
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<serde_json::Value>| async move {
            let answer = host.invoke_as::<F>(event.payload, event.context).await;
            // One EMF document per invocation, before the runtime asks for
            // the next event (the sandbox may be frozen after that).
            emf::flush(emf);
            answer.map_err(|e| {
                tracing::error!(function = host.function.name(), error = %e, "invocation failed");
                lambda_runtime::Diagnostic::from(e)
            })
        },
    ))
    .await
}

impl From<crate::errors::InvocationError> for lambda_runtime::Diagnostic {
    fn from(e: crate::errors::InvocationError) -> Self {
        use crate::errors::InvocationError;
        let error_type = match &e {
            InvocationError::Event(_) => "testexec.BadEvent",
            InvocationError::Handler(h) if h.is_permanent() => "testexec.Permanent",
            InvocationError::Handler(_) => "testexec.Retryable",
            InvocationError::UnnamedFailures { .. } => "testexec.BatchFailed",
        };
        lambda_runtime::Diagnostic {
            error_type: error_type.into(),
            error_message: e.to_string(),
        }
    }
}
