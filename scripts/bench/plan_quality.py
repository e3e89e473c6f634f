#!/usr/bin/env python3
"""Plan quality (makespan / lower bound) of testexec against peer algorithms.

Every algorithm sees the same per-file durations: they are exported once per
dataset by `testexec plan --from-timings --shards 1 --format json` and written
as a testexec timings history (`target/bench/durations-<name>.json`), which is
both what testexec plans from and what the Python algorithms read.

Peers:
  least_duration, duration_based_chunks  pytest-split's own algorithm classes
                                         (pytest_split.algorithms), called with
                                         one "item" per file
  count                                  equal number of files per shard, in
                                         path order (Jest/Playwright --shard)
  round_robin                            file i goes to shard i mod N

Usage: scripts/bench/plan_quality.py TESTEXEC_BIN NAME=REPORT.xml ...
(run with the venv from scripts/bench/jinja2-junit.sh, which has pytest-split)
"""

import json
import math
import os
import subprocess
import sys

from pytest_split.algorithms import Algorithms

SHARDS = [2, 4, 8, 16, 32, 64]
OUT = os.path.join(os.path.dirname(__file__), "..", "..", "target", "bench")


class Item:
    """The one attribute pytest-split reads from a pytest item."""

    def __init__(self, nodeid):
        self.nodeid = nodeid


def testexec_json(binary, *args):
    out = subprocess.run([binary, "plan", "--from-timings", "--format", "json", *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def export_durations(binary, name, report):
    plan = testexec_json(binary, "--timings", report, "--shards", "1")
    files = {u["path"]: u["estimated_secs"] for s in plan["shards"] for u in s["units"]}
    path = os.path.abspath(os.path.join(OUT, f"durations-{name}.json"))
    with open(path, "w") as f:
        json.dump({"version": 1, "files": files}, f, indent=1, sort_keys=True)
    return files, path


def makespan_of_groups(groups):
    return max((g.duration for g in groups), default=0.0)


def peers(files, n):
    paths = sorted(files)
    items = [Item(p) for p in paths]
    out = {}
    for algo in (Algorithms.least_duration, Algorithms.duration_based_chunks):
        out[algo.name] = makespan_of_groups(algo.value(n, items, dict(files)))
    per = math.ceil(len(paths) / n)
    out["count"] = max(sum(files[p] for p in paths[i : i + per]) for i in range(0, len(paths), per))
    rr = [0.0] * n
    for i, p in enumerate(paths):
        rr[i % n] += files[p]
    out["round_robin"] = max(rr)
    return out


def main():
    binary = sys.argv[1]
    datasets = [a.split("=", 1) for a in sys.argv[2:]]
    columns = ["testexec", "testexec+split", "least_duration", "duration_based_chunks", "count", "round_robin"]
    worst = {}
    for name, report in datasets:
        files, hist = export_durations(binary, name, report)
        total = sum(files.values())
        largest = max(files.values())
        print(f"\n### {name}: {len(files)} files, {total:.1f} s total, largest file {largest:.1f} s\n")
        print("| N | lower bound (s) | " + " | ".join(columns) + " |")
        print("|---:|---:|" + "---:|" * len(columns))
        for n in SHARDS:
            lb = max(total / n, largest)
            ours = testexec_json(binary, "--timings", hist, "--shards", str(n))["estimated_makespan_secs"]
            # Same file totals, plus per-test history so big files may split.
            split = testexec_json(binary, "--timings", report, "--shards", str(n), "--split-tests", "on")["estimated_makespan_secs"]
            row = {"testexec": ours, "testexec+split": split, **peers(files, n)}
            ratios = {k: row[k] / lb for k in columns}
            best_peer = min(ratios[k] for k in columns[2:])
            worst[name, n] = (ratios["testexec"], best_peer)
            cells = []
            for k in columns:
                mark = "**" if k == "testexec" and ratios[k] <= best_peer + 1e-12 else ""
                cells.append(f"{mark}{ratios[k]:.4f}{mark}")
            print(f"| {n} | {lb:.2f} | " + " | ".join(cells) + " |")
    print("\nratio = makespan / max(total/N, largest file); 1.0000 is provably optimal for whole files.")
    print("testexec+split may go below 1.0: split files are no longer indivisible.")
    losses = [(k, v) for k, v in worst.items() if v[0] > v[1] + 1e-12]
    above = [(k, v) for k, v in worst.items() if v[0] > 1.03]
    print(f"\ntestexec worse than the best peer: {len(losses)} of {len(worst)} cells {losses}")
    print(f"testexec above 1.03: {len(above)} of {len(worst)} cells {above}")


if __name__ == "__main__":
    main()
