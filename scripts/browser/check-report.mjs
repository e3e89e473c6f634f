#!/usr/bin/env node
// Opens testexec pages (the self-contained index.html report, the `serve`
// run list, a served report) in headless Chromium and checks them:
//
//   - no console messages of type "error", no uncaught page errors, no failed
//     requests and no HTTP error responses (the page itself or anything it loads);
//   - reads what the page shows: the report totals (data-testid="total-*",
//     run id/status, shard and test counts), the run-list rows (started,
//     duration, trigger, commit, branch, progress) or a test's page (its
//     outcome strip, class, owners and duration trend);
//   - on a report, drives the test filter (text box and outcome select) and
//     checks the visible rows and the "N shown" counter follow it, so the
//     page's script really runs.
//
// Usage: node scripts/browser/check-report.mjs URL...
// Prints one JSON line per URL: {url, title, errors, totals, runs?, test?, filter?}.
// Exit status: 0 no errors on any page, 1 errors, 2 usage or launch failure.
//
// Environment:
//   TESTEXEC_TEST_NODE_MODULES  node_modules holding playwright-core
//                               (otherwise normal resolution / NODE_PATH)
//   TESTEXEC_TEST_CHROMIUM      Chromium binary (default /usr/bin/chromium)

import { createRequire } from "node:module";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

function loadPlaywright() {
  const dir = process.env.TESTEXEC_TEST_NODE_MODULES;
  const require = createRequire(
    dir ? path.join(path.resolve(dir), "_resolve_from_here.js") : import.meta.url,
  );
  try {
    return require("playwright-core");
  } catch (e) {
    if (dir) {
      // Also try NODE_PATH / the script's own location.
      try {
        return createRequire(import.meta.url)("playwright-core");
      } catch {
        // fall through to the first error
      }
    }
    throw e;
  }
}

const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  // Without these Chromium reaches for Google services at start-up; on a
  // closed network those connections are refused and can stall or fail loads.
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

const TIMEOUT_MS = 30_000;

// Report elements read by data-testid (shared/src/report/html.rs).
const REPORT_TESTIDS = {
  tests: "total-tests",
  passed: "total-passed",
  failed: "total-failed",
  errors: "total-errors",
  skipped: "total-skipped",
  flaky: "total-flaky",
  duration: "run-duration",
  shards: "shard-count",
  run_id: "run-id",
  status: "run-status",
  test_rows: "test-count",
  failure_count: "failure-count",
  flaky_count: "flaky-count",
  // The test history groups (docs/flaky.md), when the run has history.
  new_failures: "new-failures-count",
  known_flaky: "known-flaky-count",
  quarantined: "quarantined-count",
  fixed: "fixed-count",
  // The `serve` tests dashboard (shared/src/hosts/http/dashboard.rs).
  history_tests: "tests-count",
  flakiest: "flakiest-count",
  pass_rate: "pass-rate",
};
const NUMERIC = new Set([
  "tests", "passed", "failed", "errors", "skipped", "flaky",
  "test_rows", "failure_count", "flaky_count",
  "new_failures", "known_flaky", "quarantined", "fixed",
  "history_tests", "flakiest",
]);

async function readTotals(page) {
  const raw = await page.evaluate((ids) => {
    const out = {};
    for (const [key, id] of Object.entries(ids)) {
      const el = document.querySelector(`[data-testid="${id}"]`);
      if (el) out[key] = el.textContent.trim();
    }
    return out;
  }, REPORT_TESTIDS);
  const totals = {};
  for (const [key, text] of Object.entries(raw)) {
    totals[key] = NUMERIC.has(key) && /^\d+$/.test(text) ? Number(text) : text;
  }
  return totals;
}

