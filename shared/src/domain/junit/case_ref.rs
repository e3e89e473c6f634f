//! [`CaseRef`]: a finished test case as the reader lends it.

use serde::Serialize;

use crate::domain::model::{Attempt, Outcome, TestCase, test_key};

/// A finished test case lent to [`stream_refs`](super::stream_refs)'s
/// callback. Its identity (suite, classname, name, file) borrows the
/// reader's reused buffers, so handing out a case allocates nothing for it:
/// three or four `String`s per case (allocated, copied and freed again by
/// a consumer that only counts or encodes the case) were ~10 % of the
/// reader's instructions. The texts (message, details, output) and the
/// retries are owned: the reader had to decode and cap them into buffers of
/// their own anyway, and [`into_owned`](Self::into_owned) moves them.
///
/// Serialises exactly as the [`TestCase`] that `into_owned` returns (same
/// fields, order and omissions), so a consumer can encode it directly.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CaseRef<'a> {
    pub suite: &'a str,
    pub classname: &'a str,
    pub name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<&'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub file_derived: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    pub duration_secs: f64,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_out: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_err: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub retries: Vec<Attempt>,
}

impl CaseRef<'_> {
    /// The case as an owned [`TestCase`]: the identity is copied, the texts
    /// and retries are moved.
    pub fn into_owned(self) -> TestCase {
        TestCase {
            suite: self.suite.to_owned(),
            classname: self.classname.to_owned(),
            name: self.name.to_owned(),
            file: self.file.map(str::to_owned),
            file_derived: self.file_derived,
            line: self.line,
            duration_secs: self.duration_secs,
            outcome: self.outcome,
            message: self.message,
            details: self.details,
            system_out: self.system_out,
            system_err: self.system_err,
            retries: self.retries,
        }
    }

    /// The same key as [`TestCase::key`].
    pub fn key(&self) -> String {
        test_key(self.suite, self.classname, self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> CaseRef<'static> {
        CaseRef {
            suite: "s",
            classname: "c.D",
            name: "t[1]",
            file: Some("c/D.java"),
            file_derived: true,
            line: Some(7),
            duration_secs: 0.25,
            outcome: Outcome::Flaky,
            message: Some("m".into()),
            details: Some("d".into()),
            system_out: Some("o".into()),
            system_err: Some("e".into()),
            retries: vec![Attempt {
                outcome: Outcome::Failed,
                duration_secs: Some(0.5),
                message: Some("boom".into()),
                details: None,
            }],
        }
    }

    /// Consumers encode a `CaseRef` where they encoded a `TestCase`: the
    /// JSON must be the same, with every optional field present or absent.
    #[test]
    fn serialises_as_the_owned_case() {
        let bare = CaseRef {
            suite: "",
            classname: "",
            name: "n",
            file: None,
            file_derived: false,
            line: None,
            duration_secs: 0.0,
            outcome: Outcome::Passed,
            message: None,
            details: None,
            system_out: None,
            system_err: None,
            retries: Vec::new(),
        };
        for case in [full(), bare] {
            let lent = serde_json::to_string(&case).unwrap();
            let key = case.key();
            let owned = case.into_owned();
            assert_eq!(lent, serde_json::to_string(&owned).unwrap());
            assert_eq!(key, owned.key());
        }
    }

    #[test]
    fn into_owned_keeps_every_field() {
        let owned = full().into_owned();
        assert_eq!(
            (
                owned.suite.as_str(),
                owned.classname.as_str(),
                owned.name.as_str()
            ),
            ("s", "c.D", "t[1]")
        );
        assert_eq!(owned.file.as_deref(), Some("c/D.java"));
        assert!(owned.file_derived);
        assert_eq!(owned.line, Some(7));
        assert_eq!(owned.duration_secs, 0.25);
        assert_eq!(owned.outcome, Outcome::Flaky);
        assert_eq!(owned.message.as_deref(), Some("m"));
        assert_eq!(owned.details.as_deref(), Some("d"));
        assert_eq!(owned.system_out.as_deref(), Some("o"));
        assert_eq!(owned.system_err.as_deref(), Some("e"));
        assert_eq!(owned.retries.len(), 1);
        assert_eq!(owned.key(), "c.D::t[1]");
    }
}
