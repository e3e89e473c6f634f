#!/usr/bin/env python3
"""Fixture copies holding long runs, for the reader's before/after check.

Usage (from the repository root):
    python3 scripts/bench/make_long.py [OUT_DIR=target/bench/long]

The damaged copies of `make_damaged.py` rarely hold a run of character
data long enough for the long-text cut (`long_text.rs`) to act on, so a
change to the cut needs inputs that do: texts, attribute values, CDATA
sections, comments and processing instructions of sizes around the cut's
thresholds (`keep` = 32 736 bytes with the default 64 KiB cap, cut above
2 × keep) and far beyond, with entity references, multi-byte UTF-8 and
markup bytes inside, placed across the reader's 64 KiB chunk boundaries,
and each also truncated inside the run. Seeded: every run writes the same
files.
"""
import glob
import os
import random
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KEEP = 32 * 1024 - 32
SIZES = [KEEP - 1, KEEP, KEEP + 1, 2 * KEEP - 1, 2 * KEEP, 2 * KEEP + 1, 65536, 70000, 200000, 1500000]
PIECES = [b"a", b"b", b" ", b"\n", b"\t", b"x" * 20, "é".encode(), "日本".encode(), "😀".encode(),
          b"&amp;", b"&#10;", b"&#x41;", b"&lt;", b"&bogus;", b"\r\n", b"]", b"-", b"?"]
# Bytes that end some run kinds but not others (a `>` inside a text, `<`
# inside a comment, quotes inside CDATA...), per kind.
EXTRA = {
    "text": [b">", b"'", b'"', b"]]>", b"-->"],
    "dq": [b">", b"'", b"<"],
    "sq": [b">", b'"', b"<"],
    "cdata": [b"<", b">", b"'", b'"', b"--", b"<x>"],
    "comment": [b"<", b">", b"'", b'"', b"]]>", b"<x>", b"- ->"],
    "pi": [b"<", b"'", b'"', b"]]>", b"<x>", b"-->"],
}


def filler(rng, size, kind):
    pieces = PIECES + EXTRA[kind]
    if kind in ("cdata", "comment", "pi"):
        # No references there: `&` is literal.
        pieces = [p for p in pieces if not p.startswith(b"&")] + [b"&", b"&amp;"]
        # Nothing that could close the run early (`]]>`, `-->`, `?>`).
        closer = {"cdata": b"]", "comment": b"-", "pi": b"?"}[kind]
        pieces = [p for p in pieces if closer not in p]
    if kind == "dq":
        pieces = [p for p in pieces if b'"' not in p]
    if kind == "sq":
        pieces = [p for p in pieces if b"'" not in p]
    if kind == "text":
        pieces = [p for p in pieces if b"<" not in p]
    out = bytearray()
    dense = rng.random() < 0.5
    while len(out) < size:
        if dense or rng.random() < 0.02:
            out += rng.choice(pieces)
        else:
            out += b"y" * rng.randint(1, 300)
    return bytes(out[:size]) if kind != "text" else trim_utf8(bytes(out[:size]))


def trim_utf8(b):
    # Keep the filler valid UTF-8 and without a broken reference at its end.
    while b:
        try:
            b.decode("utf-8")
            break
        except UnicodeDecodeError:
            b = b[:-1]
    amp = b.rfind(b"&")
    if amp >= 0 and b.find(b";", amp) < 0:
        b = b[:amp]
    return b


def wrap(kind, body):
    if kind == "text":
        return b"<system-out>" + body + b"</system-out>"
    if kind == "dq":
        return b'<failure message="' + body + b'" type="T">trace</failure>'
    if kind == "sq":
        return b"<failure message='" + body + b"' type='T'>trace</failure>"
    if kind == "cdata":
        return b"<system-err><![CDATA[" + body + b"]]></system-err>"
    if kind == "comment":
        return b"<!--" + body + b"-->"
    return b"<?pi " + body + b"?>"


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target/bench/long")
    os.makedirs(out, exist_ok=True)
    rng = random.Random(15)
    bases = []
    for f in sorted(glob.glob(os.path.join(ROOT, "fixtures/junit/*"))):
        data = open(f, "rb").read()
        if b"<testcase" in data and b'encoding="UTF-16' not in data[:200] and not data.startswith(b"\xff\xfe") \
                and not data.startswith(b"\xfe\xff") and len(data) < 300_000:
            bases.append(data)
    n = 0
    for kind in EXTRA:
        for size in SIZES:
            for variant in range(2):
                data = rng.choice(bases)
                # Inside a testcase (after its start tag), so the run is read.
                starts = [i for i in range(len(data)) if data.startswith(b"<testcase", i)]
                at = rng.choice(starts)
                close = data.find(b">", at)
                if data[close - 1:close] == b"/":
                    # A self-closing case: open it and put the run inside.
                    head = data[:close - 1] + b">"
                    rest = b"</testcase>" + data[close + 1:]
                else:
                    head = data[:close + 1]
                    rest = data[close + 1:]
                # Padding moves the run across the 64 KiB chunk boundary.
                pad = b"<!---->" * rng.randint(0, 9000) if variant else b""
                body = filler(rng, size, kind)
                doc = head + pad + wrap(kind, body) + rest
                open(f"{out}/{n:04d}-{kind}-{size}.xml", "wb").write(doc)
                n += 1
                cut = len(head) + len(pad) + rng.randint(1, len(body))
                open(f"{out}/{n:04d}-{kind}-{size}-trunc.xml", "wb").write(doc[:cut])
                n += 1
    print(f"{out}: {n} files")


if __name__ == "__main__":
    main()