// The `serve` run list: one row per run, with what each cell shows.
async function readRunRows(page) {
  return page.$$eval('[data-testid="run-row"]', (rows) =>
    rows.map((row) => {
      const text = (id) => {
        const el = row.querySelector(`[data-testid="${id}"]`);
        return el ? el.textContent.trim() : null;
      };
      const tests = text("run-tests");
      const started = row.querySelector('[data-testid="run-started"]');
      return {
        run_id: row.cells[0] ? row.cells[0].textContent.trim() : null,
        status: row.getAttribute("data-status"),
        tests: tests !== null && /^\d+$/.test(tests) ? Number(tests) : null,
        started: started ? started.getAttribute("datetime") : null,
        duration: text("run-duration"),
        trigger: text("run-trigger"),
        sender: text("run-sender"),
        delivery: text("run-delivery"),
        commit: text("run-commit"),
        branch: text("run-branch"),
        suite: text("run-suite"),
        progress: text("run-progress"),
      };
    }),
  );
}

// A test's page (`serve`'s /test): its strip of results, class, owners and
// the duration trend as drawn (the polyline's points).
async function readTestPage(page) {
  if ((await page.locator('[data-testid="outcome-strip"]').count()) === 0) return undefined;
  return page.evaluate(() => {
    const text = (id) => {
      const el = document.querySelector(`[data-testid="${id}"]`);
      return el ? el.textContent.trim() : null;
    };
    const cells = Array.from(document.querySelectorAll('[data-testid="strip-cell"]'));
    const line = document.querySelector('[data-testid="duration-trend"] polyline');
    return {
      id: text("test-id"),
      class: text("test-class"),
      owners: text("test-owners"),
      strip: cells.map((c) => c.getAttribute("data-result")).join(""),
      // Each cell is drawn (a box a user can see and hover) and says what it is.
      cells_visible: cells.filter((c) => c.offsetWidth > 0 && c.offsetHeight > 0).length,
      cells_titled: cells.filter((c) => (c.getAttribute("title") || "").includes(c.getAttribute("data-run"))).length,
      trend_points: line ? line.getAttribute("points").trim().split(/\s+/).length : 0,
      history_rows: document.querySelectorAll('[data-testid="history-row"]').length,
    };
  });
}

// State of the all-tests table as a user sees it.
async function tableState(page) {
  return page.evaluate(() => {
    const rows = Array.from(document.querySelectorAll("#all-tests tbody tr"));
    const visible = rows.filter((r) => !r.hidden && r.offsetParent !== null);
    return {
      rows: rows.length,
      visible: visible.length,
      counter: document.getElementById("filter-count").textContent.trim(),
      visibleOutcomes: visible.map((r) => r.getAttribute("data-outcome")),
      visibleText: visible.map((r) => r.textContent.toLowerCase()),
      outcomes: rows.map((r) => r.getAttribute("data-outcome")),
      firstName: rows.length ? rows[0].cells[0].textContent.trim() : "",
    };
  });
}

// Types into the filter box and picks outcomes; every step must change the
// visible rows (and the counter) exactly as the filter says.
async function exerciseFilter(page, errors) {
  if ((await page.locator("#test-filter").count()) === 0) return undefined;
  const steps = [];
  const check = (label, state, expectVisible, rowOk) => {
    steps.push({ step: label, visible: state.visible, counter: state.counter });
    if (state.visible !== expectVisible) {
      errors.push(`filter ${label}: ${state.visible} rows visible, expected ${expectVisible}`);
    }
    if (state.counter !== String(state.visible)) {
      errors.push(`filter ${label}: counter says ${state.counter}, ${state.visible} rows visible`);
    }
    if (rowOk) {
      state.visibleText.forEach((text, i) => {
        if (!rowOk(text, state.visibleOutcomes[i])) {
          errors.push(`filter ${label}: visible row does not match: ${text.slice(0, 80)}`);
        }
      });
    }
  };

  const initial = await tableState(page);
  check("initial", initial, initial.rows);
  if (initial.rows === 0) return { rows: 0, steps };

  // Text filter: the first test's name (matches at least that row).
  const needle = initial.firstName.toLowerCase();
  const expectText = initial.visibleText.filter((t) => t.includes(needle)).length;
  await page.fill("#test-filter", initial.firstName);
  check(`text "${initial.firstName}"`, await tableState(page), expectText, (t) => t.includes(needle));

  // Text that matches nothing hides every row.
  await page.fill("#test-filter", "no test is called this \u2603");
  check("text (no match)", await tableState(page), 0);

  // Outcome select, text cleared: exactly the rows with that outcome.
  await page.fill("#test-filter", "");
  const present = [...new Set(initial.outcomes)];
  for (const outcome of present) {
    await page.selectOption("#outcome-filter", outcome);
    const expected = initial.outcomes.filter((o) => o === outcome).length;
    check(`outcome ${outcome}`, await tableState(page), expected, (_t, o) => o === outcome);
  }

  // Back to everything.
  await page.selectOption("#outcome-filter", "");
  check("cleared", await tableState(page), initial.rows);
  if (present.length > 1 && steps.every((s) => s.visible === initial.rows)) {
    errors.push("filter: the visible row count never changed");
  }
  return { rows: initial.rows, steps };
}

