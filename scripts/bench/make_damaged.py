#!/usr/bin/env python3
"""Damaged copies of the JUnit fixtures, for the reader's before/after check.

Usage (from the repository root):
    python3 scripts/bench/make_damaged.py [OUT_DIR=target/bench/mut] [FROM_DIR=fixtures/junit]
    python3 scripts/bench/make_damaged.py --near-markup [OUT_DIR=target/bench/mut-markup]

FROM_DIR damages other inputs instead of the fixtures, e.g. the long-run
copies of `make_long.py` (files over 300 kB are skipped there).

For each fixture: 4 truncations at random offsets and 4 copies with 1-3
random insertions or overwrites of markup bytes. Seeded, so every run
writes the same files (624 for the 79 fixtures). `junit-ingest dump` over
them with two builds, then `cmp`, shows that a change to the reader left
its output (errors included) byte-identical.

--near-markup writes 12 copies of each fixture and of the two 3 MB joins
(960 files) with 1-3 edits, 70 % of them within two bytes of a `<`, `>`,
`"`, `=` or `/`, drawn from a longer list that adds the tag shapes the
reader's fast lane reads or steps aside from (`</testcase >`, `<t/ >`,
attributes without spaces, non-ASCII names, a BOM...), deletions too, and
one copy in five truncated.
"""
import glob
import os
import random
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MUTATIONS = [b'<', b'>', b'"', b"'", b'&', b'&amp;', b'&#x41;', b'&bogus;', b'</x>', b'</testcase>',
             b'<testcase name="z">', b'<![CDATA[', b']]>', b'<!--', b'-->', b'<?pi x?>', b'\x00', b'\xff',
             b'\xc3', b' a="1"', b'=', b'/>', b'</testsuite>', b'<failure message="m&lt;">', b'<system-out>']
NEAR_MARKUP = MUTATIONS + [
    b'</testcase >', b'</testcase\n>', b'<testcase/ >', b' b = "c"', b'"d="e"', b'<ns:testcase name="n"/>',
    b'</ns:testcase>', b'<testcase name="\xc3\xa9"/>', b'<t\xc3\xa9st>', b'</t\xc3\xa9st>', b'<a>', b'</a>',
    b'<testcase>', b'<testcase name="x" time="1">', b'<skipped/>', b' ', b'\n', b'\t', b'/', b'<>', b'</>',
    b'<!DOCTYPE x>', b'<?xml version="1.0"?>', b'\xef\xbb\xbf', b"name='q'", b'x:y="1"', b'<testcase name="a>b"/>']


def near_markup(out):
    os.makedirs(out, exist_ok=True)
    random.seed(7)
    n = 0
    inputs = sorted(glob.glob(os.path.join(ROOT, "fixtures/junit/*"))) + \
        sorted(glob.glob(os.path.join(ROOT, "target/bench/joined-*3mb.xml")))
    for f in inputs:
        data = open(f, "rb").read()
        if len(data) < 10:
            continue
        marks = [i for i in range(len(data)) if data[i] in b'<>"=/'] or [0]
        for _ in range(12):
            d = bytearray(data)
            for _ in range(random.randint(1, 3)):
                if random.random() < 0.7:
                    p = random.choice(marks) + random.randint(-2, 2)
                else:
                    p = random.randrange(len(d))
                p = max(0, min(p, len(d)))
                m = random.choice(NEAR_MARKUP)
                if random.random() < 0.5:
                    d[p:p] = m
                elif random.random() < 0.5:
                    d[p:p + len(m)] = m
                else:
                    del d[p:p + random.randint(1, 3)]
            if random.random() < 0.2:
                d = d[:random.randrange(len(d))]
            open(f"{out}/{n:05d}.xml", "wb").write(bytes(d))
            n += 1
    print(f"{out}: {n} files")


def main():
    if sys.argv[1:2] == ["--near-markup"]:
        near_markup(sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, "target/bench/mut-markup"))
        return
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
