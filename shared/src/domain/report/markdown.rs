//! The GitHub-flavoured Markdown summary: Check Run `output.summary` and the
//! PR comment.
//!
//! GitHub rejects a summary over 65,535 **bytes**, so [`summary`] degrades in
//! stages until it fits: everything → failures only (+ totals) → as many
//! failures as fit plus a note saying how many were left out. Failures are
//! what a reader needs first, so they are the last thing dropped.

use std::fmt::Write as _;

use super::{ReportInput, human_duration, secs, truncate_bytes};
use crate::domain::history::triage::GROUPS;
use crate::domain::model::{Outcome, RunStatus, ShardRecord, ShardStatus, TestCase};

/// GitHub's limit for a Check Run's `output.summary` (and `output.text`).
pub const GITHUB_SUMMARY_MAX_BYTES: usize = 65_535;

/// How many lines of a failure message are shown.
const MESSAGE_MAX_LINES: usize = 15;
/// And at most this many bytes of them, so one huge message cannot crowd
/// out every other failure.
const MESSAGE_MAX_BYTES: usize = 1_500;
/// Test names longer than this are cut (some generated names are huge).
const NAME_MAX_BYTES: usize = 300;
/// Rows in the flaky table before "and N more".
const FLAKY_MAX_ROWS: usize = 50;
/// Rows in the shard table before "and N more".
const SHARD_MAX_ROWS: usize = 100;
const SLOWEST: usize = 10;

/// Which stage of degradation a summary was rendered at (for tests and logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Totals, failures, flaky, slowest and shards.
    Full,
    /// Totals and every failure.
    FailuresOnly,
    /// Totals and the first failures, with a note on how many more there are.
    FailuresTruncated,
    /// Not even the totals fit: a bare status line cut to size.
    Minimal,
}

/// The summary, at most `max_bytes` bytes long.
pub fn summary(input: &ReportInput<'_>, max_bytes: usize) -> String {
    render(input, max_bytes).0
}

/// The summary and the stage it was rendered at.
pub fn render(input: &ReportInput<'_>, max_bytes: usize) -> (String, Stage) {
    let header = header(input);
    // Blocks of the held failures (the first ones); `total` counts them all.
    let total = usize::try_from(input.digest.failure_count).unwrap_or(usize::MAX);
    let blocks: Vec<String> = input
        .digest
        .failures
        .iter()
        .map(|(shard, case)| failure_block(*shard, case))
        .collect();
    let all_held = blocks.len() == total;
    let failures_title = if total == 0 {
        String::new()
    } else {
        format!("### Failures ({total})\n\n")
    };

    // Stage 1: everything.
    let mut full = String::with_capacity(header.len() + 4096);
    full.push_str(&header);
    full.push_str(&failures_title);
    blocks.iter().for_each(|b| full.push_str(b));
    full.push_str(&flaky_section(input));
    full.push_str(&slowest_section(input));
    full.push_str(&shard_section(input));
    if all_held && full.len() <= max_bytes {
        return (full, Stage::Full);
    }

    // Stage 2: totals and every failure.
    let see = see_full_report(input);
    let mut only = String::with_capacity(max_bytes.min(full.len()));
    only.push_str(&header);
    only.push_str(&failures_title);
    blocks.iter().for_each(|b| only.push_str(b));
    let omitted = format!(
        "_Flaky tests, slowest tests and the shard table are left out to fit GitHub's size limit; {see}._\n"
    );
    if all_held && only.len() + omitted.len() <= max_bytes {
        only.push_str(&omitted);
        return (only, Stage::FailuresOnly);
    }

    // Stage 3: as many whole failures as fit, then the note. The note is
    // sized for the count it will actually carry.
    let note = |more: usize| format!("**{more} more failures not shown; {see}.**\n");
    let mut out = String::with_capacity(max_bytes.min(full.len()));
    out.push_str(&header);
    out.push_str(&failures_title);
    if out.len() + note(total).len() <= max_bytes {
        let mut shown = 0;
        for block in &blocks {
            let after = total - shown - 1;
            let tail = if after == 0 { 0 } else { note(after).len() };
            if out.len() + block.len() + tail > max_bytes {
                break;
            }
            out.push_str(block);
            shown += 1;
        }
        if shown < total {
            out.push_str(&note(total - shown));
        }
        return (out, Stage::FailuresTruncated);
    }

    // Stage 4: a budget too small for the totals table. The status line has
    // no code fence, so cutting it at a character boundary is safe.
    let line = status_line(input);
    (truncate_bytes(&line, max_bytes).to_string(), Stage::Minimal)
}

