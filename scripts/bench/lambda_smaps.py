#!/usr/bin/env python3
"""Where a Lambda function's RSS at init goes (docs/benchmarks.md, "One zip
per function"): starts a bootstrap under a fake Runtime API on 127.0.0.1
with dummy AWS and testexec settings, and when it first asks for
/runtime/invocation/next prints VmHWM and its resident memory per mapping
(/proc/<pid>/smaps), then kills it. No request ever leaves the machine.

Usage: scripts/bench/lambda_smaps.py [--samples N] [--invoke] BOOTSTRAP [KEY=VALUE...]
(e.g. SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt SSL_CERT_DIR=<empty dir>
for the provided.al2023 trust store layout of scripts/bench/lambda.sh).

--samples N  starts the binary N times and prints, besides the first
             sample's mappings, the median of each category below (KiB).
--invoke     answers the first /next with one invocation (an empty JSON
             object; each function refuses it as an event it does not take,
             after parsing it) and measures at the second /next instead:
             RSS after the first invocation, for work moved out of init.

Categories: binary text (r-x of the bootstrap), binary read-only data (r--),
of it anonymous (relocated copies), binary data/bss (rw-), heap, thread
stacks (anonymous rw- after a 4 KiB guard), other anonymous memory (malloc
arenas of other threads, mmaps), the main stack, shared libraries."""
import collections, os, socket, statistics, subprocess, sys

BASE_ENV = {'AWS_LAMBDA_FUNCTION_NAME': 'f',
            'AWS_LAMBDA_FUNCTION_MEMORY_SIZE': '1024', 'AWS_LAMBDA_FUNCTION_VERSION': '1',
            'AWS_REGION': 'us-east-1', 'AWS_ACCESS_KEY_ID': 'x', 'AWS_SECRET_ACCESS_KEY': 'y',
            'AWS_SESSION_TOKEN': 'z', 'LAMBDA_TASK_ROOT': '/tmp', 'PATH': '/usr/bin:/bin',
            'TESTEXEC_TABLE': 't', 'TESTEXEC_BUCKET': 'b',
            'TESTEXEC_SHARDS_QUEUE_URL': 'http://q/s', 'TESTEXEC_RESULTS_QUEUE_URL': 'http://q/r',
            'TESTEXEC_REPORTS_QUEUE_URL': 'http://q/p', 'TESTEXEC_REQUESTS_QUEUE_URL': 'http://q/q'}

CATEGORIES = ['text', 'rodata', 'rodata_anon', 'data', 'heap', 'thread_stacks',
              'anon_other', 'stack', 'libs', 'other']


def read_request(c):
    """One HTTP request head (and body, by Content-Length) from c."""
    buf = b''
    while b'\r\n\r\n' not in buf:
        chunk = c.recv(65536)
        if not chunk:
            return None
        buf += chunk
    head, _, body = buf.partition(b'\r\n\r\n')
    length = 0
    for line in head.split(b'\r\n')[1:]:
        k, _, v = line.partition(b':')
        if k.strip().lower() == b'content-length':
            length = int(v)
    while len(body) < length:
        body += c.recv(65536)
    return head.split(b'\r\n')[0].decode()