async function checkPage(context, url) {
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT_MS);
  const errors = [];
  page.on("console", (msg) => {
    if (msg.type() === "error") {
      const loc = msg.location();
      errors.push(`console error: ${msg.text()}${loc && loc.url ? ` (${loc.url}:${loc.lineNumber})` : ""}`);
    }
  });
  page.on("pageerror", (err) => errors.push(`page error: ${err.message}`));
  // A CSP violation is reported as a console error too; this names the
  // directive even when Chromium words the message differently.
  await page.addInitScript(() => {
    document.addEventListener("securitypolicyviolation", (e) => {
      console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI || "inline"}`);
    });
  });
  page.on("requestfailed", (req) => {
    errors.push(`request failed: ${req.url()} (${req.failure() ? req.failure().errorText : "?"})`);
  });
  page.on("response", (res) => {
    if (res.status() >= 400) errors.push(`HTTP ${res.status()}: ${res.url()}`);
  });

  let result = { url, title: null, errors, totals: {} };
  try {
    // An error status is recorded by the response listener.
    await page.goto(url, { waitUntil: "load", timeout: TIMEOUT_MS });
    result.title = await page.title();
    result.totals = await readTotals(page);
    const runs = await readRunRows(page);
    if (runs.length > 0 || (url.startsWith("http") && new URL(url).pathname === "/")) {
      result.runs = runs;
    }
    const test = await readTestPage(page);
    if (test) result.test = test;
    const filter = await exerciseFilter(page, errors);
    if (filter) result.filter = filter;
    // Late errors from anything the page scheduled.
    await page.waitForTimeout(100);
  } catch (e) {
    errors.push(`check failed: ${e.message.split("\n")[0]}`);
  } finally {
    await page.close().catch(() => {});
  }
  return result;
}

async function main() {
  const urls = process.argv.slice(2);
  if (urls.length === 0 || urls.some((u) => u === "-h" || u === "--help")) {
    process.stderr.write("usage: check-report.mjs URL... (file:// or http://)\n");
    return 2;
  }
  let chromium;
  try {
    ({ chromium } = loadPlaywright());
  } catch (e) {
    process.stderr.write(`check-report: cannot load playwright-core: ${e.message}\n`);
    return 2;
  }
  const executablePath = process.env.TESTEXEC_TEST_CHROMIUM || "/usr/bin/chromium";
  let failed = false;
  // A fresh browser and profile per URL: nothing one page loaded (or failed
  // to load, like a favicon) is cached and hidden from the next one.
  for (const url of urls) {
    const profile = mkdtempSync(path.join(tmpdir(), "testexec-chromium-"));
    let context;
    try {
      context = await chromium.launchPersistentContext(profile, {
        executablePath,
        headless: true,
        args: CHROMIUM_ARGS,
        timeout: 60_000,
      });
    } catch (e) {
      rmSync(profile, { recursive: true, force: true });
      process.stderr.write(`check-report: cannot launch ${executablePath}: ${e.message}\n`);
      return 2;
    }
    try {
      const result = await checkPage(context, url);
      if (result.errors.length > 0) failed = true;
      process.stdout.write(`${JSON.stringify(result)}\n`);
    } finally {
      await context.close().catch(() => {});
      rmSync(profile, { recursive: true, force: true });
    }
  }
  return failed ? 1 : 0;
}

process.exitCode = await main();
