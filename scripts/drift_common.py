"""What the drift checks share (check-terraform-drift.py,
check-azure-drift.py, check-gcp-drift.py): reading a Terraform module with
python-hcl2 (`read_module`, `unq`, `clean`), comparing two models
(`compare`), and
the self-test: copy the two sides into a temporary tree, plant one
change at a time, run the check on the copy, and expect a clean copy to
pass and every planted change to be reported by name.

A plant is (relative path, old text, new text, words): `old` must occur in
the file exactly once, and the report's lines that mention `words[0]` must
name every word (the field and its old and new values).
"""

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def unq(value):
    """python-hcl2 8.x keeps string literals' quotes: '"abc"' -> 'abc'."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def clean(value):
    """Drops python-hcl2's __comments__/__is_block__ keys, unquotes keys."""
    if isinstance(value, dict):
        return {unq(k): clean(v) for k, v in value.items() if not k.startswith("__")}
    if isinstance(value, list):
        return [clean(v) for v in value]
    return value


def read_module(module_dir: Path, unreadable) -> dict:
    """Every `.tf` file of a Terraform module, merged by block kind:
    {"resource": {type: {name: body}}, "data": {type: {name: body}},
    "locals": {...}, "variable": {...}, "output": {...}}. A missing module or
    an HCL parse error raises `unreadable` (the caller's exception)."""
    import hcl2  # the drift checks' venv has it; the self-test needs none

    files = sorted(module_dir.glob("*.tf"))
    if not files:
        raise unreadable(f"{module_dir}: no .tf files")
    merged = {"resource": {}, "data": {}, "locals": {}, "variable": {}, "output": {}}
    for f in files:
        try:
            with f.open() as fh:
                doc = clean(hcl2.load(fh))
        except Exception as err:  # python-hcl2 raises lark errors of many types
            raise unreadable(f"{f}: HCL parse error: {err}") from err
        for kind in ("resource", "data"):
            for block in doc.get(kind, []):
                for btype, named in block.items():
                    merged[kind].setdefault(btype, {}).update(named)
        for kind in ("locals", "variable", "output"):
            for block in doc.get(kind, []):
                merged[kind].update(block)
    return merged


def fmt(x):
    """A value as a report shows it."""
    return x if isinstance(x, str) else json.dumps(x, sort_keys=True)


def compare(left, right, names, path="") -> list[str]:
    """Every leaf where two nested models differ, as 'path: <left> X,
    <right> Y'. `names` = (left as a subject, right as a subject, left
    short, right short), e.g. ("deploy.sh", "the Terraform", "deploy.sh",
    "terraform")."""
    left_name, right_name, left_short, right_short = names
    out = []
    if isinstance(left, dict) and isinstance(right, dict):
        for k in sorted(set(left) | set(right), key=str):
            p = f"{path}.{k}" if path else str(k)
            if k not in right:
                out.append(f"{p}: in {left_name} ({fmt(left[k])}), not in {right_name}")
            elif k not in left:
                out.append(f"{p}: in {right_name} ({fmt(right[k])}), not in {left_name}")
            else:
                out += compare(left[k], right[k], names, p)
    elif left != right:
        out.append(f"{path}: {left_short} {fmt(left)}, {right_short} {fmt(right)}")
    return out


def self_test(script, root, copies, cases, prefix, unreadable, summary):
    """Runs `script --root COPY` for each (name, plants) in `cases` over a
    copy of `copies` (paths relative to `root`); returns the exit code."""

    def run(tree):
        proc = subprocess.run([sys.executable, str(script), "--root", str(tree)],
                              capture_output=True, text=True, check=False)
        return proc.returncode, proc.stdout + proc.stderr

    def plant(tree, plants):
        for rel, old, new, _ in plants:
            p = tree / rel
            text = p.read_text()
            if text.count(old) != 1:
                raise unreadable(f"self-test: {rel} should hold {old!r} exactly once "
                                 f"(found {text.count(old)}); update its plants")
            p.write_text(text.replace(old, new))

    failures = []
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        for case, plants in cases:
            tree = Path(tmp) / case.replace(" ", "-")
            for rel in copies:
                src, dst = root / rel, tree / rel
                dst.parent.mkdir(parents=True, exist_ok=True)
                if src.is_dir():
                    shutil.copytree(src, dst)
                else:
                    shutil.copy2(src, dst)
            plant(tree, plants)
            code, output = run(tree)
            if not plants:
                if code != 0:
                    failures.append(f"{case}: expected no drift, got exit {code}:\n{output}")
                continue
            if code != 1:
                failures.append(f"{case}: expected exit 1, got {code}:\n{output}")
            for rel, _, _, words in plants:
                about = "\n".join(ln for ln in output.splitlines() if words[0] in ln)
                if not all(w in about for w in words):
                    failures.append(f"{case}: the report does not name {rel}'s planted change "
                                    f"({', '.join(words)}):\n{output}")
            print(f"self-test: {case}: caught, report:")
            for ln in output.splitlines():
                print(f"  {ln}")
    if failures:
        for f in failures:
            print(f"self-test FAILED: {f}", file=sys.stderr)
        return 1
    print(f"self-test: passed ({summary})")
    return 0
