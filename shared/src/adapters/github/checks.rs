//! Pure builders for Check Run and commit-status payloads: every GitHub
//! limit is enforced here, where it can be tested without a server.

use std::collections::HashMap;
use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::app::ports::RunOutcome;
use crate::domain::history::triage::{GROUPS, Triage};
use crate::domain::model::{Counts, Outcome, Run, RunStatus, ShardRecord, TestCase};
use crate::domain::report::{human_duration, truncate_bytes};

/// `output.summary` and `output.text`, in bytes.
pub const OUTPUT_MAX_BYTES: usize = 65_535;
/// Annotations accepted per create/update request.
pub const ANNOTATIONS_PER_REQUEST: usize = 50;
/// `message` and `raw_details` ("64 KB"); kept under 64,000 to stay clear
/// of any KB-vs-KiB reading of the limit.
pub const ANNOTATION_FIELD_MAX_BYTES: usize = 64_000;
/// `title`, in characters.
pub const ANNOTATION_TITLE_MAX_CHARS: usize = 255;
/// Lines of a failure message shown in an annotation's `message`; the full
/// text goes to `raw_details`.
const ANNOTATION_MESSAGE_LINES: usize = 20;
/// Commit status `description`, in characters.
pub const STATUS_DESCRIPTION_MAX_CHARS: usize = 140;
/// Button limits.
pub const ACTION_LABEL_MAX_CHARS: usize = 20;
pub const ACTION_DESCRIPTION_MAX_CHARS: usize = 40;
pub const ACTION_IDENTIFIER_MAX_CHARS: usize = 20;
/// `identifier`s of our buttons, as they come back in `requested_action`.
pub const ACTION_RERUN_FAILED: &str = "rerun-failed";
pub const ACTION_RERUN_ALL: &str = "rerun-all";

/// A finished run's check-run conclusion.
///
/// `Errored` (shards lost, setup broken, no verdict) maps to `failure`, not
/// `neutral`: branch protection counts `neutral` as passing, and a run that
/// could not test the commit must not let it merge. The title says
/// "errored" so the difference stays visible.
pub fn conclusion(status: RunStatus) -> &'static str {
    match status {
        RunStatus::Passed => "success",
        RunStatus::Failed | RunStatus::Errored => "failure",
        // Never expected (report sends final runs); fail closed.
        RunStatus::Running | RunStatus::Reporting => "failure",
    }
}

/// The commit-status `state` for the token fallback.
pub fn status_state(status: RunStatus) -> &'static str {
    match status {
        RunStatus::Passed => "success",
        RunStatus::Failed => "failure",
        RunStatus::Errored | RunStatus::Running | RunStatus::Reporting => "error",
    }
}

/// One line such as `12 failed, 340 passed, 3 skipped`.
pub fn title(run: &Run) -> String {
    let c: &Counts = &run.counts;
    let mut parts = Vec::new();
    for (n, word) in [
        (c.failed, "failed"),
        (c.errors, "errors"),
        (c.passed, "passed"),
        (c.flaky, "flaky"),
        (c.skipped, "skipped"),
    ] {
        if n > 0 {
            parts.push(format!("{n} {word}"));
        }
    }
    let counts = if parts.is_empty() {
        "no tests ran".to_string()
    } else {
        parts.join(", ")
    };
    let title = match run.status {
        RunStatus::Errored => match &run.error {
            Some(e) => format!("Errored: {e} ({counts})"),
            None => format!("Errored ({counts})"),
        },
        _ => counts,
    };
    truncate_chars(&title, 200)
}

/// The commit-status `description` (≤ 140 characters).
pub fn status_description(run: &Run) -> String {
    let text = match run.status {
        RunStatus::Running | RunStatus::Reporting => format!("{}: running", run.suite),
        _ => format!("{}: {}", run.suite, title(run)),
    };
    truncate_chars(&text, STATUS_DESCRIPTION_MAX_CHARS)
}

/// Cuts at `max` characters, marking the cut with `…`.
pub(crate) fn truncate_chars(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// At most `max` bytes, cut on a char boundary.
pub fn fit_bytes(s: &str, max: usize) -> &str {
    truncate_bytes(s, max)
}

/// Which failures became annotations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AnnotationPlan {
    /// Annotations built (≤ the cap).
    pub annotated: usize,
    /// Failing tests without a usable file: shown in the text only.
    pub without_file: usize,
    /// Annotatable tests left out by the cap.
    pub over_cap: usize,
}

