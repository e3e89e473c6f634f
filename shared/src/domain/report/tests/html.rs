use super::{Rich, case, synthetic};
use crate::domain::model::{Attempt, Outcome};
use crate::domain::report::html::{ICON_LINK, MAX_TEST_ROWS, render};

fn html_of(rich: &Rich) -> String {
    let mut out = Vec::new();
    render(&rich.input(), &mut out).unwrap();
    String::from_utf8(out).expect("UTF-8")
}

/// Every value of attribute `attr` in the page.
fn attr_values<'a>(html: &'a str, attr: &str) -> Vec<&'a str> {
    let needle = format!("{attr}=\"");
    html.match_indices(&needle)
        .map(|(i, _)| {
            let rest = &html[i + needle.len()..];
            &rest[..rest.find('"').unwrap_or(rest.len())]
        })
        .collect()
}

#[test]
fn header_shows_totals_with_stable_test_ids() {
    let html = html_of(&Rich::new());
    for (id, value) in [
        ("total-tests", "6"),
        ("total-passed", "2"),
        ("total-failed", "1"),
        ("total-errors", "1"),
        ("total-skipped", "1"),
        ("total-flaky", "1"),
        ("run-duration", "2m 00s"),
        ("shard-count", "3 (1 errored)"),
    ] {
        let el = format!("id=\"{id}\" data-testid=\"{id}\">{value}</dd>");
        assert!(html.contains(&el), "missing {el}");
    }
    assert!(html.contains("data-testid=\"run-id\">01J9Z3V8K4QW5T6Y7X8C9B0N1M</code>"));
    assert!(html.contains("class=\"status s-failed\">failed</span>"));
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.trim_end().ends_with("</html>"));
}

#[test]
fn test_data_is_escaped() {
    let html = html_of(&Rich::new());
    // The only script element is ours.
    assert_eq!(
        html.matches("<script").count(),
        1,
        "an injected script survived"
    );
    assert!(html.contains("test_&lt;script&gt;alert(1)&lt;/script&gt;"));
    // maud leaves `'` as is: every attribute is double-quoted, so it is
    // harmless in text and in attribute values alike.
    assert!(html.contains("assert &lt;script&gt;alert('x')&lt;/script&gt; == 1"));
    assert!(html.contains("AssertionError &amp; &lt;b&gt;"));
    assert!(!html.contains("<b>Assertion"));
    assert!(html.contains("setup failed: &lt;boom&gt;"));
}

/// The tag names the page itself uses; anything else was injected.
const OUR_TAGS: &[&str] = &[
    "html", "head", "meta", "link", "title", "style", "body", "main", "header", "h1", "h2", "code",
    "span", "p", "b", "dl", "div", "dt", "dd", "a", "section", "details", "summary", "pre", "ol",
    "li", "table", "thead", "tbody", "tr", "th", "td", "svg", "line", "text", "g", "rect", "input",
    "select", "option", "script",
];

/// Every tag name opened or closed in `html`, outside the inline style and
/// script (whose text may hold `<`).
fn tag_names(html: &str) -> Vec<String> {
    let mut markup = String::new();
    let mut rest = html;
    for (open, close) in [("<style>", "</style>"), ("<script>", "</script>")] {
        let (a, b) = (rest.find(open).unwrap(), rest.find(close).unwrap());
        markup.push_str(&rest[..a + open.len()]);
        rest = &rest[b..];
    }
    markup.push_str(rest);
    markup
        .split('<')
        .skip(1)
        .filter(|t| !t.starts_with('!'))
        .map(|t| {
            t.trim_start_matches('/')
                .split(|c: char| !c.is_ascii_alphanumeric())
                .next()
                .unwrap_or("")
                .to_string()
        })
        .collect()
}

