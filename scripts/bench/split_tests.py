#!/usr/bin/env python3
"""Driver of scripts/bench/split-tests.sh: the longest shard with and without
test-level splits, on real pytest suites, beside plain pytest's totals.

Each (suite, mode) gets its own state directory: one run records the timing
history (no history yet, so whole files either way), then RUNS measured runs
are planned from it. A shard's wall is its record's finished - started (from
extracting the source to uploading the results); the run's is the run
record's finished - created.
"""
import argparse
import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

from testexec_json import run_json

SHARDS = 8
COMMAND = [
    "python", "-m", "pytest", "-q", "-p", "no:cacheprovider",
    "-o", "junit_family=xunit1", "--junitxml={junit}",
    "{files}", "{tests}", "{skip_tests}",
]


def manifest(split: bool) -> str:
    command = ", ".join(json.dumps(a) for a in COMMAND)
    return (
        f"[suites.bench]\ncommand = [{command}]\nfiles = [\"tests/test_*.py\"]\n"
        f"shards = {SHARDS}\nsplit_by_test = {'true' if split else 'false'}\n"
        "timeout_seconds = 600\n"
    )


def plain_pytest(tree: pathlib.Path, env: dict) -> dict:
    """Totals of plain pytest on the same tree, read from its JUnit."""
    with tempfile.TemporaryDirectory() as tmp:
        junit = pathlib.Path(tmp) / "plain.xml"
        subprocess.run(
            ["python", "-m", "pytest", "-q", "-p", "no:cacheprovider",
             f"--junitxml={junit}", "tests"],
            cwd=tree, env=env, stdout=subprocess.DEVNULL, check=False,
        )
        counts = {"tests": 0, "failed": 0, "skipped": 0}
        for case in ET.parse(junit).iter("testcase"):
            counts["tests"] += 1
            if case.find("failure") is not None or case.find("error") is not None:
                counts["failed"] += 1
            elif case.find("skipped") is not None:
                counts["skipped"] += 1
        return counts


def testexec_run(bin_: str, tree: pathlib.Path, state: pathlib.Path, env: dict) -> dict:
    return run_json(bin_, tree, state, ["--jobs", "1", "--shards", str(SHARDS)], env)


def totals(run: dict) -> dict:
    c = run["counts"]
    return {"tests": c["tests"], "failed": c["failed"] + c["errors"], "skipped": c["skipped"]}


def measure(args, name: str, src: pathlib.Path, split: bool, env: dict) -> dict:
    base = pathlib.Path(args.work) / "runs" / f"{name}-{'split' if split else 'whole'}"
    shutil.rmtree(base, ignore_errors=True)
    tree = base / "tree"
    shutil.copytree(src, tree)
    (tree / "testexec.toml").write_text(manifest(split))
    state = base / "state"
    testexec_run(args.bin, tree, state, env)  # records the history
    longest, walls, makespans, counts, groups = [], [], [], [], 0
    for _ in range(args.runs):
        out = testexec_run(args.bin, tree, state, env)
        run, shards, plan = out["run"], out["shards"], out["plan"]
        longest.append(max(s["finished_ms"] - s["started_ms"] for s in shards) / 1000)
        walls.append((run["finished_ms"] - run["created_ms"]) / 1000)
        makespans.append(plan["estimated_makespan_secs"])
        counts.append(totals(run))
        groups = sum(u["kind"] == "tests" for s in plan["shards"] for u in s["units"])
    return {
        "longest": statistics.median(longest),
        "longest_all": longest,
        "wall": statistics.median(walls),
        "planned": statistics.median(makespans),
        "shards": len(plan["shards"]),
        "groups": groups,
        "counts": counts,
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--bin", required=True)
    p.add_argument("--venv", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--suite", action="append", required=True, help="name=tree")
    args = p.parse_args()
    env = dict(os.environ)
    env["PATH"] = f"{args.venv}/bin:{env['PATH']}"
    env.pop("PYTHONPATH", None)
    print(f"load before: {os.getloadavg()[0]:.2f}; {args.runs} measured runs per mode; binary {args.bin}")
    print("| suite | plain pytest tests | mode | shards | test groups | planned makespan s | longest shard s (median) | run wall s (median) | totals = plain |")
    print("|---|---|---|---|---|---|---|---|---|")
    ok = True
    for spec in args.suite:
        name, tree = spec.split("=", 1)
        tree = pathlib.Path(tree)
        plain = plain_pytest(tree, env)
        results = {}
        for split in (False, True):
            r = measure(args, name, tree, split, env)
            results[split] = r
            same = all(c == plain for c in r["counts"])
            ok &= same
            print(
                f"| {name} | {plain['tests']} | {'split' if split else 'whole files'} | {r['shards']} | {r['groups']} "
                f"| {r['planned']:.2f} | {r['longest']:.2f} ({', '.join(f'{x:.2f}' for x in r['longest_all'])}) "
                f"| {r['wall']:.2f} | {'yes' if same else 'NO: ' + json.dumps(r['counts'][0]) + ' vs ' + json.dumps(plain)} |"
            )
        ratio = results[True]["longest"] / results[False]["longest"]
        print(f"| {name} | | **longest shard split ÷ whole** | | | | **{ratio:.2f}** | | |")
    print(f"load after: {os.getloadavg()[0]:.2f}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
