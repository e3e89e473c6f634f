//! The self-contained HTML report (`index.html`).
//!
//! One file with inline CSS, inline SVG and a few lines of strict-mode JS:
//! no external assets, no CDN, no web fonts, so it opens offline, from an
//! e-mail attachment or a downloaded artifact. Links point only at sibling
//! report files by relative path: presigned URLs expire (S3: 7 days at most)
//! and must not be baked into a stored page.
//!
//! The page is a [`maud`] template: every value interpolated into it is
//! escaped by maud, and only our own constants (the CSS, the JS, the icon
//! link) are inserted as [`PreEscaped`]. The `"\n"` literals keep one line
//! per row in the source, so a 5,000-row page stays readable and diffable.
//!
//! Characters HTML does not allow (control characters other than tab and
//! line breaks, U+FFFE/U+FFFF; U+0000 browsers replace anyway) are dropped
//! from the finished page: only test data can carry them.

use std::io::{self, Write};

use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::{ReportInput, files, human_duration, secs, without_texts};
use crate::domain::history::triage::GROUPS;
use crate::domain::model::{Outcome, ShardRecord, ShardStatus, TestCase};

/// Rows of the all-tests table rendered; the rest are in the JSON and JUnit.
/// 5,000 rows are about 1.5 MB of page, which a browser still filters live.
pub const MAX_TEST_ROWS: usize = 5_000;
/// Failures rendered with their messages.
pub const MAX_FAILURES: usize = 2_000;
/// Flaky tests rendered with their attempts.
pub const MAX_FLAKY: usize = 1_000;
const SLOWEST: usize = 20;
/// The page's icon: empty and inline, so no request is made for one.
pub const ICON_LINK: &str = "<link rel=\"icon\" href=\"data:,\">";