fn status_line(input: &ReportInput<'_>) -> String {
    let c = input.counts();
    let (emoji, verdict) = match input.run.status {
        RunStatus::Passed => ("✅", "passed"),
        RunStatus::Failed => ("❌", "failed"),
        RunStatus::Errored => ("⚠️", "errored"),
        RunStatus::Running | RunStatus::Reporting => ("⏳", "in progress"),
    };
    let mut line = format!("## {emoji} Run {verdict}: {} tests", c.tests);
    let mut parts = Vec::new();
    if c.failed > 0 {
        parts.push(format!("{} failed", c.failed));
    }
    if c.errors > 0 {
        parts.push(format!(
            "{} error{}",
            c.errors,
            if c.errors == 1 { "" } else { "s" }
        ));
    }
    if c.flaky > 0 {
        parts.push(format!("{} flaky", c.flaky));
    }
    if !parts.is_empty() {
        let _ = write!(line, ", {}", parts.join(", "));
    }
    line.push('\n');
    line
}

fn header(input: &ReportInput<'_>) -> String {
    let run = input.run;
    let c = input.counts();
    let mut s = status_line(input);
    let _ = write!(s, "\n`{}` · {}", run.id, md(&run.source.repo));
    if let Some(commit) = &run.source.commit {
        // A SHA is hex; filtering keeps a hostile value from closing the span.
        let short: String = commit
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(12)
            .collect();
        let _ = write!(s, " @ `{short}`");
    }
    if !run.suite.is_empty() {
        let _ = write!(s, " · suite {}", md(&run.suite));
    }
    s.push_str("\n\n");
    if let Some(error) = &run.error {
        let _ = writeln!(s, "> **Run error:** {}\n", md(&cut(error, 500)));
    }
    let errored = input
        .shards
        .iter()
        .filter(|x| x.status == ShardStatus::Errored)
        .count();
    let shards = if errored > 0 {
        format!("{} ({errored} errored)", input.shards.len())
    } else {
        input.shards.len().to_string()
    };
    s.push_str("| Passed | Failed | Errors | Skipped | Flaky | Total | Duration | Shards |\n");
    s.push_str("|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    let _ = writeln!(
        s,
        "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
        c.passed,
        c.failed,
        c.errors,
        c.skipped,
        c.flaky,
        c.tests,
        human_duration(input.duration_secs()),
        shards
    );
    let links: Vec<String> = [
        ("Full report", &input.links.html),
        ("JUnit", &input.links.junit),
        ("CTRF", &input.links.ctrf),
    ]
    .into_iter()
    .filter_map(|(label, link)| link.as_ref().map(|l| format!("[{label}]({})", url(l))))
    .collect();
    if !links.is_empty() {
        let _ = writeln!(s, "{}\n", links.join(" · "));
    }
    s.push_str(&history_section(input));
    s
}

/// Rows per history group; the full lists are in the HTML and CTRF.
const HISTORY_MAX_ROWS: usize = 10;

