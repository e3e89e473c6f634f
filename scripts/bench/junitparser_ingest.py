#!/usr/bin/env python3
"""Python peer: junitparser reading a report. Same output line as junit-ingest.

Usage: junitparser_ingest.py FILE [ITERATIONS]
"""
import os
import sys
import time

from junitparser import JUnitXml

path = sys.argv[1]
iterations = int(sys.argv[2]) if len(sys.argv) > 2 else 3
size = os.path.getsize(path)
best = float("inf")
cases = 0
for _ in range(max(1, iterations)):
    start = time.perf_counter()
    try:
        xml = JUnitXml.fromfile(path)
        # Touch every case and its result, as a consumer would.
        cases = 0
        for suite in (xml if xml._tag == "testsuites" else [xml]):
            for case in suite:
                _ = case.result
                cases += 1
    except Exception as e:  # report and stop, like the Rust harness
        print(f"junitparser\t{path}\t{size}\tFAILED\t-\t{type(e).__name__}: {e}")
        sys.exit(1)
    best = min(best, time.perf_counter() - start)
print(f"junitparser\t{path}\t{size}\t{best:.6}\t{size / best / 1e6:.1f}\t{cases}")