/// One annotation per annotatable case, errors first, then failures, then
/// flaky tests as warnings, at most `cap` in all. With the run's `triage`,
/// each title says the test's group (a new failure, quarantined...) and the
/// message names its owners from `CODEOWNERS`.
pub fn annotations(
    cases: &[TestCase],
    triage: Option<&Triage>,
    cap: usize,
) -> (Vec<Value>, AnnotationPlan) {
    let mut groups: HashMap<&str, (&str, &[String])> = HashMap::new();
    if let Some(t) = triage {
        for ((_, title, _), list) in GROUPS.iter().zip(t.groups()) {
            for test in list {
                groups.insert(test.id.as_str(), (title, &test.owners[..]));
            }
        }
    }
    let mut plan = AnnotationPlan::default();
    let mut out = Vec::new();
    for (wanted, level) in [
        (Outcome::Error, "failure"),
        (Outcome::Failed, "failure"),
        (Outcome::Flaky, "warning"),
    ] {
        for case in cases.iter().filter(|c| c.outcome == wanted) {
            let Some(path) = case.file.as_deref().and_then(annotation_path) else {
                if wanted.is_failure() {
                    plan.without_file += 1;
                }
                continue;
            };
            if out.len() >= cap {
                plan.over_cap += 1;
                continue;
            }
            let mut a = annotation(case, &path, level);
            if let Some((group, owners)) = groups.get(case.key().as_str()) {
                let title = format!("{group}: {}", a["title"].as_str().unwrap_or_default());
                a["title"] = Value::from(truncate_chars(&title, ANNOTATION_TITLE_MAX_CHARS));
                if !owners.is_empty() {
                    let message = format!(
                        "{}\nOwners: {}",
                        a["message"].as_str().unwrap_or_default(),
                        owners.join(" ")
                    );
                    a["message"] = Value::from(fit_bytes(&message, ANNOTATION_FIELD_MAX_BYTES));
                }
            }
            out.push(a);
        }
    }
    plan.annotated = out.len();
    (out, plan)
}

/// A repository-relative path GitHub can attach an annotation to, or None
/// (absolute paths from a CI machine, `..`, empty).
fn annotation_path(file: &str) -> Option<String> {
    let p = file.trim().replace('\\', "/");
    let p = p.trim_start_matches("./");
    if p.is_empty()
        || p.starts_with('/')
        || p.as_bytes().get(1) == Some(&b':')
        || p.split('/').any(|seg| seg == "..")
    {
        return None;
    }
    Some(p.to_string())
}

