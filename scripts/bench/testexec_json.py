"""`testexec run --json` for the benchmark drivers: its run, shards and plan."""
import json
import pathlib
import subprocess
import sys


def run_json(bin_: str, tree: pathlib.Path, state: pathlib.Path, extra: list, env=None) -> dict:
    """Runs `testexec run --json EXTRA --state-dir STATE TREE`; exits the
    driver with testexec's stderr when it printed no JSON."""
    out = subprocess.run(
        [bin_, "run", "--json", *extra, "--state-dir", str(state), str(tree)],
        env=env, capture_output=True, text=True, check=False,
    )
    try:
        return json.loads(out.stdout)
    except json.JSONDecodeError:
        sys.exit(f"testexec run failed ({out.returncode}): {out.stderr[-2000:]}")
