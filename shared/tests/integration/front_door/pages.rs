//! The pages and their JSON as a browser and a script meet them over TCP:
//! the run list's filters, cursor and audit trail, and a test's page.

use super::*;
use testexec::app::messages::keys;
use testexec::app::ports::RunStore;
use testexec::domain::history::{HistoryEntry, HistoryScope, TestHistory};
use testexec::domain::model::{Outcome, RunId, RunStatus};
use testexec::testkit::contract::{run_id_at, sample_run};

async fn get(addr: SocketAddr, path: &str) -> (u16, Value) {
    over_tcp(addr, &req("GET", path, &[], b"")).await
}

async fn get_html(addr: SocketAddr, path: &str) -> (u16, String) {
    let response = reqwest::get(format!("http://{addr}{path}")).await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// Every `attr="..."` value in `html`, in order (maud writes attributes
/// with double quotes and escapes `&` as `&amp;`).
fn attr_values(html: &str, attr: &str) -> Vec<String> {
    let needle = format!("{attr}=\"");
    html.match_indices(&needle)
        .map(|(i, _)| {
            let rest = &html[i + needle.len()..];
            rest[..rest.find('"').unwrap()].replace("&amp;", "&")
        })
        .collect()
}

/// The run ids of the rows on a runs page, top to bottom.
fn row_ids(html: &str) -> Vec<String> {
    attr_values(html, "data-run")
}

/// The href of the element tagged `data-testid=testid`, if there is one.
fn href_of(html: &str, testid: &str) -> Option<String> {
    let at = html.find(&format!("data-testid=\"{testid}\""))?;
    let start = html[..at].rfind('<')?;
    attr_values(&html[start..at], "href").pop()
}

/// 23 runs, oldest first: suites alternate, every third is on a feature
/// branch, every fourth has passed; the rest are running.
async fn seed_runs(f: &Fixture) -> Vec<testexec::domain::model::Run> {
    let base = 1_760_000_000_000;
    let mut runs = Vec::new();
    for i in 0..23u64 {
        let (mut run, shards) = sample_run(run_id_at(base + i * 60_000), 2);
        run.suite = if i % 2 == 0 { "unit" } else { "e2e" }.into();
        if i % 3 == 0 {
            run.source.git_ref = Some("refs/heads/feature/x".into());
        }
        if i % 4 == 0 {
            run.status = RunStatus::Passed;
            run.shards_done = 2;
            run.finished_ms = Some(run.created_ms + 95_000);
        } else {
            run.shards_done = 1;
        }
        f.pipeline.store.create_run(&run, &shards).await.unwrap();
        runs.push(run);
    }
    runs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_run_list_filters_and_pages_without_skipping_or_repeating() {
    let f = fixture(true);
    let addr = f.serve(ListenOptions::default()).await;
    let runs = seed_runs(&f).await;
    let expected = |keep: &dyn Fn(&testexec::domain::model::Run) -> bool| -> Vec<String> {
        runs.iter()
            .rev()
            .filter(|r| keep(r))
            .map(|r| r.id.to_string())
            .collect()
    };

    // JSON: following `next` lists each matching run once, newest first.
    let unit_main =
        expected(&|r| r.suite == "unit" && r.source.git_ref.as_deref() == Some("refs/heads/main"));
    assert!(unit_main.len() > 3, "{unit_main:?}");
    let mut listed = Vec::new();
    let mut path = "/runs?suite=unit&branch=main&limit=3".to_string();
    for _ in 0..20 {
        let (status, body) = get(addr, &path).await;
        assert_eq!(status, 200, "{path}: {body}");
        let page = body["runs"].as_array().unwrap();
        assert!(page.len() <= 3, "{body}");
        listed.extend(page.iter().map(|r| r["id"].as_str().unwrap().to_string()));
        match body["next"].as_str() {
            Some(next) => path = format!("/runs?suite=unit&branch=main&limit=3&before={next}"),
            None => break,
        }
    }
    assert_eq!(listed, unit_main);

    let (_, passed) = get(addr, "/runs?status=passed&limit=200").await;
    let passed: Vec<String> = passed["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(passed, expected(&|r| r.status == RunStatus::Passed));
    let (_, all) = get(addr, "/runs").await;
    assert_eq!(all["runs"].as_array().unwrap().len(), runs.len());
    assert_eq!(all["next"], Value::Null, "{all}");

    // The page: the same filters, an "older" link that carries them, and
    // every matching run once across the pages.
    let e2e = expected(&|r| r.suite == "e2e");
    let mut shown = Vec::new();
    let mut path = "/?suite=e2e&limit=4".to_string();
    let mut pages = 0;
    loop {
        pages += 1;
        let (status, html) = get_html(addr, &path).await;
        assert_eq!(status, 200, "{path}: {html}");
        let ids = row_ids(&html);
        assert!(ids.len() <= 4, "{path}: {ids:?}");
        shown.extend(ids);
        match href_of(&html, "older") {
            Some(older) => {
                assert!(
                    older.contains("suite=e2e") && older.contains("limit=4"),
                    "{older}"
                );
                path = older;
            }
            None => break,
        }
        assert!(pages < 10, "the older links never end");
    }
    assert_eq!(shown, e2e);
    assert!(pages >= 3);

    // Running runs show their progress and the page reloads itself while
    // any is shown; a page of finished runs does not.
    let (_, html) = get_html(addr, "/?status=running").await;
    assert!(
        html.contains("http-equiv=\"refresh\""),
        "no refresh: {html}"
    );
    assert!(html.contains(">1/2</span>"), "no progress: {html}");
    assert_eq!(
        row_ids(&html),
        expected(&|r| r.status == RunStatus::Running)
    );
    let (_, html) = get_html(addr, "/?status=passed").await;
    assert!(!html.contains("http-equiv=\"refresh\""), "{html}");
    // Started, duration, commit and branch of a finished run.
    let first_passed = runs
        .iter()
        .rev()
        .find(|r| r.status == RunStatus::Passed)
        .unwrap();
    let started = jiff_like(first_passed.created_ms);
    assert!(html.contains(&started), "no start time {started}: {html}");
    assert!(html.contains("1m 35s"), "no duration: {html}");
    assert!(html.contains(">0123456<"), "no short commit: {html}");
    assert!(
        html.contains("href=\"/?status=passed&amp;branch=main\""),
        "no branch link: {html}"
    );
}

/// `2025-10-09 08:53:20 UTC` from epoch milliseconds, computed here
/// independently of the page's formatter (civil-from-days).
fn jiff_like(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_list_parameters_are_a_400_naming_the_parameter() {
    let f = fixture(true);
    let addr = f.serve(ListenOptions::default()).await;
    let long = "s".repeat(300);
    let cases = [
        (
            "status=bogus",
            "status",
            "running, reporting, passed, failed, errored",
        ),
        ("limit=0", "limit", "1 to 200"),
        ("limit=201", "limit", "1 to 200"),
        ("limit=ten", "limit", "1 to 200"),
        ("before=yesterday", "before", "`next`"),
        (
            "stauts=passed",
            "stauts",
            "status, branch, suite, before, limit",
        ),
        ("status=passed&status=failed", "status", "once"),
        ("branch=a%01b", "branch", "control"),
        (&format!("suite={long}"), "suite", "at most"),
    ];
    for (query, param, hint) in cases {
        for path in ["/runs", "/"] {
            let (status, body) = get(addr, &format!("{path}?{query}")).await;
            assert_eq!(status, 400, "{path}?{query}: {body}");
            let error = body["error"].as_str().unwrap_or_default();
            assert!(
                error.contains(param) && error.contains(hint),
                "{path}?{query}: {error}"
            );
        }
    }
    // Empty values are no filter (what a cleared filter link sends).
    let (status, _) = get(addr, "/runs?status=&branch=&suite=").await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_run_shows_who_sent_it_and_which_delivery() {
    let f = fixture(true);
    let addr = f.serve(ListenOptions::default()).await;
    let push = workspace_file("fixtures/github/octokit-push-with-new-branch.payload.json");
    let payload: Value = serde_json::from_slice(&push).unwrap();
    let sender = payload["sender"]["login"].as_str().unwrap();
    let (status, answer) = over_tcp(addr, &signed_push(&push, SECRET)).await;
    assert_eq!(status, 202, "{answer}");
    let run_id = answer["run_id"].as_str().unwrap().to_string();
    // The trigger runs it; with no GitHub source configured the run is
    // recorded as errored, carrying the request's origin.
    f.push_queued_trigger_jobs(addr).await;
    let (_, list) = get(addr, "/runs").await;
    let run = &list["runs"][0];
    assert_eq!(run["id"], run_id.as_str(), "{list}");
    assert_eq!(run["origin"]["kind"], "git_hub", "{run}");
    assert_eq!(run["origin"]["event"], "push");
    assert_eq!(run["origin"]["sender"], sender);
    assert_eq!(
        run["origin"]["delivery"],
        "72d3162e-cc78-11e3-81ab-4c9367dc0958"
    );

    let (_, html) = get_html(addr, "/").await;
    assert_eq!(row_ids(&html), [run_id]);
    assert!(
        html.contains(&format!(
            "<span data-testid=\"run-sender\">@{sender}</span>"
        )),
        "{html}"
    );
    assert!(
        html.contains("<span data-testid=\"run-trigger\">push</span>"),
        "{html}"
    );
    assert!(
        html.contains("72d3162e-cc78-11e3-81ab-4c9367dc0958"),
        "{html}"
    );
    let sha = payload["after"].as_str().unwrap();
    assert!(
        html.contains(&format!("title=\"{sha}\">{}<", &sha[..7])),
        "{html}"
    );
}

/// A test's kept results: `pattern` letters, one run each, a minute apart.
fn history(id: &str, pattern: &str, runs: &[RunId], file: Option<&str>) -> TestHistory {
    let mut h = TestHistory::new(id);
    for (i, (c, run)) in pattern.chars().zip(runs).enumerate() {
        h.record(HistoryEntry {
            run: run.to_string(),
            at_ms: run.timestamp_ms(),
            commit: Some(format!("{i:040x}")),
            branch: Some(if i % 2 == 0 { "main" } else { "feature/y" }.into()),
            outcome: match c {
                'F' => Outcome::Failed,
                'M' => Outcome::Flaky,
                _ => Outcome::Passed,
            },
            attempts: if c == 'M' {
                vec![Outcome::Failed, Outcome::Flaky]
            } else {
                Vec::new()
            },
            duration_secs: 0.5 + i as f64 * 0.1,
        });
    }
    h.file = file.map(str::to_string);
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tests_page_shows_its_strip_trend_and_owners() {
    let f = fixture(true);
    let addr = f.serve(ListenOptions::default()).await;
    let (repo, suite) = ("acme/widgets", "unit");
    let pattern = "PPFPMPPFPPMP";
    // Recent: history older than 90 days is forgotten.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let run_ids: Vec<RunId> = (0..pattern.len() as u64)
        .map(|i| run_id_at(now_ms - 3_600_000 + i * 60_000))
        .collect();
    // The latest run: the dashboard finds the suite through it, and the
    // test's page reads its CODEOWNERS.
    let (mut latest, shards) = sample_run(*run_ids.last().unwrap(), 1);
    latest.suite = suite.into();
    f.pipeline.store.create_run(&latest, &shards).await.unwrap();
    f.pipeline
        .ports
        .blobs
        .put(
            &keys::history_context(latest.id),
            serde_json::to_vec(&json!({ "codeowners": "*.md @docs\ntests/ @acme/qa\n" })).unwrap(),
            "application/json",
        )
        .await
        .unwrap();
    let id = "tests.test_api::test_retry [a/b?c&d]";
    f.pipeline
        .store
        .save_history(
            &HistoryScope::new(repo, suite),
            &[
                history(id, pattern, &run_ids, Some("tests/test_api.py")),
                history("tests.test_ok::test_fine", "PPPPPPPPPPPP", &run_ids, None),
            ],
        )
        .await
        .unwrap();

    // The dashboard links to the page, with the id percent-encoded.
    let (status, dashboard) = get_html(addr, "/tests").await;
    assert_eq!(status, 200);
    let links = attr_values(&dashboard, "href");
    let link = links
        .iter()
        .find(|l| l.starts_with("/test?") && l.contains("test_retry"))
        .unwrap_or_else(|| panic!("no link to the test: {links:?}\n{dashboard}"));
    assert!(link.contains("%5Ba%2Fb%3Fc%26d%5D"), "{link}");

    let (status, html) = get_html(addr, link).await;
    assert_eq!(status, 200, "{html}");
    let cells = attr_values(&html, "data-result").concat();
    assert_eq!(cells, pattern, "the strip, oldest first");
    let cell_runs = attr_values(&html, "data-run");
    let ids: Vec<String> = run_ids.iter().map(ToString::to_string).collect();
    assert_eq!(cell_runs, ids);
    let hrefs: Vec<String> = attr_values(&html, "href")
        .into_iter()
        .filter(|h| h.starts_with("/runs/"))
        .collect();
    assert_eq!(
        hrefs[..ids.len()],
        ids.iter()
            .map(|i| format!("/runs/{i}/report"))
            .collect::<Vec<_>>()[..]
    );
    let titles = attr_values(&html, "title");
    assert!(
        titles.iter().any(|t| t.contains("failed")
            && t.contains(&ids[2])
            && t.contains("commit 000000000000")
            && t.contains("branch main")),
        "{titles:?}"
    );
    assert!(html.contains("data-testid=\"duration-trend\""), "{html}");
    let points = attr_values(&html, "points").pop().unwrap();
    assert_eq!(points.split(' ').count(), pattern.len(), "{points}");
    assert!(
        html.contains("<td data-testid=\"test-class\">flaky</td>"),
        "{html}"
    );
    assert!(
        html.contains("<td data-testid=\"test-owners\">@acme/qa</td>"),
        "{html}"
    );

    // The JSON behind it.
    let api = link.replacen("/test?", "/api/test?", 1);
    let (status, view) = get(addr, &api).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["id"], id);
    assert_eq!(view["class"], "flaky");
    assert_eq!(view["owners"], json!(["@acme/qa"]));
    let results: String = view["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["result"].as_str().unwrap())
        .collect();
    assert_eq!(results, pattern);
    assert_eq!(view["history"][4]["attempts"], json!(["failed", "flaky"]));

    // Unknown tests, and questions that are not one.
    let (status, html) = get_html(addr, "/test?repo=acme/widgets&suite=unit&test=nope::t").await;
    assert_eq!(status, 404);
    assert!(
        html.contains("data-testid=\"not-found\"") && html.contains("/tests"),
        "{html}"
    );
    let (status, body) = get(addr, "/api/test?repo=acme/widgets&suite=unit&test=nope::t").await;
    assert_eq!(status, 404);
    assert!(
        body["error"].as_str().unwrap().contains("classname::name"),
        "{body}"
    );
    let (status, body) = get(addr, "/api/test?repo=acme/widgets&suite=unit").await;
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("test: required"),
        "{body}"
    );
    let (status, body) = get(addr, "/test?repo=a&suite=b&test=c&x=1").await;
    assert_eq!(status, 400, "{body}");
}