/// The four history groups, new failures first: part of the header, so
/// every stage of the summary keeps them (bounded: 4 × 10 short rows).
fn history_section(input: &ReportInput<'_>) -> String {
    let Some(t) = input.triage else {
        return String::new();
    };
    let mut s = String::from("### Test history\n\n| Group | Tests |\n|---|---:|\n");
    let totals = [
        t.new_failures.len(),
        t.known_flaky.len(),
        t.quarantined.len(),
        t.fixed.len(),
    ];
    for ((_, title, _), n) in GROUPS.iter().zip(totals) {
        let _ = writeln!(s, "| {title} | {n} |");
    }
    s.push('\n');
    if t.only_quarantined_failures() {
        let _ = writeln!(
            s,
            "_{} failure(s) of quarantined tests did not fail the run._\n",
            t.quarantined_failures
        );
    }
    for ((_, title, meaning), list) in GROUPS.iter().zip(t.groups()) {
        if list.is_empty() {
            continue;
        }
        let _ = writeln!(s, "#### {title} ({})\n\n_{meaning}_\n", list.len());
        for test in list.iter().take(HISTORY_MAX_ROWS) {
            let _ = write!(
                s,
                "- {} · {} (was {})",
                md(&cut(&test.id, NAME_MAX_BYTES)),
                test.outcome,
                test.class_before
            );
            if !test.recent.is_empty() {
                let _ = write!(s, " · last runs `{}`", strip_text(&test.recent));
            }
            if !test.owners.is_empty() {
                let owners: Vec<String> = test.owners.iter().map(|o| md(o)).collect();
                let _ = write!(s, " · owners {}", owners.join(" "));
            }
            s.push('\n');
        }
        if list.len() > HISTORY_MAX_ROWS {
            let _ = writeln!(s, "- _and {} more_", list.len() - HISTORY_MAX_ROWS);
        }
        s.push('\n');
    }
    s
}

/// The outcome strip, only its letters (it sits in a code span).
fn strip_text(recent: &str) -> String {
    recent.chars().filter(|c| "PFMS".contains(*c)).collect()
}

fn see_full_report(input: &ReportInput<'_>) -> String {
    match &input.links.html {
        Some(link) => format!("see the [full report]({})", url(link)),
        None => "see the full report".to_string(),
    }
}

fn failure_block(shard: u32, case: &TestCase) -> String {
    let icon = if case.outcome == Outcome::Error {
        "💥"
    } else {
        "❌"
    };
    let mut s = format!(
        "#### {icon} {} ({})\n\n",
        md(&cut(&ReportInput::display_name(case), NAME_MAX_BYTES)),
        case.outcome
    );
    let mut meta = Vec::new();
    if let Some(location) = ReportInput::location(case) {
        meta.push(md(&cut(&location, NAME_MAX_BYTES)));
    }
    meta.push(format!("shard {shard}"));
    meta.push(human_duration(case.duration_secs));
    let _ = writeln!(s, "{}\n", meta.join(" · "));
    let text = case
        .message
        .as_deref()
        .filter(|m| !m.trim().is_empty())
        .or(case.details.as_deref());
    if let Some(text) = text {
        s.push_str(&fenced(&first_lines(text)));
    }
    s.push('\n');
    s
}

/// The first lines of a message, capped in lines and bytes.
fn first_lines(text: &str) -> String {
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let mut lines = text.lines();
    let mut out = String::new();
    for line in lines.by_ref().take(MESSAGE_MAX_LINES) {
        out.push_str(line);
        out.push('\n');
    }
    let more_lines = lines.next().is_some();
    let cut_bytes = out.len() > MESSAGE_MAX_BYTES;
    let mut out = truncate_bytes(&out, MESSAGE_MAX_BYTES)
        .trim_end()
        .to_string();
    if more_lines || cut_bytes {
        out.push_str("\n…");
    }
    out
}

/// A fenced code block whose fence is longer than any run of backticks in
/// the text, so no message can close it early (CommonMark closes a fence
/// only with a run at least as long as the opening one).
fn fenced(text: &str) -> String {
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest.max(2) + 1);
    format!("{fence}text\n{text}\n{fence}\n")
}

fn flaky_section(input: &ReportInput<'_>) -> String {
    let count = input.digest.flaky_count;
    if count == 0 {
        return String::new();
    }
    let mut s =
        format!("### Flaky tests ({count})\n\n| Test | Attempts | Shard |\n|---|---:|---:|\n");
    let shown = input.digest.flaky.iter().take(FLAKY_MAX_ROWS);
    let shown_count = shown.len() as u64;
    for (shard, case) in shown {
        let failed = case
            .retries
            .iter()
            .filter(|a| a.outcome.is_failure())
            .count();
        let _ = writeln!(
            s,
            "| {} | {} ({failed} failed) | {shard} |",
            md(&cut(&ReportInput::display_name(case), NAME_MAX_BYTES)),
            case.retries.len() + 1
        );
    }
    if count > shown_count {
        let _ = writeln!(s, "\n_and {} more flaky tests_", count - shown_count);
    }
    s.push('\n');
    s
}