#[test]
fn a_hostile_test_name_is_text_everywhere_it_appears() {
    const SCRIPT: &str = "</script><script>alert(1)</script>";
    const IMG: &str = "\"><img src=x onerror=alert(1)>";
    let name = format!("test_{SCRIPT}{IMG}");
    let mut rich = Rich::new();
    // Failed: in the failures, the slowest and the all-tests table, with the
    // payload in every free-text field a failure shows.
    let mut failed = case(IMG, SCRIPT, &name, Outcome::Failed, 9.0);
    failed.file = Some(format!("tests/{IMG}.py"));
    failed.line = Some(7);
    failed.message = Some(format!("{SCRIPT}{IMG}"));
    failed.details = Some(IMG.into());
    failed.system_out = Some(SCRIPT.into());
    failed.system_err = Some(IMG.into());
    rich.cases.push((1, failed));
    // Flaky: in the flaky list, with a hostile earlier attempt.
    let mut flaky = case("s", "", &name, Outcome::Flaky, 8.0);
    flaky.retries.push(Attempt {
        outcome: Outcome::Failed,
        duration_secs: Some(1.0),
        message: Some(SCRIPT.into()),
        details: Some(IMG.into()),
    });
    rich.cases.push((0, flaky));
    rich.run.error = Some(IMG.into());
    rich.shards[2].error = Some(SCRIPT.into());
    let html = html_of(&rich);

    // No tag but ours, one script element (ours), no image, no handler.
    for tag in tag_names(&html) {
        assert!(OUR_TAGS.contains(&tag.as_str()), "injected <{tag}>");
    }
    assert_eq!(html.matches("<script").count(), 1, "one <script>");
    assert_eq!(html.matches("</script").count(), 1, "one </script>");
    assert!(!html.contains("<img"));
    assert!(
        !html.contains(IMG) && !html.contains(SCRIPT),
        "a raw payload"
    );

    // The name is there as escaped text: failures, flaky, slowest, all tests.
    let escaped = "test_&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;&quot;&gt;&lt;img src=x onerror=alert(1)&gt;";
    let shown = format!("&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;::{escaped}");
    assert_eq!(
        html.matches(&format!("<b>{shown}</b>")).count(),
        1,
        "failure summary"
    );
    assert_eq!(
        html.matches(&format!("<b>s::{escaped}</b>")).count(),
        1,
        "flaky summary"
    );
    assert_eq!(
        html.matches(&format!("<td>{shown}</td>")).count(),
        2,
        "slowest and all tests"
    );
    assert_eq!(
        html.matches(&format!("<td>s::{escaped}</td>")).count(),
        2,
        "slowest and all tests"
    );
    assert!(html.contains("<code>tests/&quot;&gt;&lt;img src=x onerror=alert(1)&gt;.py:7</code>"));
    assert!(html.contains("<pre>&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;</pre>"));
    assert!(html.contains("<b>Run error:</b> &quot;&gt;&lt;img src=x onerror=alert(1)&gt;</p>"));
}

