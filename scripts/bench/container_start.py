#!/usr/bin/env python3
"""Cold start of the container host: process spawn -> first answered
GET /healthz (what Cloud Run's and Container Apps' startup probes wait for),
and the resident set at that moment.

    container_start.py BINARY RUNS -- SERVE-ARGS...

Each round starts `BINARY serve --port P SERVE-ARGS...` on a fresh loopback
port, polls /healthz every 0.5 ms until it answers 200, reads VmHWM/VmRSS
from /proc, then stops the process (SIGTERM). Prints one JSON object:
{"runs": N, "ready_ms": {"median", "p90", "min", "max"}, "rss_mib": {...}}.
"""
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import http.client


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def healthz(port):
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=0.5)
        conn.request("GET", "/healthz")
        ok = conn.getresponse().status == 200
        conn.close()
        return ok
    except OSError:
        return False


def rss_mib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def one(binary, args):
    port = free_port()
    start = time.perf_counter()
    proc = subprocess.Popen(
        [binary, "serve", "--port", str(port), *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = start + 30
        while not healthz(port):
            if proc.poll() is not None:
                sys.exit(f"{binary} exited with {proc.returncode} before it was ready")
            if time.perf_counter() > deadline:
                sys.exit(f"{binary} not ready in 30 s")
            time.sleep(0.0005)
        ready = (time.perf_counter() - start) * 1000
        return ready, rss_mib(proc.pid, "VmHWM")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def summary(values):
    ordered = sorted(values)
    return {
        "median": round(statistics.median(ordered), 2),
        "p90": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))], 2),
        "min": round(ordered[0], 2),
        "max": round(ordered[-1], 2),
    }


def main():
    if len(sys.argv) < 3 or "--" not in sys.argv:
        sys.exit(__doc__)
    split = sys.argv.index("--")
    binary, runs = sys.argv[1], int(sys.argv[2])
    args = sys.argv[split + 1:]
    ready, rss = [], []
    for _ in range(runs):
        r, m = one(binary, args)
        ready.append(r)
        rss.append(m)
    print(json.dumps({"runs": runs, "args": args, "ready_ms": summary(ready), "rss_mib": summary(rss)}))


if __name__ == "__main__":
    main()
