#!/usr/bin/env python3
"""Damaged copies of the JUnit fixtures, for the reader's before/after check.

Usage (from the repository root):
    python3 scripts/bench/make_damaged.py [OUT_DIR=target/bench/mut] [FROM_DIR=fixtures/junit]

FROM_DIR damages other inputs instead of the fixtures, e.g. the long-run
copies of `make_long.py` (files over 300 kB are skipped there).

For each fixture: 4 truncations at random offsets and 4 copies with 1-3
random insertions or overwrites of markup bytes. Seeded, so every run
writes the same files (624 for the 79 fixtures). `junit-ingest dump` over
them with two builds, then `cmp`, shows that a change to the reader left
its output (errors included) byte-identical.
"""
import glob
import os
import random
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MUTATIONS = [b'<', b'>', b'"', b"'", b'&', b'&amp;', b'&#x41;', b'&bogus;', b'</x>', b'</testcase>',
             b'<testcase name="z">', b'<![CDATA[', b']]>', b'<!--', b'-->', b'<?pi x?>', b'\x00', b'\xff',
             b'\xc3', b' a="1"', b'=', b'/>', b'</testsuite>', b'<failure message="m&lt;">', b'<system-out>']


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target/bench/mut")
    os.makedirs(out, exist_ok=True)
    source = sys.argv[2] if len(sys.argv) > 2 else None
    random.seed(15)
    n = 0
    for f in sorted(glob.glob(os.path.join(source or os.path.join(ROOT, "fixtures/junit"), "*"))):
        data = open(f, "rb").read()
        if len(data) < 10 or (source and len(data) > 300_000):
            continue
        for _ in range(4):
            cut = random.randrange(len(data))
            open(f"{out}/{n:04d}-trunc.xml", "wb").write(data[:cut])
            n += 1
            d = bytearray(data)
            for _ in range(random.randint(1, 3)):
                p = random.randrange(len(d))
                m = random.choice(MUTATIONS)
                if random.random() < 0.5:
                    d[p:p] = m
                else:
                    d[p:p + len(m)] = m
            open(f"{out}/{n:04d}-mut.xml", "wb").write(bytes(d))
            n += 1
    print(f"{out}: {n} files")


if __name__ == "__main__":
    main()
