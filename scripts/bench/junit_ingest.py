#!/usr/bin/env python3
"""Run the JUnit ingest benchmark and print a markdown table.

Usage (from the repository root):
    cargo build --release -p testexec-bench
    pip install junitparser==5.0.3
    python3 scripts/bench/make_joined.py target/bench/joined-100mb.xml 100
    python3 scripts/bench/make_joined.py target/bench/joined-nextest-100mb.xml 100 '*nextest*'
    python3 scripts/bench/junit_ingest.py [ROUNDS=3] [--before OTHER_JUNIT_INGEST_BINARY]

With --before, a second junit-ingest binary (built from an earlier commit)
runs testexec's reader in the same rounds, so before and after are measured
under the same load. Prints best-of-rounds and median-of-rounds tables.

Every (parser, file) pair runs in its own process under `/usr/bin/time -f %M`
so the peak RSS is that parser's alone. Within a process the best of several
iterations is kept; the whole matrix is repeated ROUNDS times, interleaving
parsers, and the best of rounds is kept too (the machine is shared: the best
run is the one least disturbed by other work).
"""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / "target/release/junit-ingest"
FILES = [
    "fixtures/junit/dorny-jest-test-results.xml",
    "fixtures/junit/jenkins-eclipse-plugin-test-report.xml",
    "fixtures/junit/jenkins-junit-report-1472.xml",
    "fixtures/junit/jenkins-junit-report-huge.xml",
    "target/bench/joined-100mb.xml",
    "target/bench/joined-nextest-100mb.xml",
]
PARSERS = ["testexec", "raw", "quick-junit", "junitparser"]


def run(parser, file, before=None):
    big = Path(ROOT / file).stat().st_size > 10_000_000
    iters = "2" if big else "20"
    if parser == "junitparser":
        cmd = [sys.executable, str(ROOT / "scripts/bench/junitparser_ingest.py"), file, "1" if big else "5"]
    elif parser == "before":
        cmd = [str(before), "testexec", file, iters]
    else:
        cmd = [str(BIN), parser, file, iters]
    p = subprocess.run(["/usr/bin/time", "-f", "RSS_KB=%M", *cmd], cwd=ROOT, capture_output=True, text=True)
    rss = next((int(l.split("=")[1]) for l in p.stderr.splitlines() if l.startswith("RSS_KB=")), None)
    fields = p.stdout.strip().split("\t")
    if len(fields) < 6 or fields[3] == "FAILED":
        return {"mbps": None, "rss": rss, "err": fields[5] if len(fields) > 5 else p.stderr.strip()[-200:]}
    return {"mbps": float(fields[4]), "rss": rss, "cases": int(fields[5])}


def main():
    args = sys.argv[1:]
    before = None
    if "--before" in args:
        i = args.index("--before")
        before = Path(args[i + 1]).resolve()
        del args[i:i + 2]
    rounds = int(args[0]) if args else 3
    parsers = (["before"] if before else []) + PARSERS
    runs = {}
    for _ in range(rounds):
        for file in FILES:
            for parser in parsers:
                if parser == "junitparser" and "100mb" in file and (parser, file) in runs:
                    continue  # one slow round is enough for the Python peer
                runs.setdefault((parser, file), []).append(run(parser, file, before))
    best = {k: max(v, key=lambda r: r["mbps"] or 0) for k, v in runs.items()}
    median = {}
    for k, v in runs.items():
        ok = sorted(r["mbps"] for r in v if r["mbps"])
        median[k] = ok[len(ok) // 2] if ok else None
    fmt = lambda x: f"{x:.1f}" if x else "fails"
    head = "| file | size MB | "
    if before:
        head += "testexec before MB/s | "
    head += ("testexec MB/s | raw quick-xml MB/s | quick-junit MB/s | junitparser MB/s | "
             + ("before/raw | " if before else "")
             + "testexec/raw | testexec/fastest peer | peak RSS MB: testexec / raw / quick-junit / junitparser |")
    for title, table in (("Best of rounds", {k: v["mbps"] for k, v in best.items()}), ("Median of rounds", median)):
        print(f"\n{title} ({rounds} rounds):\n")
        print(head)
        print("|" + "---|" * (head.count("|") - 1))
        for file in FILES:
            size = Path(ROOT / file).stat().st_size / 1e6
            t, raw = table[("testexec", file)], table[("raw", file)]
            peers = [table[(p, file)] for p in ("quick-junit", "junitparser") if table[(p, file)]]
            ratio_peer = f"{t / max(peers):.1f}×" if peers and t else "-"
            rss = " / ".join(f"{best[(p, file)]['rss'] / 1024:.1f}" if best[(p, file)]["rss"] else "-" for p in PARSERS)
            row = f"| `{Path(file).name}` | {size:.2f} | "
            if before:
                row += f"{fmt(table[('before', file)])} | "
            row += f"{fmt(t)} | {fmt(raw)} | {fmt(table[('quick-junit', file)])} | {fmt(table[('junitparser', file)])} | "
            if before:
                b = table[("before", file)]
                row += f"{b / raw:.0%} | " if b and raw else "- | "
            row += f"{t / raw:.0%} | {ratio_peer} | {rss} |"
            print(row)
    notes = sorted({f"- {p} on `{Path(f).name}`: {r['err']}" for (p, f), r in best.items() if r.get("err")})
    if notes:
        print("\nFailures:")
        print("\n".join(notes))


if __name__ == "__main__":
    main()