def start(cmd, extra, invoke=False):
    """Starts cmd under a fake Runtime API; returns (process, sockets) once
    it asks for /next (the second /next with invoke)."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(('127.0.0.1', 0))
    s.listen(8)
    env = dict(BASE_ENV, AWS_LAMBDA_RUNTIME_API=f'127.0.0.1:{s.getsockname()[1]}')
    env.update(extra)
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    c, _ = s.accept()
    line = read_request(c)
    assert line and '/invocation/next' in line, line
    conns = [c]
    if invoke:
        body = b'{}'
        c.sendall(b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n'
                  b'Lambda-Runtime-Aws-Request-Id: 00000000-0000-0000-0000-000000000001\r\n'
                  b'Lambda-Runtime-Deadline-Ms: 9999999999999\r\n'
                  b'Lambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:123456789012:function:f\r\n'
                  b'Content-Length: ' + str(len(body)).encode() + b'\r\n\r\n' + body)
        # The answer (response or error) then the next /next, on this
        # connection or a new one.
        while True:
            s.settimeout(0.05)
            for conn in list(conns):
                conn.settimeout(0.05)
                try:
                    line = read_request(conn)
                except (socket.timeout, BlockingIOError):
                    continue
                if line is None:
                    conns.remove(conn)
                    continue
                if '/invocation/next' in line:
                    return p, [s] + conns
                conn.sendall(b'HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\n{}')
            try:
                conn, _ = s.accept()
                conns.append(conn)
            except socket.timeout:
                pass
    return p, [s] + conns


def smaps(pid, binary):
    """(status lines, [(name, perm, size KiB, Rss, Private_Dirty, Anonymous)])."""
    maps = []
    cur = None
    with open(f'/proc/{pid}/smaps') as f:
        for line in f:
            parts = line.split()
            if '-' in parts[0] and len(parts) >= 5 and ':' not in parts[0]:
                lo, hi = (int(x, 16) for x in parts[0].split('-'))
                name = parts[5] if len(parts) > 5 else '[anon]'
                cur = {'name': name, 'perm': parts[1], 'size': (hi - lo) // 1024}
                maps.append(cur)
            elif parts[0] in ('Rss:', 'Private_Dirty:', 'Anonymous:'):
                cur[parts[0][:-1]] = int(parts[1])
    status = open(f'/proc/{pid}/status').read()
    return status, maps


def categorize(maps, binary):
    out = collections.Counter()
    real = os.path.realpath(binary)
    for i, m in enumerate(maps):
        rss, name, perm = m.get('Rss', 0), m['name'], m['perm']
        if name == real or os.path.basename(name) == os.path.basename(real) and name.startswith('/'):
            if 'x' in perm:
                out['text'] += rss
            elif perm.startswith('r--'):
                out['rodata'] += rss
                out['rodata_anon'] += m.get('Anonymous', 0)
            else:
                out['data'] += rss
        elif name == '[heap]':
            out['heap'] += rss
        elif name == '[stack]':
            out['stack'] += rss
        elif name == '[anon]':
            prev = maps[i - 1] if i else None
            if prev and prev['name'] == '[anon]' and prev['perm'].startswith('---') and prev['size'] == 4 \
                    and m['perm'].startswith('rw'):
                out['thread_stacks'] += rss
            else:
                out['anon_other'] += rss
        elif '.so' in name:
            out['libs'] += rss
        else:
            out['other'] += rss
    return out


def field(status, key):
    for l in status.splitlines():
        if l.startswith(key + ':'):
            return int(l.split()[1])
    return None


def sample(binary, extra, invoke=False):
    p, socks = start([binary], extra, invoke)
    try:
        status, maps = smaps(p.pid, binary)
    finally:
        p.kill()
        p.wait()
        for s in socks:
            s.close()
    return status, maps


def main():
    args = sys.argv[1:]
    samples, invoke = 1, False
    while args and args[0].startswith('--'):
        if args[0] == '--samples':
            samples = int(args[1])
            args = args[2:]
        elif args[0] == '--invoke':
            invoke = True
            args = args[1:]
        else:
            sys.exit(__doc__)
    if not args:
        sys.exit(__doc__)
    binary = args[0]
    extra = dict(a.split('=', 1) for a in args[1:])
    results = []
    first = None
    for _ in range(samples):
        status, maps = sample(binary, extra, invoke)
        if first is None:
            first = (status, maps)
        cats = categorize(maps, binary)
        cats['VmHWM'] = field(status, 'VmHWM')
        cats['VmRSS'] = field(status, 'VmRSS')
        cats['Threads'] = field(status, 'Threads')
        results.append(cats)
    status, maps = first
    print('\n'.join(l for l in status.splitlines()
                    if l.startswith(('VmHWM', 'VmRSS', 'RssAnon', 'RssFile', 'Threads'))))
    print(f"{'mapping':40} {'perm':5} {'size':>8} {'Rss':>7} {'PrivDirty':>9} {'Anon':>7}")
    for m in maps:
        if m.get('Rss'):
            print(f"{os.path.basename(m['name'])[:40]:40} {m['perm']:5} {m['size']:8} {m['Rss']:7} "
                  f"{m.get('Private_Dirty', 0):9} {m.get('Anonymous', 0):7}")
    keys = ['VmHWM', 'VmRSS', 'Threads'] + CATEGORIES
    print(f'== categories, KiB ({"median of " + str(samples) if samples > 1 else "1 sample"}'
          f'{", after the first invocation" if invoke else ", at init"}): '
          + ' '.join(f'{k}={statistics.median(r[k] or 0 for r in results):g}' for k in keys))
    if samples > 1:
        print('   VmHWM per sample: ' + ' '.join(str(r['VmHWM']) for r in results))
        print('   text per sample:  ' + ' '.join(str(r['text']) for r in results))


if __name__ == '__main__':
    main()
