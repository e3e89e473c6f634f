#!/usr/bin/env python3
"""Where a Lambda function's RSS at init goes (docs/benchmarks.md, "One zip
per function"): starts a bootstrap under a fake Runtime API on 127.0.0.1
with dummy AWS and testexec settings, and when it first asks for
/runtime/invocation/next prints VmHWM and its resident memory per mapping
(/proc/<pid>/smaps), then kills it. No request ever leaves the machine.

Usage: scripts/bench/lambda_smaps.py BOOTSTRAP [KEY=VALUE...]
(e.g. SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt SSL_CERT_DIR=<empty dir>
for the provided.al2023 trust store layout of scripts/bench/lambda.sh)."""
import os, socket, subprocess, sys, collections
bin_path = sys.argv[1]
extra = dict(a.split('=', 1) for a in sys.argv[2:])
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', 0)); s.listen(4)
port = s.getsockname()[1]
env = {'AWS_LAMBDA_RUNTIME_API': f'127.0.0.1:{port}', 'AWS_LAMBDA_FUNCTION_NAME': 'f',
       'AWS_LAMBDA_FUNCTION_MEMORY_SIZE': '1024', 'AWS_LAMBDA_FUNCTION_VERSION': '1',
       'AWS_REGION': 'us-east-1', 'AWS_ACCESS_KEY_ID': 'x', 'AWS_SECRET_ACCESS_KEY': 'y',
       'AWS_SESSION_TOKEN': 'z', 'LAMBDA_TASK_ROOT': '/tmp', 'PATH': '/usr/bin:/bin',
       'TESTEXEC_TABLE': 't', 'TESTEXEC_BUCKET': 'b',
       'TESTEXEC_SHARDS_QUEUE_URL': 'http://q/s', 'TESTEXEC_RESULTS_QUEUE_URL': 'http://q/r',
       'TESTEXEC_REPORTS_QUEUE_URL': 'http://q/p', 'TESTEXEC_REQUESTS_QUEUE_URL': 'http://q/q'}
env.update(extra)
p = subprocess.Popen([bin_path], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
c, _ = s.accept()
c.recv(4096)
agg = collections.OrderedDict()
cur = None
with open(f'/proc/{p.pid}/smaps') as f:
    for line in f:
        parts = line.split()
        if '-' in parts[0] and len(parts) >= 5 and ':' not in parts[0]:
            name = parts[5] if len(parts) > 5 else '[anon]'
            cur = (os.path.basename(name), parts[1])
            agg.setdefault(cur, collections.Counter())
        elif parts[0] in ('Rss:', 'Private_Dirty:', 'Shared_Clean:', 'Private_Clean:', 'Anonymous:'):
            agg[cur][parts[0]] += int(parts[1])
status = open(f'/proc/{p.pid}/status').read()
hwm = [l for l in status.splitlines() if l.startswith(('VmHWM', 'VmRSS', 'RssAnon', 'RssFile', 'Threads'))]
p.kill(); p.wait()
print('\n'.join(hwm))
print(f"{'mapping':40} {'perm':5} {'Rss':>7} {'PrivDirty':>9} {'Anon':>7}")
for (name, perm), c in agg.items():
    if c['Rss:']:
        print(f"{name[:40]:40} {perm:5} {c['Rss:']:7} {c['Private_Dirty:']:9} {c['Anonymous:']:7}")