#[test]
fn control_characters_are_dropped() {
    let html = html_of(&Rich::new());
    assert!(html.contains("<pre>stderr linewith controlchar</pre>"));
    assert!(
        !html
            .chars()
            .any(|c| (c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
                || c == '\u{FFFE}'
                || c == '\u{FFFF}')
    );
}

#[test]
fn page_is_self_contained() {
    let html = html_of(&Rich::new());
    assert!(
        attr_values(&html, "src").is_empty(),
        "no element may load anything"
    );
    let hrefs = attr_values(&html, "href");
    assert!(!hrefs.is_empty());
    for href in hrefs {
        let lower = href.to_ascii_lowercase();
        assert!(
            !(lower.starts_with("http:") || lower.starts_with("https:") || lower.starts_with("//")),
            "external link {href}"
        );
    }
    // The presigned links given in the input are not baked in.
    assert!(!html.contains("example.test"));
    for forbidden in ["@import", "url(", "<iframe", "http://", "https://"] {
        assert!(!html.contains(forbidden), "found {forbidden}");
    }
    // The only <link> is the inline, empty icon.
    assert_eq!(html.matches("<link").count(), 1, "one <link>");
    assert!(html.contains(ICON_LINK));
    assert!(html.contains("\"use strict\";"));
}

/// Without an icon in the page a browser requests /favicon.ico from the
/// report's host, gets a 404 and logs a console error (seen in Chromium on
/// `testexec serve`; cli/tests/browser.rs).
#[test]
fn head_declares_an_inline_icon_so_no_favicon_is_requested() {
    let html = html_of(&Rich::new());
    let head = &html[..html.find("</head>").expect("</head>")];
    let links = attr_values(head, "href");
    assert_eq!(links, ["data:,"], "the head links only the inline icon");
    assert!(head.contains("<link rel=\"icon\" href=\"data:,\">"));
}

#[test]
fn failures_flaky_and_shards_are_shown() {
    let html = html_of(&Rich::new());
    assert_eq!(html.matches("data-testid=\"failure\"").count(), 2);
    assert!(html.contains("data-testid=\"failure-count\">2</span>"));
    assert_eq!(html.matches("data-testid=\"flaky\"").count(), 1);
    // The flaky test shows both earlier attempts and the final pass.
    assert!(html.contains("passed on attempt 3"));
    assert!(html.contains(
        "<span class=\"o-failed\">failed</span> · 500ms<pre>timeout</pre><pre>trace 1</pre>"
    ));
    assert!(html.contains("<span class=\"o-error\">error</span> · 600ms<pre>reset</pre>"));
    assert!(html.contains("<a href=\"../shards/2/attempt-1/log.txt\">log</a>"));
    assert_eq!(html.matches("<tr data-outcome=").count(), 6);
    // Failures first in the table.
    let first_row = html.find("<tr data-outcome=").unwrap();
    assert!(html[first_row..].starts_with("<tr data-outcome=\"failed\">"));
}

#[test]
fn timeline_positions_bars_relative_to_the_run_start() {
    let html = html_of(&Rich::new());
    let svg = &html[html.find("<svg").unwrap()..html.find("</svg>").unwrap()];
    assert_eq!(svg.matches("<rect class=\"planned\"").count(), 3);
    assert_eq!(svg.matches("<rect class=\"actual").count(), 3);
    // The span is 120 s (run duration) over 1000 units after a 60-unit label:
    // shard 1 starts at 2 s → x = 60 + 2/120*1000 = 76.7, runs 98 s → 816.7.
    assert!(
        svg.contains("<rect class=\"actual failed\" x=\"76.7\" y=\"33\" width=\"816.7\""),
        "{svg}"
    );
    // Its planned 60 s from the same start: 500 units.
    assert!(
        svg.contains("<rect class=\"planned\" x=\"76.7\" y=\"43\" width=\"500.0\""),
        "{svg}"
    );
    assert!(html.contains("data-testid=\"balance\">"));
}

#[test]
fn all_tests_table_is_capped_with_a_note_and_failures_first() {
    let rich = synthetic(MAX_TEST_ROWS + 500, 4);
    let html = html_of(&rich);
    assert_eq!(html.matches("<tr data-outcome=").count(), MAX_TEST_ROWS);
    assert!(html.contains(&format!(
        "Showing {MAX_TEST_ROWS} of {} tests",
        MAX_TEST_ROWS + 500
    )));
    let failed = rich
        .cases
        .iter()
        .filter(|(_, c)| c.outcome.is_failure())
        .count();
    let first_rows: Vec<&str> = html
        .match_indices("<tr data-outcome=\"")
        .take(failed)
        .map(|(i, _)| &html[i + 18..i + 24])
        .collect();
    assert!(
        first_rows
            .iter()
            .all(|o| *o == "failed" || o.starts_with("error")),
        "{first_rows:?}"
    );
}

/// The page's script run by node against a minimal stand-in for the DOM
/// it touches: filtering by text and by outcome hides the right rows.
const FILTER_HARNESS: &str = r#"
"use strict";
const assert = require("assert");
function row(outcome, text) {
  return { hidden: false, textContent: text, getAttribute: (n) => (n === "data-outcome" ? outcome : null) };
}
const rows = [row("failed", "tests.a::x failed"), row("passed", "tests.b::y passed"), row("failed", "tests.b::z failed")];
const on = {};
const q = { value: "", addEventListener: (e, f) => { on["q" + e] = f; } };
const sel = { value: "", addEventListener: (e, f) => { on["s" + e] = f; } };
const count = { textContent: "3" };
const els = { "test-filter": q, "outcome-filter": sel, "filter-count": count, "all-tests": { tBodies: [{ rows }] } };
global.document = { getElementById: (id) => els[id] || null };
PAGE_SCRIPT
q.value = "TESTS.B"; on.qinput();
assert.deepStrictEqual(rows.map((r) => r.hidden), [true, false, false]);
assert.strictEqual(count.textContent, "2");
sel.value = "failed"; on.schange();
assert.deepStrictEqual(rows.map((r) => r.hidden), [true, true, false]);
assert.strictEqual(count.textContent, "1");
q.value = ""; sel.value = ""; on.schange();
assert.strictEqual(count.textContent, "3");
"#;

#[test]
fn inline_script_filters_rows_when_node_is_available() {
    let html = html_of(&Rich::new());
    let js = &html[html.find("<script>").unwrap() + 8..html.find("</script>").unwrap()];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("harness.js");
    std::fs::write(&path, FILTER_HARNESS.replace("PAGE_SCRIPT", js)).unwrap();
    match std::process::Command::new("node").arg(&path).output() {
        Ok(out) => assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(_) => eprintln!("node not found; skipped the JS behaviour check"),
    }
}

#[test]
fn inline_script_parses_when_node_is_available() {
    // A syntax error would be a console error on every page load. Node is on
    // the developer machines; skip quietly where it isn't.
    let html = html_of(&Rich::new());
    let js = &html[html.find("<script>").unwrap() + 8..html.find("</script>").unwrap()];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.js");
    std::fs::write(&path, js).unwrap();
    match std::process::Command::new("node")
        .arg("--check")
        .arg(&path)
        .output()
    {
        Ok(out) => assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(_) => eprintln!("node not found; skipped the JS syntax check"),
    }
}
