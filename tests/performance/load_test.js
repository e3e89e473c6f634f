// k6 load test of testexec's HTTP front door (docs/http.md), loopback only.
//
// Scenarios (ramping arrival rates, so a slow server shows as latency and
// dropped iterations instead of slowing the load down):
//   webhooks: signed GitHub `push` deliveries (HMAC-SHA256 with
//             WEBHOOK_SECRET), each queued as a run request;
//   runs:     POST /runs naming a configured repository (RUNS_REPO);
//   reads:    GET /runs, GET /runs/{id}, the report page and a report file
//             of a finished run (the first one GET /runs lists).
//
// Thresholds: the original system's targets (p95 < 500 ms, > 100 RPS,
// < 0.1 % errors) and ours (acknowledgements, i.e. the two POSTs, p99 <
// 20 ms at >= 2,000 RPS). PROFILE=full holds all of them and is the run
// docs/benchmarks.md reports. PROFILE=smoke (CI: six seconds) keeps the
// original targets as they are but asks ours at a lower rate (>= 100 ack/s,
// p99 < 100 ms): in CI, k6, the debug-built server and the other tests of
// the suite share 2 cores, where a 20 ms p99 measures the neighbours.
//
// Start the server with `--jobs 0` so the queued requests are only
// acknowledged, not run (the intake is what is measured), e.g.:
//   TESTEXEC_WEBHOOK_SECRET=bench-secret testexec serve REPO --jobs 0 --port 18431
//   k6 run -e BASE_URL=http://127.0.0.1:18431 -e RUNS_REPO=<dir name of REPO> \
//     -e WEBHOOK_SECRET=bench-secret -e PROFILE=full \
//     --summary-export summary.json tests/performance/load_test.js
import http from 'k6/http';
import crypto from 'k6/crypto';
import { check, fail } from 'k6';

const BASE = __ENV.BASE_URL || 'http://127.0.0.1:8080';
const SECRET = __ENV.WEBHOOK_SECRET || '';
const RUNS_REPO = __ENV.RUNS_REPO || 'demo';
const TOKEN = __ENV.API_TOKEN || '';
const PROFILE = __ENV.PROFILE || 'smoke';

if (!BASE.startsWith('http://127.') && !BASE.startsWith('http://localhost') && !BASE.startsWith('http://[::1]')) {
  // Load is only ever sent to this machine.
  fail(`BASE_URL must be a loopback address, not ${BASE}`);
}

// Per scenario: [start rate, [[duration, target rate], ...]] in requests/s.
const PROFILES = {
  smoke: {
    ack: [50, [['2s', 300], ['4s', 300]]],
    reads: [20, [['2s', 100], ['4s', 100]]],
    ackRate: 100,
    ackP99: 100,
  },
  full: {
    ack: [100, [['10s', 1200], ['50s', 1200]]],
    reads: [50, [['10s', 300], ['50s', 300]]],
    ackRate: 2000,
    ackP99: 20,
  },
};
const P = PROFILES[PROFILE] || fail(`unknown PROFILE ${PROFILE}`);
// ACK_RPS=N: hold N acknowledgements/s in all (half webhooks, half POST
// /runs) instead of the profile's rate, to find where the server saturates.
// The thresholds stay the profile's.
if (__ENV.ACK_RPS) {
  const half = Math.max(1, Math.round(Number(__ENV.ACK_RPS) / 2));
  P.ack = [Math.min(P.ack[0], half), P.ack[1].map(([d]) => [d, half])];
}

function ramp(exec, [startRate, stages], tags) {
  return {
    executor: 'ramping-arrival-rate',
    exec,
    startRate,
    timeUnit: '1s',
    preAllocatedVUs: 50,
    maxVUs: 400,
    stages: stages.map(([duration, target]) => ({ duration, target })),
    tags,
  };
}

export const options = {
  scenarios: {
    webhooks: ramp('webhook', P.ack, { kind: 'ack' }),
    runs: ramp('startRun', P.ack, { kind: 'ack' }),
    reads: ramp('read', P.reads, { kind: 'read' }),
  },
  thresholds: {
    // The original system's targets, over every request.
    http_req_duration: ['p(95)<500'],
    http_reqs: ['rate>100'],
    http_req_failed: ['rate<0.001'],
    // Ours: acknowledgements (webhook and POST /runs answers).
    'http_req_duration{kind:ack}': [`p(99)<${P.ackP99}`],
    'http_reqs{kind:ack}': [`rate>=${P.ackRate}`],
    checks: ['rate>0.999'],
  },
  summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(95)', 'p(99)', 'max'],
  discardResponseBodies: false,
};

const JSON_HEADERS = Object.assign(
  { 'Content-Type': 'application/json' },
  TOKEN ? { Authorization: `Bearer ${TOKEN}` } : {},
);

// A finished run to read, found once before the load starts.
export function setup() {
  // One page of the run list: {runs, next, truncated} (docs/http.md).
  const res = http.get(`${BASE}/runs?limit=200`);
  if (res.status !== 200) fail(`GET /runs answered ${res.status}`);
  const done = res.json().runs.find((r) => ['passed', 'failed', 'errored'].includes(r.status) && r.shard_count > 0);
  if (!done) fail('no finished run to read: run the suite once before the load (see the header)');
  return { run: done.id };
}

function hex40() {
  let s = '';
  for (let i = 0; i < 5; i++) s += Math.floor(Math.random() * 0xffffffff).toString(16).padStart(8, '0');
  return s;
}

export function webhook() {
  const body = JSON.stringify({
    ref: 'refs/heads/main',
    after: hex40(),
    repository: { full_name: 'acme/widgets' },
    installation: { id: 1 },
  });
  const signature = `sha256=${crypto.hmac('sha256', SECRET, body, 'hex')}`;
  const res = http.post(`${BASE}/webhooks/github`, body, {
    headers: {
      'Content-Type': 'application/json',
      'X-GitHub-Event': 'push',
      'X-GitHub-Delivery': `${__VU}-${__ITER}-${hex40().slice(0, 8)}`,
      'X-Hub-Signature-256': signature,
    },
    tags: { name: 'POST /webhooks/github' },
  });
  check(res, { 'webhook queued (202 with a run id)': (r) => r.status === 202 && !!r.json('run_id') });
}

export function startRun() {
  const res = http.post(`${BASE}/runs`, JSON.stringify({ repo: RUNS_REPO }), {
    headers: JSON_HEADERS,
    tags: { name: 'POST /runs' },
  });
  check(res, { 'run queued (202 with a run id)': (r) => r.status === 202 && !!r.json('run_id') });
}

export function read(data) {
  const pages = [
    ['GET /runs', `${BASE}/runs`],
    ['GET /runs/{id}', `${BASE}/runs/${data.run}`],
    ['GET /runs/{id}/report', `${BASE}/runs/${data.run}/report`],
    ['GET /runs/{id}/report/summary.md', `${BASE}/runs/${data.run}/report/summary.md`],
  ];
  const [name, url] = pages[__ITER % pages.length];
  const res = http.get(url, { tags: { name } });
  check(res, { 'page answered 200': (r) => r.status === 200 });
}