const CSS: &str = r#"
:root{--ok:#1a7f37;--bad:#cf222e;--err:#9a6700;--skip:#6e7781;--flaky:#8250df;--line:#d0d7de;--bg:#f6f8fa}
*{box-sizing:border-box}
body{font:14px/1.45 -apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:0;color:#1f2328}
main{max-width:1200px;margin:0 auto;padding:16px}
h1{font-size:22px;margin:8px 0} h2{font-size:18px;margin:24px 0 8px;border-bottom:1px solid var(--line);padding-bottom:4px}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px}
pre{background:var(--bg);padding:8px;overflow:auto;white-space:pre-wrap;word-break:break-word;max-height:480px}
.status{display:inline-block;padding:2px 10px;border-radius:12px;color:#fff;font-weight:600}
.s-passed{background:var(--ok)}.s-failed{background:var(--bad)}.s-errored{background:var(--err)}.s-running,.s-reporting,.s-pending{background:var(--skip)}
.totals{display:flex;flex-wrap:wrap;gap:8px;margin:12px 0;padding:0}
.totals div{border:1px solid var(--line);border-radius:6px;padding:6px 12px;min-width:90px}
.totals dt{font-size:12px;color:#656d76}.totals dd{margin:0;font-size:20px;font-weight:600}
table{border-collapse:collapse;width:100%}th,td{border-bottom:1px solid var(--line);padding:4px 6px;text-align:left;vertical-align:top}
th{background:var(--bg)}td.num,th.num{text-align:right}
.o-passed{color:var(--ok)}.o-failed{color:var(--bad)}.o-error{color:var(--err)}.o-skipped{color:var(--skip)}.o-flaky{color:var(--flaky)}
details{border:1px solid var(--line);border-radius:6px;margin:6px 0;padding:4px 8px}
summary{cursor:pointer;word-break:break-word}
.muted{color:#656d76}
svg .actual.passed{fill:var(--ok)}svg .actual.failed{fill:var(--bad)}svg .actual.errored{fill:var(--err)}
svg .planned{fill:#8c959f}svg text{font-size:10px;fill:#656d76}svg .grid{stroke:var(--line)}
.sh-passed{color:var(--ok)}.sh-failed{color:var(--bad)}.sh-errored{color:var(--err)}.sh-pending{color:var(--skip)}
.filters{display:flex;gap:8px;margin:8px 0}.filters input{flex:1;padding:4px}
"#;

// Kept small and dependency-free: filter the all-tests table by text and
// outcome. Strict mode, and it tolerates missing elements.
const JS: &str = r#"
"use strict";
(function () {
  var q = document.getElementById("test-filter");
  var sel = document.getElementById("outcome-filter");
  var count = document.getElementById("filter-count");
  var table = document.getElementById("all-tests");
  if (!q || !sel || !count || !table) { return; }
  var rows = table.tBodies[0] ? table.tBodies[0].rows : [];
  function apply() {
    var text = q.value.toLowerCase();
    var outcome = sel.value;
    var shown = 0;
    for (var i = 0; i < rows.length; i++) {
      var row = rows[i];
      var ok = (outcome === "" || row.getAttribute("data-outcome") === outcome) &&
        (text === "" || row.textContent.toLowerCase().indexOf(text) !== -1);
      row.hidden = !ok;
      if (ok) { shown++; }
    }
    count.textContent = String(shown);
  }
  q.addEventListener("input", apply);
  sel.addEventListener("change", apply);
})();
"#;

/// Writes the report. The page is built in memory (its every list is
/// capped) and `out` sees one write.
pub fn render<W: Write>(input: &ReportInput<'_>, out: &mut W) -> io::Result<()> {
    let rows = all_test_rows(input)?;
    let mut page = page(input, &rows).into_string();
    page.retain(|c| !unwanted_in_html(c));
    out.write_all(page.as_bytes())?;
    out.flush()
}

/// Control characters other than tab and line breaks, and the noncharacters
/// U+FFFE/U+FFFF, are parse errors in HTML; U+0000 is replaced by browsers
/// anyway.
fn unwanted_in_html(c: char) -> bool {
    (c.is_control() && !matches!(c, '\t' | '\n' | '\r')) || matches!(c, '\u{FFFE}' | '\u{FFFF}')
}

fn page(input: &ReportInput<'_>, rows: &[(u32, TestCase)]) -> Markup {
    let run = input.run;
    html! {
        (DOCTYPE) "\n"
        html lang="en" {
            "\n"
            head {
                "\n" meta charset="utf-8";
                "\n" meta name="viewport" content="width=device-width, initial-scale=1";
                // An empty inline icon: otherwise a browser asks the server
                // for /favicon.ico, which a report host (S3, `testexec
                // serve`) answers 404, logging a console error on every report.
                "\n" (PreEscaped(ICON_LINK))
                "\n" title { "testexec run " (run.id) " – " (run.status.as_str()) }
                "\n" style { (PreEscaped(CSS)) }
                "\n"
            }
            "\n"
            body {
                "\n"
                main {
                    "\n"
                    (header(input))
                    (history(input))
                    (failures(input))
                    (flaky(input))
                    (slowest(input))
                    (timeline(input))
                    (shard_table(input))
                    (all_tests(input, rows))
                }
                "\n" script { (PreEscaped(JS)) }
                "\n"
            }
            "\n"
        }
        "\n"
    }
}

fn header(input: &ReportInput<'_>) -> Markup {
    let run = input.run;
    let c = input.counts();
    let status = run.status.as_str();
    let errored = input
        .shards
        .iter()
        .filter(|s| s.status == ShardStatus::Errored)
        .count();
    let items: [(&str, &str, String); 8] = [
        ("total-tests", "Tests", c.tests.to_string()),
        ("total-passed", "Passed", c.passed.to_string()),
        ("total-failed", "Failed", c.failed.to_string()),
        ("total-errors", "Errors", c.errors.to_string()),
        ("total-skipped", "Skipped", c.skipped.to_string()),
        ("total-flaky", "Flaky", c.flaky.to_string()),
        (
            "run-duration",
            "Duration",
            human_duration(input.duration_secs()),
        ),
        (
            "shard-count",
            "Shards",
            if errored > 0 {
                format!("{} ({errored} errored)", input.shards.len())
            } else {
                input.shards.len().to_string()
            },
        ),
    ];
    html! {
        header {
            "\n"
            h1 {
                "Run "
                code id="run-id" data-testid="run-id" { (run.id) }
                " "
                span id="run-status" data-testid="run-status" class={ "status s-" (status) } { (status) }
            }
            "\n"
            p {
                span data-testid="repo" { (run.source.repo) }
                @if let Some(commit) = &run.source.commit {
                    " @ " code data-testid="commit" { (commit) }
                }
                @if let Some(git_ref) = &run.source.git_ref {
                    " (" (git_ref) ")"
                }
                @if !run.suite.is_empty() {
                    " · suite " b { (run.suite) }
                }
                " · tool " (input.tool_name)
            }
            "\n"
            @if let Some(error) = &run.error {
                p class="o-error" data-testid="run-error" { b { "Run error:" } " " (error) }
                "\n"
            }
            dl class="totals" {
                "\n"
                @for (id, label, value) in &items {
                    div { dt { (label) } dd id=(id) data-testid=(id) { (value) } }
                    "\n"
                }
            }
            "\n"
            // Sibling files only (see the module docs on why no absolute links).
            p class="muted" {
                "Also: " a href=(files::CTRF) { "CTRF JSON" }
                " · " a href=(files::JUNIT) { "merged JUnit" }
                " · " a href=(files::MARKDOWN) { "Markdown summary" }
            }
            "\n"
        }
        "\n"
    }
}

fn outcome_class(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Passed => "o-passed",
        Outcome::Failed => "o-failed",
        Outcome::Error => "o-error",
        Outcome::Skipped => "o-skipped",
        Outcome::Flaky => "o-flaky",
    }
}

fn failures(input: &ReportInput<'_>) -> Markup {
    let count = input.digest.failure_count;
    let shown = &input.digest.failures[..input.digest.failures.len().min(MAX_FAILURES)];
    html! {
        section id="failures" {
            "\n"
            h2 { "Failures (" span data-testid="failure-count" { (count) } ")" }
            "\n"
            @if count == 0 {
                p class="muted" { "No failures." }
                "\n"
            }
            @for (shard, case) in shown {
                details class="failure" data-testid="failure" {
                    summary {
                        b { (ReportInput::display_name(case)) }
                        " "
                        span class=(outcome_class(case.outcome)) { (case.outcome.as_str()) }
                        @if let Some(location) = ReportInput::location(case) {
                            " · " code { (location) }
                        }
                        " · shard " (shard) " · " (human_duration(case.duration_secs))
                    }
                    "\n"
                    @if let Some(message) = &case.message {
                        pre class="message" { (message) }
                        "\n"
                    }
                    @if let Some(details) = &case.details {
                        pre class="details" { (details) }
                        "\n"
                    }
                    @for (label, text) in [("stdout", &case.system_out), ("stderr", &case.system_err)] {
                        @if let Some(text) = text {
                            details { summary { (label) } pre { (text) } }
                            "\n"
                        }
                    }
                }
                "\n"
            }
            @if count > shown.len() as u64 {
                p class="muted" {
                    (count - shown.len() as u64)
                    " more failures are not shown here; all are in the CTRF JSON and the merged JUnit."
                }
                "\n"
            }
        }
        "\n"
    }
}

/// The four history groups, new failures first (each held list is at
/// most `triage::MAX_LISTED` long).
fn history(input: &ReportInput<'_>) -> Markup {
    let Some(t) = input.triage else {
        return html! {};
    };
    html! {
        section id="history" data-testid="history" {
            "\n"
            h2 { "Test history" }
            "\n"
            @for ((key, title, meaning), list) in GROUPS.iter().zip(t.groups()) {
                div class="group" data-testid=(format!("group-{key}")) {
                    h3 { (title) " (" span data-testid=(format!("{key}-count")) { (list.len()) } ")" }
                    p class="muted" { (meaning) }
                    @if !list.is_empty() {
                        table {
                            tr { th { "Test" } th { "Now" } th { "Was" } th { "Last runs" } th { "Owners" } }
                            @for test in list.iter() {
                                tr data-testid=(format!("{key}-row")) {
                                    td { (test.id) }
                                    td { span class=(outcome_class(test.outcome)) { (test.outcome.as_str()) } }
                                    td { (test.class_before.as_str()) }
                                    td { code { (test.recent) } }
                                    td { (test.owners.join(" ")) }
                                }
                            }
                        }
                    }
                }
                "\n"
            }
        }
        "\n"
    }
}

fn flaky(input: &ReportInput<'_>) -> Markup {
    let count = input.digest.flaky_count;
    if count == 0 {
        return html! {};
    }
    let shown = &input.digest.flaky[..input.digest.flaky.len().min(MAX_FLAKY)];
    html! {
        section id="flaky" {
            "\n"
            h2 { "Flaky tests (" span data-testid="flaky-count" { (count) } ")" }
            "\n"
            @for (shard, case) in shown {
                details class="flaky" data-testid="flaky" {
                    summary {
                        b { (ReportInput::display_name(case)) }
                        " · passed on attempt " (case.retries.len() + 1) " · shard " (shard)
                    }
                    ol {
                        "\n"
                        @for attempt in &case.retries {
                            li {
                                span class=(outcome_class(attempt.outcome)) { (attempt.outcome.as_str()) }
                                @if let Some(d) = attempt.duration_secs {
                                    " · " (human_duration(d))
                                }
                                @if let Some(m) = &attempt.message {
                                    pre { (m) }
                                }
                                @if let Some(d) = &attempt.details {
                                    pre { (d) }
                                }
                            }
                            "\n"
                        }
                        li { span class="o-passed" { "passed" } " · " (human_duration(case.duration_secs)) }
                    }
                }
                "\n"
            }
            @if count > shown.len() as u64 {
                p class="muted" { (count - shown.len() as u64) " more flaky tests are in the CTRF JSON." }
                "\n"
            }
        }
        "\n"
    }
}

fn slowest(input: &ReportInput<'_>) -> Markup {
    let slowest = &input.digest.slowest[..input.digest.slowest.len().min(SLOWEST)];
    if slowest.is_empty() {
        return html! {};
    }
    html! {
        section id="slowest" {
            "\n"
            h2 { "Slowest tests" }
            "\n"
            table data-testid="slowest" {
                thead { tr { th { "Test" } th class="num" { "Duration" } th { "Outcome" } th class="num" { "Shard" } } }
                tbody {
                    "\n"
                    @for (shard, case) in slowest {
                        tr {
                            td { (ReportInput::display_name(case)) }
                            td class="num" { (human_duration(case.duration_secs)) }
                            td class=(outcome_class(case.outcome)) { (case.outcome.as_str()) }
                            td class="num" { (shard) }
                        }
                        "\n"
                    }
                }
            }
            "\n"
        }
        "\n"
    }
}

fn shard_secs(s: &ShardRecord) -> Option<f64> {
    match (s.started_ms, s.finished_ms) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a) as f64 / 1000.0),
        _ => None,
    }
}

/// One row per shard: the actual bar spans started → finished relative to
/// the run start; a thin grey bar under it is the planned estimate from the
/// same start, so imbalance and misestimates are visible at a glance.
fn timeline(input: &ReportInput<'_>) -> Markup {
    if input.shards.is_empty() {
        return html! {};
    }
    const LABEL: f64 = 60.0;
    const WIDTH: f64 = 1000.0;
    const TOP: f64 = 16.0;
    let start = input.start_ms();
    let offset = |ms: Option<u64>| ms.map(|m| m.saturating_sub(start) as f64 / 1000.0);
    // The span covers both what happened and what was planned.
    let span = input
        .shards
        .iter()
        .map(|s| offset(s.started_ms).unwrap_or(0.0) + secs(s.estimated_secs))
        .fold(input.duration_secs(), f64::max)
        .max(0.001);
    let x = |t: f64| LABEL + (t / span * WIDTH).clamp(0.0, WIDTH);
    // Many shards get thinner rows and a label on every 10th, so a
    // 1,000-shard run stays a scrollable picture rather than a wall.
    let (row_h, actual_y, actual_h, planned_y, planned_h, label_every) =
        if input.shards.len() <= 200 {
            (16.0, 1.0, 9, 11.0, 3, 1)
        } else {
            (8.0, 1.0, 5, 6.0, 2, 10)
        };
    let height = TOP + row_h * input.shards.len() as f64;
    let durations: Vec<f64> = input.shards.iter().filter_map(shard_secs).collect();
    // Longest and mean shard, and mean / longest as a percentage.
    let balance = (!durations.is_empty()).then(|| {
        let max = durations.iter().copied().fold(0.0, f64::max);
        let mean = durations.iter().sum::<f64>() / durations.len() as f64;
        let balance = if max > 0.0 { mean / max * 100.0 } else { 100.0 };
        (max, mean, balance)
    });
    html! {
        section id="timeline" {
            "\n"
            h2 { "Shard timeline" }
            "\n"
            @if let Some((max, mean, balance)) = balance {
                p class="muted" {
                    "Longest shard " (human_duration(max)) ", mean " (human_duration(mean))
                    ": balance " b data-testid="balance" { (format_args!("{balance:.0}%")) }
                    " (mean / longest). Coloured bars: actual; grey: planned."
                }
                "\n"
            }
            svg data-testid="timeline"
                viewBox=(format_args!("0 0 {:.0} {height:.0}", LABEL + WIDTH + 10.0))
                width="100%" role="img" aria-label="Shard timeline" {
                "\n"
                @for tick in 0..=4 {
                    @let t = span * f64::from(tick) / 4.0;
                    @let tx = format!("{:.1}", x(t));
                    // Keep the first and last labels inside the drawing.
                    @let anchor = match tick {
                        0 => "start",
                        4 => "end",
                        _ => "middle",
                    };
                    line class="grid" x1=(tx) y1=(TOP) x2=(tx) y2=(format_args!("{height:.0}")) {}
                    text x=(tx) y="11" text-anchor=(anchor) { (human_duration(t)) }
                    "\n"
                }
                @for (row, shard) in input.shards.iter().enumerate() {
                    @let y = TOP + row_h * row as f64;
                    @let begin = offset(shard.started_ms).unwrap_or(0.0);
                    @let planned = secs(shard.estimated_secs);
                    g data-shard=(shard.id.index) {
                        @if row % label_every == 0 {
                            text x="0" y=(format_args!("{:.0}", y + actual_y + f64::from(actual_h))) {
                                "#" (shard.id.index)
                            }
                            "\n"
                        }
                        rect class="planned"
                            x=(format_args!("{:.1}", x(begin)))
                            y=(format_args!("{:.0}", y + planned_y))
                            width=(format_args!("{:.1}", (x(begin + planned) - x(begin)).max(0.5)))
                            height=(planned_h) {
                            title { "shard " (shard.id.index) " planned " (human_duration(planned)) }
                        }
                        "\n"
                        @if let (Some(actual), Some(_)) = (shard_secs(shard), shard.started_ms) {
                            rect class={ "actual " (shard.status.as_str()) }
                                x=(format_args!("{:.1}", x(begin)))
                                y=(format_args!("{:.0}", y + actual_y))
                                width=(format_args!("{:.1}", (x(begin + actual) - x(begin)).max(0.5)))
                                height=(actual_h) {
                                title {
                                    "shard " (shard.id.index) " " (shard.status.as_str()) ": "
                                    (human_duration(actual)) " (" (shard.counts.tests) " tests), planned "
                                    (human_duration(planned))
                                }
                            }
                            "\n"
                        }
                    }
                    "\n"
                }
            }
            "\n"
        }
        "\n"
    }
}

fn shard_table(input: &ReportInput<'_>) -> Markup {
    if input.shards.is_empty() {
        return html! {};
    }
    html! {
        section id="shards" {
            "\n"
            h2 { "Shards" }
            "\n"
            table data-testid="shards" {
                thead {
                    tr {
                        th class="num" { "Shard" } th { "Status" } th class="num" { "Tests" }
                        th class="num" { "Files" } th class="num" { "Duration" }
                        th class="num" { "Planned" } th { "Log" } th { "Error" }
                    }
                }
                tbody {
                    "\n"
                    @for shard in input.shards {
                        tr {
                            td class="num" { (shard.id.index) }
                            td class={ "sh-" (shard.status.as_str()) } { (shard.status.as_str()) }
                            td class="num" { (shard.counts.tests) }
                            td class="num" { (shard.file_count) }
                            td class="num" {
                                @if let Some(actual) = shard_secs(shard) {
                                    (human_duration(actual))
                                } @else {
                                    "–"
                                }
                            }
                            td class="num" { (human_duration(shard.estimated_secs)) }
                            td {
                                // The log's blob key relative to `runs/<id>/report/`.
                                @if let Some(a) = shard.attempt {
                                    a href={ "../shards/" (shard.id.index) "/attempt-" (a) "/log.txt" } { "log" }
                                }
                            }
                            td { (shard.error.as_deref().unwrap_or("")) }
                        }
                        "\n"
                    }
                }
            }
            "\n"
        }
        "\n"
    }
}

/// The rows of the all-tests table: failures first so the cap never hides
/// them, then flaky, skipped, passed; within an outcome, input order. One
/// pass per outcome rank until the table is full; rows are held without
/// their texts.
fn all_test_rows(input: &ReportInput<'_>) -> io::Result<Vec<(u32, TestCase)>> {
    let rank = |o: Outcome| match o {
        Outcome::Failed | Outcome::Error => 0,
        Outcome::Flaky => 1,
        Outcome::Skipped => 2,
        Outcome::Passed => 3,
    };
    let c = input.counts();
    // Cases of each rank: a pass is skipped when there are none.
    let present = [c.failed + c.errors, c.flaky, c.skipped, c.passed];
    let mut rows = Vec::new();
    for (r, &cases) in present.iter().enumerate() {
        if rows.len() >= MAX_TEST_ROWS {
            break;
        }
        if cases == 0 {
            continue;
        }
        input.cases.for_each(&mut |_, shard, case| {
            if rows.len() < MAX_TEST_ROWS && rank(case.outcome) == r {
                rows.push((shard, without_texts(case)));
            }
            Ok(())
        })?;
    }
    Ok(rows)
}

fn all_tests(input: &ReportInput<'_>, rows: &[(u32, TestCase)]) -> Markup {
    let total = input.counts().tests;
    let shown = rows.len();
    html! {
        section id="tests" {
            "\n"
            h2 { "All tests (" span data-testid="test-count" { (total) } ")" }
            "\n"
            div class="filters" {
                input id="test-filter" type="search" placeholder="Filter by name, file or message" aria-label="Filter tests";
                select id="outcome-filter" aria-label="Outcome" {
                    option value="" { "all outcomes" }
                    "\n"
                    @for o in [Outcome::Failed, Outcome::Error, Outcome::Flaky, Outcome::Skipped, Outcome::Passed] {
                        option value=(o.as_str()) { (o.as_str()) }
                        "\n"
                    }
                }
                span class="muted" { span id="filter-count" { (shown) } " shown" }
            }
            "\n"
            @if (shown as u64) < total {
                p class="muted" data-testid="rows-capped" {
                    "Showing " (shown) " of " (total)
                    " tests (failures first); every test is in the CTRF JSON (" a href=(files::CTRF) { (files::CTRF) }
                    ") and the merged JUnit (" a href=(files::JUNIT) { (files::JUNIT) } ")."
                }
                "\n"
            }
            table id="all-tests" data-testid="all-tests" {
                thead {
                    tr {
                        th { "Test" } th { "File" } th { "Outcome" }
                        th class="num" { "Duration" } th class="num" { "Shard" }
                    }
                }
                tbody {
                    "\n"
                    @for (shard, case) in rows {
                        tr data-outcome=(case.outcome.as_str()) {
                            td { (ReportInput::display_name(case)) }
                            td { (ReportInput::location(case).unwrap_or_default()) }
                            td class=(outcome_class(case.outcome)) { (case.outcome.as_str()) }
                            td class="num" { (human_duration(case.duration_secs)) }
                            td class="num" { (shard) }
                        }
                        "\n"
                    }
                }
            }
            "\n"
        }
        "\n"
    }
}
