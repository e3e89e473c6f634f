//! The self-contained HTML report (`index.html`).
//!
//! One file with inline CSS, inline SVG and a few lines of strict-mode JS:
//! no external assets, no CDN, no web fonts, so it opens offline, from an
//! e-mail attachment or a downloaded artifact. Links point only at sibling
//! report files by relative path: presigned URLs expire (S3: 7 days at most)
//! and must not be baked into a stored page.
//!
//! Everything that comes from test data goes through [`Html`] escaping.

use std::io::{self, BufWriter, Write};

use super::{Html, ReportInput, files, human_duration, secs};
use crate::domain::model::{Outcome, ShardRecord, ShardStatus};

/// Rows of the all-tests table rendered; the rest are in the JSON and JUnit.
pub const MAX_TEST_ROWS: usize = 20_000;
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

/// Writes the report. Output is buffered internally; `out` sees large writes.
pub fn render<W: Write>(input: &ReportInput<'_>, out: &mut W) -> io::Result<()> {
    let mut w = BufWriter::with_capacity(64 * 1024, out);
    let run = input.run;
    let status = run.status.as_str();
    writeln!(
        w,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">"
    )?;
    writeln!(
        w,
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
    )?;
    // An empty inline icon: otherwise a browser asks the server for
    // /favicon.ico, which a report host (S3, `testexec serve`) answers 404,
    // logging a console error on every report.
    writeln!(w, "{ICON_LINK}")?;
    writeln!(w, "<title>testexec run {} – {}</title>", run.id, status)?;
    writeln!(w, "<style>{CSS}</style>\n</head>\n<body>\n<main>")?;
    header(input, &mut w)?;
    failures(input, &mut w)?;
    flaky(input, &mut w)?;
    slowest(input, &mut w)?;
    timeline(input, &mut w)?;
    shard_table(input, &mut w)?;
    all_tests(input, &mut w)?;
    writeln!(w, "</main>\n<script>{JS}</script>\n</body>\n</html>")?;
    w.flush()
}

