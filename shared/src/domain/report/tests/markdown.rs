use super::{Rich, case, synthetic};
use crate::domain::model::Outcome;
use crate::domain::report::markdown::{GITHUB_SUMMARY_MAX_BYTES, Stage, render, summary};

/// True when every fenced code block that opens also closes (CommonMark:
/// a fence closes on a line of at least as many backticks and nothing else).
fn fences_balanced(md: &str) -> bool {
    let mut open: Option<usize> = None;
    for line in md.lines() {
        let ticks = line.len() - line.trim_start_matches('`').len();
        match open {
            None if ticks >= 3 => open = Some(ticks),
            Some(n) if ticks >= n && line.trim_end().len() == ticks => open = None,
            _ => {}
        }
    }
    open.is_none()
}

/// The text that is not inside a fenced code block.
fn outside_fences(md: &str) -> String {
    let mut open: Option<usize> = None;
    let mut out = String::new();
    for line in md.lines() {
        let ticks = line.len() - line.trim_start_matches('`').len();
        match open {
            None if ticks >= 3 => open = Some(ticks),
            Some(n) if ticks >= n && line.trim_end().len() == ticks => open = None,
            None => {
                out.push_str(line);
                out.push('\n');
            }
            Some(_) => {}
        }
    }
    out
}

#[test]
fn full_summary_has_totals_sections_and_links() {
    let rich = Rich::new();
    let (md, stage) = render(&rich.input(), GITHUB_SUMMARY_MAX_BYTES);
    assert_eq!(stage, Stage::Full);
    assert!(
        md.starts_with("## ❌ Run failed: 6 tests, 1 failed, 1 error, 1 flaky\n"),
        "{md}"
    );
    // passed, failed, errors, skipped, flaky, total, duration, shards
    assert!(
        md.contains("| 2 | 1 | 1 | 1 | 1 | 6 | 2m 00s | 3 (1 errored) |"),
        "{md}"
    );
    assert!(md.contains("### Failures (2)"));
    assert!(md.contains("### Flaky tests (1)"));
    assert!(
        md.contains("| tests.test\\_net::test\\_retry\\_テスト ✓ | 3 (2 failed) | 0 |"),
        "{md}"
    );
    assert!(md.contains("### Slowest 6 tests"));
    assert!(md.contains("### Shards"));
    assert!(
        md.contains("tests/test\\_api.py:42 · shard 1 · 1.5s"),
        "{md}"
    );
    assert!(md.contains("[Full report](https://example.test/runs/x/report/index.html)"));
    assert!(md.contains("[log](https://example.test/log0)"));
    // The errored shard comes first in the shard table, with its reason.
    let errored = md
        .find("| 2 | ⚠️ errored: setup failed: &lt;boom&gt; \\`pip\\` exit 1")
        .expect("errored row");
    assert!(errored < md.find("| 0 | ✅ passed").unwrap());
    assert!(fences_balanced(&md));
}

#[test]
fn names_are_escaped_and_backticks_cannot_break_the_fence() {
    let rich = Rich::new();
    let md = summary(&rich.input(), GITHUB_SUMMARY_MAX_BYTES);
    // Inside a fenced block `<` is literal code; outside one it would be HTML.
    assert!(!outside_fences(&md).contains('<'), "raw HTML leaked: {md}");
    assert!(md.contains("test\\_&lt;script&gt;alert(1)&lt;/script&gt;"));
    // `|` inside a table cell is escaped so the row keeps its columns.
    assert!(md.contains("test\\_connect \\| pipe"));
    // The message has a run of four backticks: the fence must be longer.
    assert!(md.contains("`````text\nassert <script>"), "{md}");
    assert!(fences_balanced(&md));
}

/// GitHub turns `@name` in a Check Run summary or PR comment into a
/// mention that notifies the user or team. Test names, locations and shard
/// errors are not ours to send notifications with: outside code, every `@`
/// before a name gets a zero-width joiner, which GitHub does not read as a
/// mention, while the text still reads the same. Inside a fenced message
/// nothing is linked, so it stays as written.
#[test]
fn mentions_in_names_cannot_ping_anyone() {
    let mut rich = Rich::new();
    let mut failing = case(
        "@github/security",
        "@github/security",
        "greets @octocat and @Org/team-1",
        Outcome::Failed,
        1.0,
    );
    failing.message = Some("expected @octocat to reply".into());
    failing.file = Some("spec/@mona/hello_spec.rb".into());
    rich.cases.push((1, failing));
    rich.shards[2].error = Some("setup failed: @hubot is not a command".into());
    let md = summary(&rich.input(), GITHUB_SUMMARY_MAX_BYTES);

    let outside = outside_fences(&md);
    let bytes: Vec<char> = outside.chars().collect();
    for (i, c) in bytes.iter().enumerate() {
        if *c == '@' {
            let next = bytes.get(i + 1).copied().unwrap_or(' ');
            assert!(
                !next.is_ascii_alphanumeric(),
                "a mention survived at {i}: {outside}"
            );
        }
    }
    assert!(
        outside.contains("greets @\u{200D}octocat and @\u{200D}Org/team-1"),
        "{md}"
    );
    assert!(outside.contains("@\u{200D}github/security"), "{md}");
    assert!(
        outside.contains("spec/@\u{200D}mona/hello\\_spec.rb"),
        "{md}"
    );
    assert!(outside.contains("@\u{200D}hubot is not a command"), "{md}");
    // Code is never linked: the message keeps its exact text.
    assert!(
        md.contains("```text\nexpected @octocat to reply\n```"),
        "{md}"
    );
}

