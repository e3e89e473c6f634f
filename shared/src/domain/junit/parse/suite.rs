//! `<testsuites>` and `<testsuite>`: nesting, durations, the `tests=`
//! cross-checks, and `<error>`/`<failure>` placed directly in a suite.

use super::Parser;
use super::outcome::ResultKind;
use super::tag::Tag;
use crate::domain::junit::CaseRef;
use crate::domain::junit::derive::derive_file;
use crate::domain::junit::text::cap_str;
use crate::domain::junit::{SUITE_ERROR_NAME, SuiteSummary};
use crate::domain::model::Counts;
use crate::errors::JunitError;

pub(super) struct SuiteFrame {
    pub(super) summary: usize,
    pub(super) name: String,
    pub(super) file: Option<String>,
    pub(super) time: Option<f64>,
    pub(super) own_time: f64,
    /// Cases in this suite and all nested ones, for the `tests=` check.
    pub(super) total_tests: u64,
}

impl<F: FnMut(CaseRef<'_>)> Parser<'_, F> {
    /// The root `<testsuites>`: only its `tests=` is kept, for comparison.
    pub(super) fn open_testsuites(&mut self, e: &Tag<'_>, position: u64) -> Result<(), JunitError> {
        let mut declared = None;
        let wanted = |k: &[u8]| (k == b"tests").then_some(());
        self.attrs(e, position, wanted, |(), v| {
            declared = v.trim().parse().ok()
        })?;
        self.root_declared_tests = declared;
        Ok(())
    }

    pub(super) fn open_suite(&mut self, e: &Tag<'_>, position: u64) -> Result<(), JunitError> {
        let (mut name, mut file, mut time, mut tests) = (String::new(), None, None, None);
        enum Key {
            Name,
            File,
            Time,
            Tests,
        }
        let wanted = |k: &[u8]| match k {
            b"name" => Some(Key::Name),
            b"file" => Some(Key::File),
            b"time" => Some(Key::Time),
            b"tests" => Some(Key::Tests),
            _ => None,
        };
        self.attrs(e, position, wanted, |k, v| match k {
            Key::Name => name = v.into_owned(),
            Key::File => file = Some(v.into_owned()),
            Key::Time => time = Some(v),
            Key::Tests => tests = v.trim().parse().ok(),
        })?;
        let name = self.escape_nul(name, "suite name");
        let file = file.map(|f| self.escape_nul(f, "suite file"));
        let time = self.time(time.as_deref(), "suite");
        let depth = self.suites.len();
        self.summary.suites.push(SuiteSummary {
            name: name.clone(),
            counts: Counts::default(),
            duration_secs: 0.0,
            depth,
            file: file.clone(),
            declared_tests: tests,
        });
        self.suites.push(SuiteFrame {
            summary: self.summary.suites.len() - 1,
            name,
            file,
            time,
            own_time: 0.0,
            total_tests: 0,
        });
        Ok(())
    }

    pub(super) fn close_suite(&mut self) {
        let Some(frame) = self.suites.pop() else {
            return;
        };
        let summary = &mut self.summary.suites[frame.summary];
        summary.duration_secs = frame.time.unwrap_or(frame.own_time);
        let declared = summary.declared_tests;
        if let Some(parent) = self.suites.last_mut() {
            parent.total_tests += frame.total_tests;
        }
        if let Some(declared) = declared
            && declared != frame.total_tests
        {
            self.warn(format!(
                "suite `{}` declares tests={declared} but holds {} test cases; the cases were counted",
                cap_str(&frame.name, 200),
                frame.total_tests
            ));
        }
    }

    /// `<error>`/`<failure>` directly inside a `<testsuite>`.
    pub(super) fn open_suite_result(
        &mut self,
        e: &Tag<'_>,
        position: u64,
        kind: ResultKind,
    ) -> Result<(), JunitError> {
        let mut message = None;
        let wanted = |k: &[u8]| (k == b"message").then_some(());
        self.attrs(e, position, wanted, |(), v| message = Some(v.into_owned()))?;
        self.suite_result = Some((kind, message));
        self.open_text();
        Ok(())
    }

    pub(super) fn close_suite_result(&mut self) {
        let details = self.take_text();
        if let Some((kind, message)) = self.suite_result.take() {
            self.emit_suite_result(kind, message, details);
        }
    }

    fn emit_suite_result(
        &mut self,
        kind: ResultKind,
        message: Option<String>,
        details: Option<String>,
    ) {
        let (suite, file) = self
            .suites
            .last()
            .map(|f| (f.name.clone(), f.file.clone()))
            .unwrap_or_default();
        self.warn(format!(
            "suite `{}` has an <{}> outside any test case; counted as the test case `{SUITE_ERROR_NAME}`",
            cap_str(&suite, 200),
            if kind == ResultKind::Error { "error" } else { "failure" }
        ));
        let (file, file_derived) = match file {
            Some(f) => (Some(f), false),
            None => match derive_file("", &suite) {
                Some(f) => (Some(f), true),
                None => (None, false),
            },
        };
        self.emit(CaseRef {
            suite: &suite,
            classname: "",
            name: SUITE_ERROR_NAME,
            file: file.as_deref(),
            file_derived,
            line: None,
            duration_secs: 0.0,
            outcome: kind.outcome(),
            message,
            details,
            system_out: None,
            system_err: None,
            retries: Vec::new(),
        });
    }
}