fn header(input: &ReportInput<'_>, w: &mut impl Write) -> io::Result<()> {
    let run = input.run;
    let c = input.counts();
    writeln!(w, "<header>")?;
    writeln!(
        w,
        "<h1>Run <code id=\"run-id\" data-testid=\"run-id\">{}</code> <span id=\"run-status\" data-testid=\"run-status\" class=\"status s-{}\">{}</span></h1>",
        run.id,
        run.status.as_str(),
        run.status.as_str()
    )?;
    write!(
        w,
        "<p><span data-testid=\"repo\">{}</span>",
        Html(&run.source.repo)
    )?;
    if let Some(commit) = &run.source.commit {
        write!(w, " @ <code data-testid=\"commit\">{}</code>", Html(commit))?;
    }
    if let Some(git_ref) = &run.source.git_ref {
        write!(w, " ({})", Html(git_ref))?;
    }
    if !run.suite.is_empty() {
        write!(w, " · suite <b>{}</b>", Html(&run.suite))?;
    }
    writeln!(w, " · tool {}</p>", Html(input.tool_name))?;
    if let Some(error) = &run.error {
        writeln!(
            w,
            "<p class=\"o-error\" data-testid=\"run-error\"><b>Run error:</b> {}</p>",
            Html(error)
        )?;
    }
    writeln!(w, "<dl class=\"totals\">")?;
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
    for (id, label, value) in items {
        writeln!(
            w,
            "<div><dt>{label}</dt><dd id=\"{id}\" data-testid=\"{id}\">{value}</dd></div>"
        )?;
    }
    writeln!(w, "</dl>")?;
    // Sibling files only (see the module docs on why no absolute links).
    writeln!(
        w,
        "<p class=\"muted\">Also: <a href=\"{}\">CTRF JSON</a> · <a href=\"{}\">merged JUnit</a> · <a href=\"{}\">Markdown summary</a></p>",
        files::CTRF,
        files::JUNIT,
        files::MARKDOWN
    )?;
    writeln!(w, "</header>")
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

fn failures(input: &ReportInput<'_>, w: &mut impl Write) -> io::Result<()> {
    let failures = input.failures();
    writeln!(
        w,
        "<section id=\"failures\">\n<h2>Failures (<span data-testid=\"failure-count\">{}</span>)</h2>",
        failures.len()
    )?;
    if failures.is_empty() {
        writeln!(w, "<p class=\"muted\">No failures.</p>")?;
    }
    for &i in failures.iter().take(MAX_FAILURES) {
        let (shard, case) = &input.cases[i];
        write!(
            w,
            "<details class=\"failure\" data-testid=\"failure\"><summary><b>{}</b> <span class=\"{}\">{}</span>",
            Html(&ReportInput::display_name(case)),
            outcome_class(case.outcome),
            case.outcome
        )?;
        if let Some(location) = ReportInput::location(case) {
            write!(w, " · <code>{}</code>", Html(&location))?;
        }
        writeln!(
            w,
            " · shard {shard} · {}</summary>",
            human_duration(case.duration_secs)
        )?;
        if let Some(message) = &case.message {
            writeln!(w, "<pre class=\"message\">{}</pre>", Html(message))?;
        }
        if let Some(details) = &case.details {
            writeln!(w, "<pre class=\"details\">{}</pre>", Html(details))?;
        }
        for (label, text) in [("stdout", &case.system_out), ("stderr", &case.system_err)] {
            if let Some(text) = text {
                writeln!(
                    w,
                    "<details><summary>{label}</summary><pre>{}</pre></details>",
                    Html(text)
                )?;
            }
        }
        writeln!(w, "</details>")?;
    }
    if failures.len() > MAX_FAILURES {
        writeln!(
            w,
            "<p class=\"muted\">{} more failures are not shown here; all are in the CTRF JSON and the merged JUnit.</p>",
            failures.len() - MAX_FAILURES
        )?;
    }
    writeln!(w, "</section>")
}

fn flaky(input: &ReportInput<'_>, w: &mut impl Write) -> io::Result<()> {
    let flaky = input.flaky();
    if flaky.is_empty() {
        return Ok(());
    }
    writeln!(
        w,
        "<section id=\"flaky\">\n<h2>Flaky tests (<span data-testid=\"flaky-count\">{}</span>)</h2>",
        flaky.len()
    )?;
    for &i in flaky.iter().take(MAX_FLAKY) {
        let (shard, case) = &input.cases[i];
        writeln!(
            w,
            "<details class=\"flaky\" data-testid=\"flaky\"><summary><b>{}</b> · passed on attempt {} · shard {shard}</summary><ol>",
            Html(&ReportInput::display_name(case)),
            case.retries.len() + 1
        )?;
        for attempt in &case.retries {
            write!(
                w,
                "<li><span class=\"{}\">{}</span>",
                outcome_class(attempt.outcome),
                attempt.outcome
            )?;
            if let Some(d) = attempt.duration_secs {
                write!(w, " · {}", human_duration(d))?;
            }
            if let Some(m) = &attempt.message {
                write!(w, "<pre>{}</pre>", Html(m))?;
            }
            if let Some(d) = &attempt.details {
                write!(w, "<pre>{}</pre>", Html(d))?;
            }
            writeln!(w, "</li>")?;
        }
        writeln!(
            w,
            "<li><span class=\"o-passed\">passed</span> · {}</li></ol></details>",
            human_duration(case.duration_secs)
        )?;
    }
    if flaky.len() > MAX_FLAKY {
        writeln!(
            w,
            "<p class=\"muted\">{} more flaky tests are in the CTRF JSON.</p>",
            flaky.len() - MAX_FLAKY
        )?;
    }
    writeln!(w, "</section>")
}

fn slowest(input: &ReportInput<'_>, w: &mut impl Write) -> io::Result<()> {
    let slowest = input.slowest(SLOWEST);
    if slowest.is_empty() {
        return Ok(());
    }
    writeln!(w, "<section id=\"slowest\">\n<h2>Slowest tests</h2>")?;
    writeln!(
        w,
        "<table data-testid=\"slowest\"><thead><tr><th>Test</th><th class=\"num\">Duration</th><th>Outcome</th><th class=\"num\">Shard</th></tr></thead><tbody>"
    )?;
    for i in slowest {
        let (shard, case) = &input.cases[i];
        writeln!(
            w,
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"{}\">{}</td><td class=\"num\">{shard}</td></tr>",
            Html(&ReportInput::display_name(case)),
            human_duration(case.duration_secs),
            outcome_class(case.outcome),
            case.outcome
        )?;
    }
    writeln!(w, "</tbody></table>\n</section>")
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
fn timeline(input: &ReportInput<'_>, w: &mut impl Write) -> io::Result<()> {
    if input.shards.is_empty() {
        return Ok(());
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
    writeln!(w, "<section id=\"timeline\">\n<h2>Shard timeline</h2>")?;
    if !durations.is_empty() {
        let max = durations.iter().copied().fold(0.0, f64::max);
        let mean = durations.iter().sum::<f64>() / durations.len() as f64;
        let balance = if max > 0.0 { mean / max * 100.0 } else { 100.0 };
        writeln!(
            w,
            "<p class=\"muted\">Longest shard {}, mean {}: balance <b data-testid=\"balance\">{balance:.0}%</b> (mean / longest). Coloured bars: actual; grey: planned.</p>",
            human_duration(max),
            human_duration(mean)
        )?;
    }
    writeln!(
        w,
        "<svg data-testid=\"timeline\" viewBox=\"0 0 {:.0} {height:.0}\" width=\"100%\" role=\"img\" aria-label=\"Shard timeline\">",
        LABEL + WIDTH + 10.0
    )?;
    for tick in 0..=4 {
        let t = span * tick as f64 / 4.0;
        let tx = x(t);
        // Keep the first and last labels inside the drawing.
        let anchor = match tick {
            0 => "start",
            4 => "end",
            _ => "middle",
        };
        writeln!(
            w,
            "<line class=\"grid\" x1=\"{tx:.1}\" y1=\"{TOP}\" x2=\"{tx:.1}\" y2=\"{height:.0}\"/><text x=\"{tx:.1}\" y=\"11\" text-anchor=\"{anchor}\">{}</text>",
            human_duration(t)
        )?;
    }
    for (row, shard) in input.shards.iter().enumerate() {
        let y = TOP + row_h * row as f64;
        let begin = offset(shard.started_ms).unwrap_or(0.0);
        write!(w, "<g data-shard=\"{}\">", shard.id.index)?;
        if row % label_every == 0 {
            writeln!(
                w,
                "<text x=\"0\" y=\"{:.0}\">#{}</text>",
                y + actual_y + f64::from(actual_h),
                shard.id.index
            )?;
        }
        let planned = secs(shard.estimated_secs);
        writeln!(
            w,
            "<rect class=\"planned\" x=\"{:.1}\" y=\"{:.0}\" width=\"{:.1}\" height=\"{planned_h}\"><title>shard {} planned {}</title></rect>",
            x(begin),
            y + planned_y,
            (x(begin + planned) - x(begin)).max(0.5),
            shard.id.index,
            human_duration(planned)
        )?;
        if let (Some(actual), Some(_)) = (shard_secs(shard), shard.started_ms) {
            writeln!(
                w,
                "<rect class=\"actual {}\" x=\"{:.1}\" y=\"{:.0}\" width=\"{:.1}\" height=\"{actual_h}\"><title>shard {} {}: {} ({} tests), planned {}</title></rect>",
                shard.status.as_str(),
                x(begin),
                y + actual_y,
                (x(begin + actual) - x(begin)).max(0.5),
                shard.id.index,
                shard.status,
                human_duration(actual),
                shard.counts.tests,
                human_duration(planned)
            )?;
        }
        writeln!(w, "</g>")?;
    }
    writeln!(w, "</svg>\n</section>")
}

fn shard_table(input: &ReportInput<'_>, w: &mut impl Write) -> io::Result<()> {
    if input.shards.is_empty() {
        return Ok(());
    }
    writeln!(w, "<section id=\"shards\">\n<h2>Shards</h2>")?;
    writeln!(
        w,
        "<table data-testid=\"shards\"><thead><tr><th class=\"num\">Shard</th><th>Status</th><th class=\"num\">Tests</th><th class=\"num\">Files</th><th class=\"num\">Duration</th><th class=\"num\">Planned</th><th>Log</th><th>Error</th></tr></thead><tbody>"
    )?;
    for shard in input.shards {
        let actual = shard_secs(shard)
            .map(human_duration)
            .unwrap_or_else(|| "–".into());
        // The log's blob key relative to `runs/<id>/report/`.
        let log = match shard.attempt {
            Some(a) => format!(
                "<a href=\"../shards/{}/attempt-{a}/log.txt\">log</a>",
                shard.id.index
            ),
            None => String::new(),
        };
        writeln!(
            w,
            "<tr><td class=\"num\">{}</td><td class=\"sh-{}\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{actual}</td><td class=\"num\">{}</td><td>{log}</td><td>{}</td></tr>",
            shard.id.index,
            shard.status.as_str(),
            shard.status,
            shard.counts.tests,
            shard.file_count,
            human_duration(shard.estimated_secs),
            Html(shard.error.as_deref().unwrap_or(""))
        )?;
    }
    writeln!(w, "</tbody></table>\n</section>")
}

fn all_tests(input: &ReportInput<'_>, w: &mut impl Write) -> io::Result<()> {
    // Failures first so the cap never hides them, then flaky, skipped, passed.
    let rank = |o: Outcome| match o {
        Outcome::Failed | Outcome::Error => 0,
        Outcome::Flaky => 1,
        Outcome::Skipped => 2,
        Outcome::Passed => 3,
    };
    let mut order: Vec<usize> = (0..input.cases.len()).collect();
    order.sort_by_key(|&i| rank(input.cases[i].1.outcome));
    let shown = order.len().min(MAX_TEST_ROWS);
    writeln!(
        w,
        "<section id=\"tests\">\n<h2>All tests (<span data-testid=\"test-count\">{}</span>)</h2>",
        input.cases.len()
    )?;
    writeln!(
        w,
        "<div class=\"filters\"><input id=\"test-filter\" type=\"search\" placeholder=\"Filter by name, file or message\" aria-label=\"Filter tests\"><select id=\"outcome-filter\" aria-label=\"Outcome\"><option value=\"\">all outcomes</option>"
    )?;
    for o in [
        Outcome::Failed,
        Outcome::Error,
        Outcome::Flaky,
        Outcome::Skipped,
        Outcome::Passed,
    ] {
        writeln!(w, "<option value=\"{o}\">{o}</option>")?;
    }
    writeln!(
        w,
        "</select><span class=\"muted\"><span id=\"filter-count\">{shown}</span> shown</span></div>"
    )?;
    if shown < order.len() {
        writeln!(
            w,
            "<p class=\"muted\" data-testid=\"rows-capped\">Showing {shown} of {} tests (failures first); every test is in the CTRF JSON and the merged JUnit.</p>",
            order.len()
        )?;
    }
    writeln!(
        w,
        "<table id=\"all-tests\" data-testid=\"all-tests\"><thead><tr><th>Test</th><th>File</th><th>Outcome</th><th class=\"num\">Duration</th><th class=\"num\">Shard</th></tr></thead><tbody>"
    )?;
    for &i in &order[..shown] {
        let (shard, case) = &input.cases[i];
        writeln!(
            w,
            "<tr data-outcome=\"{}\"><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td class=\"num\">{}</td><td class=\"num\">{shard}</td></tr>",
            case.outcome,
            Html(&ReportInput::display_name(case)),
            Html(&ReportInput::location(case).unwrap_or_default()),
            outcome_class(case.outcome),
            case.outcome,
            human_duration(case.duration_secs)
        )?;
    }
    writeln!(w, "</tbody></table>\n</section>")
}