fn annotation(case: &TestCase, path: &str, level: &str) -> Value {
    let line = case.line.filter(|l| *l > 0).unwrap_or(1);
    let title = truncate_chars(&case.key(), ANNOTATION_TITLE_MAX_CHARS);
    let message = case
        .message
        .as_deref()
        .filter(|m| !m.trim().is_empty())
        .or(case.details.as_deref().filter(|d| !d.trim().is_empty()))
        .map(|m| {
            m.lines()
                .take(ANNOTATION_MESSAGE_LINES)
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_else(|| format!("{} ({})", case.name, case.outcome));
    let mut a = json!({
        "path": path,
        "start_line": line,
        "end_line": line,
        "annotation_level": level,
        "title": title,
        "message": fit_bytes(&message, ANNOTATION_FIELD_MAX_BYTES),
    });
    if let Some(details) = case.details.as_deref().filter(|d| !d.trim().is_empty()) {
        a["raw_details"] = Value::from(fit_bytes(details, ANNOTATION_FIELD_MAX_BYTES));
    }
    a
}

/// `output.text`: notes on what the annotations could not show, then the
/// shard table, within [`OUTPUT_MAX_BYTES`]. The notes come first so that
/// cutting the table never hides them.
pub fn output_text(outcome: &RunOutcome, plan: &AnnotationPlan, cap: usize) -> String {
    let mut text = String::new();
    if plan.without_file > 0 {
        let _ = writeln!(
            text,
            "> {} failing test(s) have no source file in their report, so they are listed in the summary but not annotated.\n",
            plan.without_file
        );
    }
    if plan.over_cap > 0 {
        let _ = writeln!(
            text,
            "> Annotations are capped at {cap} per run; {} more are in the summary and the full report.\n",
            plan.over_cap
        );
    }
    if let Some(link) = &outcome.report_link {
        let _ = writeln!(text, "Full report: {link}\n");
    }
    text.push_str(&shard_table(&outcome.shards));
    fit_bytes(&text, OUTPUT_MAX_BYTES).to_string()
}

fn shard_table(shards: &[ShardRecord]) -> String {
    if shards.is_empty() {
        return String::new();
    }
    let mut t = String::from(
        "### Shards\n\n| Shard | Status | Tests | Passed | Failed | Errors | Skipped | Time | Note |\n|---:|---|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for s in shards {
        let time = match (s.started_ms, s.finished_ms) {
            (Some(a), Some(b)) if b >= a => human_duration((b - a) as f64 / 1000.0),
            _ => "–".to_string(),
        };
        let note = s
            .error
            .as_deref()
            .map(|e| truncate_chars(&e.replace(['\n', '|'], " "), 120))
            .unwrap_or_default();
        let c = &s.counts;
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            s.id.index, s.status, c.tests, c.passed, c.failed, c.errors, c.skipped, time, note
        );
    }
    t
}

/// The buttons: "Rerun failed" only when something failed. Never more than
/// GitHub's three.
pub fn actions(outcome: &RunOutcome) -> Vec<Value> {
    let mut actions = Vec::new();
    if !outcome.run.counts.all_passed() || !outcome.failures.is_empty() {
        actions.push(json!({
            "label": "Rerun failed",
            "identifier": ACTION_RERUN_FAILED,
            "description": "Run only the tests that failed",
        }));
    }
    actions.push(json!({
        "label": "Rerun all",
        "identifier": ACTION_RERUN_ALL,
        "description": "Run the whole suite again",
    }));
    actions
}

/// The `output` object of a completion request, carrying one chunk of
/// annotations. Every chunk repeats title/summary/text: GitHub requires
/// them on each update, and repeating the same values keeps updates
/// idempotent.
pub fn output(title: &str, summary: &str, text: &str, annotations: &[Value]) -> Value {
    let mut out = json!({
        "title": title,
        "summary": fit_bytes(summary, OUTPUT_MAX_BYTES),
    });
    if !text.is_empty() {
        out["text"] = Value::from(text);
    }
    if !annotations.is_empty() {
        out["annotations"] = Value::from(annotations.to_vec());
    }
    out
}

/// The link a check run's "Details" points at.
pub fn details_url(base: Option<&str>, run: &Run) -> Option<String> {
    base.map(|b| format!("{}/runs/{}", b.trim_end_matches('/'), run.id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(outcome: Outcome, file: Option<&str>) -> TestCase {
        TestCase {
            suite: "s".into(),
            classname: "pkg.Class".into(),
            name: "t".into(),
            file: file.map(str::to_string),
            file_derived: false,
            line: Some(0),
            duration_secs: 0.0,
            outcome,
            message: None,
            details: Some("trace".into()),
            system_out: None,
            system_err: None,
            retries: vec![],
        }
    }

    #[test]
    fn annotations_name_the_group_and_owners() {
        use crate::domain::history::classify::Class;
        use crate::domain::history::triage::TriagedTest;
        let failed = case(Outcome::Failed, Some("a.py"));
        let triage = Triage {
            new_failures: vec![TriagedTest {
                id: failed.key(),
                outcome: Outcome::Failed,
                class_before: Class::Healthy,
                quarantined: None,
                recent: "PPP".into(),
                file: Some("a.py".into()),
                owners: vec!["@team/api".into(), "@alice".into()],
            }],
            ..Triage::default()
        };
        let (a, _) = annotations(&[failed], Some(&triage), 10);
        assert_eq!(a[0]["title"], "New failures: pkg.Class::t");
        assert_eq!(a[0]["message"], "trace\nOwners: @team/api @alice");
        let (plain, _) = annotations(&[case(Outcome::Failed, Some("a.py"))], None, 10);
        assert_eq!(plain[0]["title"], "pkg.Class::t");
    }

    #[test]
    fn annotations_order_levels_and_cap() {
        let cases = vec![
            case(Outcome::Failed, Some("./a.py")),
            case(Outcome::Flaky, Some("b.py")),
            case(Outcome::Error, Some("c.py")),
            case(Outcome::Failed, None),
            case(Outcome::Failed, Some("/abs/x.py")),
            case(Outcome::Failed, Some("../x.py")),
        ];
        let (a, plan) = annotations(&cases, None, 10);
        let paths: Vec<_> = a.iter().map(|v| v["path"].as_str().unwrap()).collect();
        assert_eq!(paths, ["c.py", "a.py", "b.py"]);
        assert_eq!(a[2]["annotation_level"], "warning");
        assert_eq!(a[0]["start_line"], 1);
        assert_eq!(a[0]["message"], "trace");
        assert_eq!(plan.without_file, 3);
        let (a, plan) = annotations(&cases, None, 1);
        assert_eq!(a.len(), 1);
        assert_eq!(plan.over_cap, 2);
    }

    #[test]
    fn truncation_helpers_respect_limits() {
        let long = "é".repeat(300);
        let t = truncate_chars(&long, ANNOTATION_TITLE_MAX_CHARS);
        assert_eq!(t.chars().count(), ANNOTATION_TITLE_MAX_CHARS);
        assert_eq!(fit_bytes("éé", 3), "é");
    }
}