fn slowest_section(input: &ReportInput<'_>) -> String {
    let slowest = &input.digest.slowest[..input.digest.slowest.len().min(SLOWEST)];
    if slowest.is_empty() {
        return String::new();
    }
    let mut s = format!(
        "### Slowest {} tests\n\n| Test | Duration | Outcome | Shard |\n|---|---:|---|---:|\n",
        slowest.len()
    );
    for (shard, case) in slowest {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {shard} |",
            md(&cut(&ReportInput::display_name(case), NAME_MAX_BYTES)),
            human_duration(case.duration_secs),
            case.outcome
        );
    }
    s.push('\n');
    s
}

fn shard_duration(shard: &ShardRecord) -> Option<f64> {
    match (shard.started_ms, shard.finished_ms) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a) as f64 / 1000.0),
        _ => None,
    }
}

fn shard_section(input: &ReportInput<'_>) -> String {
    if input.shards.is_empty() {
        return String::new();
    }
    // Shards that need attention first, then by index.
    let rank = |s: &ShardRecord| match s.status {
        ShardStatus::Errored => 0,
        ShardStatus::Failed => 1,
        ShardStatus::Pending => 2,
        ShardStatus::Passed => 3,
    };
    let mut order: Vec<&ShardRecord> = input.shards.iter().collect();
    order.sort_by_key(|s| (rank(s), s.id.index));
    let mut s = String::from(
        "### Shards\n\n| Shard | Status | Tests | Duration | Planned | Actual / planned | Log |\n|---:|---|---:|---:|---:|---:|---|\n",
    );
    for shard in order.iter().take(SHARD_MAX_ROWS) {
        let actual = shard_duration(shard);
        let planned = secs(shard.estimated_secs);
        let ratio = match actual {
            Some(a) if planned > 0.0 => format!("{:.0}%", a / planned * 100.0),
            _ => "–".to_string(),
        };
        let status = match (&shard.status, &shard.error) {
            (ShardStatus::Errored, Some(e)) => format!("⚠️ errored: {}", md(&cut(e, 120))),
            (ShardStatus::Errored, None) => "⚠️ errored".to_string(),
            (ShardStatus::Failed, _) => "❌ failed".to_string(),
            (ShardStatus::Passed, _) => "✅ passed".to_string(),
            (ShardStatus::Pending, _) => "⏳ pending".to_string(),
        };
        let log = input
            .links
            .shard_logs
            .get(shard.id.index as usize)
            .and_then(Option::as_ref)
            .map(|l| format!("[log]({})", url(l)))
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "| {} | {status} | {} | {} | {} | {ratio} | {log} |",
            shard.id.index,
            shard.counts.tests,
            actual
                .map(human_duration)
                .unwrap_or_else(|| "–".to_string()),
            human_duration(planned),
        );
    }
    if order.len() > SHARD_MAX_ROWS {
        let _ = writeln!(
            s,
            "\n_and {} more shards (all in the full report)_",
            order.len() - SHARD_MAX_ROWS
        );
    }
    s.push('\n');
    s
}

/// Cuts `s` to `max` bytes at a character boundary, marking the cut.
fn cut(s: &str, max: usize) -> String {
    let t = truncate_bytes(s, max);
    if t.len() < s.len() {
        format!("{t}…")
    } else {
        t.to_string()
    }
}

/// Escapes text for Markdown inline content and table cells: characters
/// that would start emphasis, links, code, HTML or end a cell are escaped;
/// line breaks (which would end a table row) become spaces. An `@` before
/// a name gets a zero-width joiner (U+200D): GitHub would otherwise make
/// `@octocat` in a test name a mention and notify that user or team. A
/// backslash does not help there, since mentions are found in the rendered
/// text; the joiner is invisible and breaks the pattern.
pub fn md(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '@' if chars.peek().is_some_and(char::is_ascii_alphanumeric) => {
                out.push('@');
                out.push('\u{200D}');
            }
            '\\' | '`' | '*' | '_' | '[' | ']' | '|' | '#' | '~' | '!' => {
                out.push('\\');
                out.push(c);
            }
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A link target: spaces and parentheses would end a Markdown link early.
fn url(link: &str) -> String {
    link.replace(' ', "%20")
        .replace('(', "%28")
        .replace(')', "%29")
        .replace(['\n', '\r'], "")
}
