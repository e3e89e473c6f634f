#!/usr/bin/env python3
"""Queue mode against the static plan (scripts/bench/queue-mode.sh).

The suite: 96 files of one test each whose durations are drawn from a
seeded log-normal (a few slow files, many fast ones), run by the fake runner
(shared/tests/fixtures/fake-suite/runner.py), whose `hang` test sleeps its
stated seconds: the work is real wall time, not CPU, so 8 workers on a small
machine measure scheduling, not contention.

Scenarios, each at 8 workers (`shards = 8`, `--jobs 8`):
  (a) no timing history: the static plan can only split the files evenly
      by count;
  (b) a history recorded from one run, then every file's duration changed
      by a seeded factor in [0.5, 1.5]: the static plan balances stale times.

Modes: `static`; `queue` (batches no smaller than 2 × the start-up of a
batch the history measured, `plan::queue_plan`); `queue-nofloor`, the same
binary with the measured start-up removed from the history before the
timed run, i.e. queue mode as it was before the floor (in (a) there is no
history, so the two queue modes are the same plan). `queue-k1` and
`queue-k4` scale the measured start-up in the history by 0.5 and 2 before
the timed run: the floor at 1 × and 4 × the start-up instead of 2 ×
(`--modes` picks the modes; `--only-b` skips scenario (a)).

For each: the execution makespan (first shard start to last shard end) and
its ratio to the ideal, the total actual work ÷ 8. Totals are checked.
"""
import argparse
import json
import os
import pathlib
import random
import shutil
import statistics

from testexec_json import run_json

WORKERS = 8
FILES = 96


def durations(seed: int) -> list:
    rng = random.Random(seed)
    return [round(min(3.0, rng.lognormvariate(-0.9, 0.8)), 2) for _ in range(FILES)]


def write_suite(tree: pathlib.Path, runner: pathlib.Path, secs: list, mode: str) -> None:
    (tree / "tests").mkdir(parents=True, exist_ok=True)
    shutil.copy(runner, tree / "runner.py")
    (tree / "testexec.toml").write_text(
        "[suites.bench]\n"
        'command = ["python3", "runner.py", "{junit}", "{files}", "--", "{tests}"]\n'
        'files = ["tests/*.txt"]\n'
        f"shards = {WORKERS}\nmode = \"{mode}\"\ntimeout_seconds = 600\n"
        "[flaky]\nnew_test_runs = 0\n"
    )
    for i, s in enumerate(secs):
        (tree / "tests" / f"t{i:02}.txt").write_text(f"t{i} hang {s}\n")


def scale_startup(state: pathlib.Path, factor) -> None:
    """Scales (None: removes) the measured batch start-up in every timing
    history in the state dir, for the next plan's floor."""
    for path in state.rglob("timings.json"):
        doc = json.loads(path.read_text())
        if factor is None:
            doc.pop("batch_startup_secs", None)
        elif "batch_startup_secs" in doc:
            doc["batch_startup_secs"] *= factor
        path.write_text(json.dumps(doc))


# The floor factor each queue variant stands for, as a scale of the
# measured start-up (the binary's own factor is 2).
STARTUP_SCALE = {"queue-nofloor": None, "queue-k1": 0.5, "queue-k4": 2.0}


def run(bin_: str, tree: pathlib.Path, state: pathlib.Path) -> dict:
    return run_json(bin_, tree, state, ["--jobs", str(WORKERS)])


def makespan(out: dict) -> float:
    shards = out["shards"]
    return (max(s["finished_ms"] for s in shards) - min(s["started_ms"] for s in shards)) / 1000


def scenario(args, name: str, mode: str, history: bool, seed: int) -> dict:
    base = pathlib.Path(args.work) / f"{name}-{mode}-{seed}"
    shutil.rmtree(base, ignore_errors=True)
    tree, state = base / "tree", base / "state"
    secs = durations(seed)
    plan_mode = "queue" if mode.startswith("queue") else mode
    if history:
        write_suite(tree, args.runner, secs, plan_mode)
        run(args.bin, tree, state)  # records the history
        if mode in STARTUP_SCALE:
            scale_startup(state, STARTUP_SCALE[mode])
        rng = random.Random(seed + 1000)
        secs = [round(s * rng.uniform(0.5, 1.5), 2) for s in secs]
    write_suite(tree, args.runner, secs, plan_mode)
    out = run(args.bin, tree, state)
    floor = [n for n in out["plan"].get("notes", []) if "start-up" in n]
    assert out["run"]["counts"]["passed"] == FILES, out["run"]["counts"]
    ideal = sum(secs) / WORKERS
    m = makespan(out)
    # Start-up per batch: its wall minus the sleeps of its tests.
    by_file = {f"tests/t{i:02}.txt": s for i, s in enumerate(secs)}
    plan = {s["index"]: s for s in out["plan"]["shards"]}
    overhead = [
        (s["finished_ms"] - s["started_ms"]) / 1000
        - sum(by_file[u["path"]] for u in plan[int(s["id"].rsplit("/", 1)[1])]["units"])
        for s in out["shards"]
    ]
    return {
        "makespan": m,
        "ideal": ideal,
        "ratio": m / ideal,
        "batches": len(out["shards"]),
        "overhead": statistics.mean(overhead),
        "floor": floor[0].split("at least ")[1].split(" s")[0] if floor else "-",
    }


def fmt(values) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--bin", required=True)
    p.add_argument("--runner", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--modes", default="static,queue,queue-nofloor")
    p.add_argument("--only-b", action="store_true")
    args = p.parse_args()
    print(f"load before: {os.getloadavg()[0]:.2f}; {FILES} files, {WORKERS} workers, seeds 1..{args.seeds}; binary {args.bin}")
    print("| scenario | mode | shards or batches | batch floor s | start-up s per shard or batch (mean) | makespan s (per seed) | ideal s | makespan ÷ ideal (median) |")
    print("|---|---|---|---|---|---|---|---|")
    modes = args.modes.split(",")
    for name, history in (("(a) no history", False), ("(b) history, ±50 % per file", True)):
        if args.only_b and not history:
            continue
        # Without history the queue variants are one plan: run `queue` only.
        for mode in [m for m in modes if history or m in ("static", "queue")]:
            rs = [scenario(args, name.split()[0].strip("()"), mode, history, seed) for seed in range(1, args.seeds + 1)]
            print(
                f"| {name} | {mode} | {', '.join(str(r['batches']) for r in rs)} "
                f"| {', '.join(r['floor'] for r in rs)} "
                f"| {fmt(r['overhead'] for r in rs)} "
                f"| {fmt(r['makespan'] for r in rs)} "
                f"| {fmt(r['ideal'] for r in rs)} "
                f"| **{statistics.median(r['ratio'] for r in rs):.2f}** |"
            )
    print(f"load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
