"""A deterministic stand-in for a flaky test: it fails on its first try in a
fresh checkout and passes when re-run, the way a test with a cold cache or a
slow service does. testexec re-runs it (retries = 1) and reports it flaky."""

import pathlib
import time

MARKER = pathlib.Path(__file__).with_name(".first-try-done")


def test_service_answers():
    if not MARKER.exists():
        MARKER.write_text("done")
        assert False, "service did not answer in time (first try)"


def test_slow_but_steady():
    time.sleep(0.5)
    assert sum(range(1000)) == 499500
