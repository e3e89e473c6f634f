//! Result elements inside a `<testcase>`: `<failure>`, `<error>`,
//! `<skipped>` (the verdict, most severe wins) and the rerun elements
//! `<flakyFailure>`, `<flakyError>`, `<rerunFailure>`, `<rerunError>` with
//! their `<stackTrace>` (earlier attempts of the same test).

use super::Parser;
use super::tag::Tag;
use crate::domain::junit::CaseRef;
use crate::domain::model::{Attempt, Outcome};
use crate::errors::JunitError;

/// Result kinds in precedence order: a later variant wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum ResultKind {
    Skipped,
    Failure,
    Error,
}

impl ResultKind {
    pub(super) fn outcome(self) -> Outcome {
        match self {
            ResultKind::Skipped => Outcome::Skipped,
            ResultKind::Failure => Outcome::Failed,
            ResultKind::Error => Outcome::Error,
        }
    }
}

pub(super) struct CaseResult {
    pub(super) kind: ResultKind,
    pub(super) message: Option<String>,
    pub(super) details: Option<String>,
}

pub(super) struct RerunBuilder {
    pub(super) outcome: Outcome,
    pub(super) duration: Option<f64>,
    pub(super) message: Option<String>,
    pub(super) stack_trace: Option<String>,
}

impl<F: FnMut(CaseRef<'_>)> Parser<'_, F> {
    /// `<failure>`, `<error>` or `<skipped>` inside a testcase.
    pub(super) fn open_case_result(
        &mut self,
        e: &Tag<'_>,
        position: u64,
        kind: ResultKind,
    ) -> Result<(), JunitError> {
        let mut message = None;
        let wanted = |k: &[u8]| (k == b"message").then_some(());
        self.attrs(e, position, wanted, |(), v| message = Some(v.into_owned()))?;
        if let Some(case) = self.case.as_mut() {
            case.open_result = Some((kind, message));
        }
        self.open_text();
        Ok(())
    }

    pub(super) fn close_case_result(&mut self) {
        let details = self.take_text();
        if let Some(case) = self.case.as_mut()
            && let Some((kind, message)) = case.open_result.take()
        {
            case.results_seen += 1;
            // Precedence error > failure > skipped; the first of equals wins.
            if case.result.as_ref().is_none_or(|r| kind > r.kind) {
                case.result = Some(CaseResult {
                    kind,
                    message,
                    details,
                });
            }
        }
    }

    /// `<flakyFailure>`, `<flakyError>`, `<rerunFailure>`, `<rerunError>`:
    /// one earlier attempt of the open case.
    pub(super) fn open_rerun(
        &mut self,
        e: &Tag<'_>,
        position: u64,
        outcome: Outcome,
    ) -> Result<(), JunitError> {
        let (mut message, mut time) = (None, None);
        let wanted = |k: &[u8]| match k {
            b"message" => Some(true),
            b"time" => Some(false),
            _ => None,
        };
        self.attrs(e, position, wanted, |is_message, v| {
            if is_message {
                message = Some(v.into_owned());
            } else {
                time = Some(v);
            }
        })?;
        let duration = self.time(time.as_deref(), "rerun");
        // The body goes to the parser's reused rerun buffer: a fresh one
        // per rerun grew by doubling, ~5 % of a nextest report's
        // instructions in reallocation.
        self.rerun_body.clear();
        if let Some(case) = self.case.as_mut() {
            case.rerun = Some(RerunBuilder {
                outcome,
                duration,
                message,
                stack_trace: None,
            });
        }
        Ok(())
    }

    pub(super) fn close_rerun(&mut self) {
        if let Some(case) = self.case.as_mut()
            && let Some(rerun) = case.rerun.take()
        {
            let body = self.rerun_body.take();
            case.retries.push(Attempt {
                outcome: rerun.outcome,
                duration_secs: rerun.duration,
                message: rerun.message,
                details: rerun.stack_trace.or(body),
            });
        }
    }

    pub(super) fn close_stack_trace(&mut self) {
        let text = self.take_text();
        if let Some(rerun) = self.case.as_mut().and_then(|c| c.rerun.as_mut()) {
            rerun.stack_trace = text;
        }
    }
}
