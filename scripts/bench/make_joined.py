#!/usr/bin/env python3
"""Join real fixtures into one <testsuites> report of at least N MB.

Usage: make_joined.py OUT [MIN_MB=100] [GLOB=*.xml]

Takes every well-formed UTF-8 JUnit fixture in fixtures/junit (no DOCTYPE),
keeps its <testsuite> elements (the inner part of a <testsuites> root, or a
bare <testsuite> root as is) and repeats the set until the output reaches
MIN_MB. The output goes under target/ and is never committed.
"""
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

root = Path(__file__).resolve().parents[2]
out = Path(sys.argv[1])
min_bytes = int(float(sys.argv[2] if len(sys.argv) > 2 else 100) * 1_000_000)

parts = []
pattern = sys.argv[3] if len(sys.argv) > 3 else "*.xml"
for f in sorted((root / "fixtures/junit").glob(pattern)):
    raw = f.read_bytes()
    if b"<!DOCTYPE" in raw:
        continue
    try:
        tree = ET.fromstring(raw)
        text = raw.decode("utf-8")
    except (ET.ParseError, UnicodeDecodeError):
        continue
    tag = tree.tag.split("}")[-1]
    text = re.sub(r"^\ufeff?\s*(<\?xml[^>]*\?>)?\s*(<!--.*?-->\s*)*", "", text, flags=re.S)
    if tag == "testsuites":
        m = re.match(r"<testsuites\b[^>]*?(/>|>)", text, flags=re.S)
        if m.group(1) == "/>":
            continue
        inner = text[m.end():text.rindex("</testsuites>")]
    elif tag == "testsuite":
        inner = text
    else:
        continue
    parts.append(inner.encode("utf-8"))

block = b"\n".join(parts)
out.parent.mkdir(parents=True, exist_ok=True)
with out.open("wb") as w:
    w.write(b'<?xml version="1.0" encoding="UTF-8"?>\n<testsuites name="joined">\n')
    written = 0
    while written < min_bytes:
        w.write(block)
        w.write(b"\n")
        written += len(block) + 1
    w.write(b"</testsuites>\n")
print(f"{out}: {out.stat().st_size} bytes from {len(parts)} fixtures")