#[test]
fn fence_checker_detects_an_unclosed_fence() {
    assert!(fences_balanced("a\n```text\nx\n```\n"));
    assert!(!fences_balanced("a\n````text\nx\n```\n"));
}

#[test]
fn exactly_at_the_limit_everything_fits_one_byte_less_degrades() {
    let rich = Rich::new();
    let input = rich.input();
    let full = summary(&input, usize::MAX);
    assert_eq!(render(&input, full.len()), (full.clone(), Stage::Full));
    let (smaller, stage) = render(&input, full.len() - 1);
    assert_eq!(stage, Stage::FailuresOnly);
    assert!(smaller.len() < full.len());
    assert!(smaller.contains("### Failures (2)"));
    assert!(!smaller.contains("### Shards"));
    assert!(smaller.contains(
        "left out to fit GitHub's size limit; see the [full report](https://example.test/"
    ));
}

#[test]
fn every_budget_is_respected_without_breaking_chars_or_fences() {
    // Multi-byte names and emoji put character boundaries everywhere; sweep
    // every budget from 0 to the full size.
    let rich = Rich::new();
    let input = rich.input();
    let full_len = summary(&input, usize::MAX).len();
    let mut seen = Vec::new();
    for max in 0..=full_len + 1 {
        let (md, stage) = render(&input, max);
        assert!(md.len() <= max, "budget {max}: {} bytes", md.len());
        assert!(fences_balanced(&md), "budget {max}: unbalanced fence\n{md}");
        if seen.last() != Some(&stage) {
            seen.push(stage);
        }
    }
    // Stages only ever get richer as the budget grows.
    assert_eq!(
        seen,
        vec![
            Stage::Minimal,
            Stage::FailuresTruncated,
            Stage::FailuresOnly,
            Stage::Full
        ]
    );
}

#[test]
fn many_failures_are_truncated_with_a_count_and_link() {
    let mut rich = synthetic(0, 2);
    for i in 0..500 {
        let mut c = case("s", "pkg.Mod", &format!("test_ü_{i}"), Outcome::Failed, 1.0);
        c.message = Some(format!("line one ✓ {i}\n{}", "detail ".repeat(40)));
        rich.cases.push((i % 2, c));
    }
    rich.links.html = Some("https://example.test/r/index.html".into());
    let input = rich.input();
    let (md, stage) = render(&input, 20_000);
    assert_eq!(stage, Stage::FailuresTruncated);
    assert!(md.len() <= 20_000);
    assert!(fences_balanced(&md));
    let shown = md.matches("\n#### ").count();
    assert!(shown > 10, "only {shown} failures fit");
    let note = format!(
        "**{} more failures not shown; see the [full report](https://example.test/r/index.html).**",
        500 - shown
    );
    assert!(md.trim_end().ends_with(&note), "{}", &md[md.len() - 300..]);
    // The totals are kept.
    assert!(md.contains("| 0 | 500 | 0 | 0 | 0 | 500 |"));

    // Without a link the note still tells the reader where to look.
    rich.links.html = None;
    let md = summary(&rich.input(), 20_000);
    assert!(md.contains("more failures not shown; see the full report.**"));
}

#[test]
fn a_huge_message_is_cut_to_its_first_lines() {
    let mut rich = synthetic(0, 1);
    let mut c = case("s", "", "big", Outcome::Failed, 1.0);
    c.message = Some(
        (0..1000)
            .map(|i| format!("line {i} ```"))
            .collect::<Vec<_>>()
            .join("\n"),
    );
    rich.cases.push((0, c));
    let md = summary(&rich.input(), GITHUB_SUMMARY_MAX_BYTES);
    assert!(md.contains("line 14 "));
    assert!(!md.contains("line 15 "));
    assert!(md.contains("\n…\n"));
    assert!(fences_balanced(&md));
}

#[test]
fn passing_run_says_so() {
    let mut rich = synthetic(10, 2);
    rich.cases.retain(|(_, c)| c.outcome == Outcome::Passed);
    rich.run.status = crate::domain::model::RunStatus::Passed;
    let md = summary(&rich.input(), GITHUB_SUMMARY_MAX_BYTES);
    assert!(md.starts_with("## ✅ Run passed: 4 tests\n"), "{md}");
    assert!(!md.contains("### Failures"));
}
