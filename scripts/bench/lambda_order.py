#!/usr/bin/env python3
"""Writes functions/init-order.ld, the linker script that places the code a
Lambda function runs at init together at the start of its text
(docs/benchmarks.md, "Round 3"; functions/no_pie.rs links with it).

Why: when a page of the binary's text is first executed, the kernel maps
the cached pages around it too (fault-around; on this machine whole
page-cache folios of 128 KiB and more), so init code spread
over a 10-15 MiB `.text` made 7-8 MiB of it resident. rustc puts every
function in a section of its own (`.text.<symbol>`), so a linker script can
gather the ones init runs into one output section, `.text.init`, ahead of
`.text`.

How: each BOOTSTRAP (built with symbols, e.g. with
`--config 'profile.release.package.testexec-collect.strip="none"'`, which
changes nothing but the symbol table) runs under valgrind's callgrind with
the fake Runtime API of lambda_smaps.py until its first
/runtime/invocation/next; every function it executed that has a symbol in
the binary goes into the script. Symbol names differ between builds of the
same code: a legacy symbol's hash (`17h<16 hex>E`) and a v0 symbol's crate
disambiguators depend on each crate's `-C metadata`, which cargo derives
from the profile (so the build with symbols and the stripped one already
differ for every generic instance made in the function's own crate), the
target (x86_64 vs arm64) and the features (one `-p` or four). So each
symbol is written with those parts as wildcards; for a legacy generic
function that matches all its instances (e.g. every `RawVec::grow_one`),
not only those init runs: ~2 MiB of function code for ~0.9 MiB run, all of
it placed together. LAMBDA_ORDER_SLACK=<bytes> keeps the exact symbol where
the wildcard would add more than that many bytes of functions init does
not run (exact names only match a build with the very same metadata).
Unmatched lines cost nothing: a stale script only gathers less.

Usage: scripts/bench/lambda_order.py OUT.ld BOOTSTRAP... [-- KEY=VALUE...]
"""
import bisect, fnmatch, os, re, subprocess, sys, tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lambda_smaps  # noqa: E402

SLACK = int(os.environ.get("LAMBDA_ORDER_SLACK", str(1 << 62)))
HASH = re.compile(r'^(.*17h)[0-9a-f]{16}E(\.llvm\.\d+)?$')


def trace(binary, extra):
    """Names of the functions binary runs until its first /next."""
    out = tempfile.mktemp(prefix='callgrind-init.')
    cmd = ['valgrind', '--tool=callgrind', '--demangle=no', '--compress-strings=no',
           '--compress-pos=no', '--dump-line=no', f'--callgrind-out-file={out}', binary]
    p, socks = lambda_smaps.start(cmd, extra)
    # Closing the Runtime API makes the runtime loop return an error and the
    # process exit, so callgrind writes its profile (the error path is a few
    # functions more than init itself).
    for s in socks:
        s.close()
    try:
        p.wait(timeout=300)
    except subprocess.TimeoutExpired:
        p.terminate()
        p.wait()
    names = set()
    with open(out) as f:
        for line in f:
            if line.startswith(('fn=', 'cfn=')):
                names.add(line.split('=', 1)[1].strip())
    os.unlink(out)
    return names


def text_symbols(binary):
    """({name: size}, {name: address}) of the function symbols of binary."""
    syms, addrs = {}, {}
    out = subprocess.run(['nm', '-S', '--defined-only', binary], capture_output=True,
                         text=True, check=True).stdout
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[2] in 'tTWw':
            syms[parts[3]] = int(parts[1], 16)
            addrs[parts[3]] = int(parts[0], 16)
    return syms, addrs


def with_aliases(hot, addrs):
    """hot plus every symbol at the address of one: rustc merges identical
    functions into aliases of one body (LLVM's MergeFunctions), e.g. the
    many `RawVec::grow_one` instances, and the body's section is named
    after one of them, not necessarily the one callgrind reports."""
    at = {addrs[n] for n in hot}
    return {n for n, a in addrs.items() if a in at}


def wildcard(name):
    """name with what differs between builds of the same code as `*`: a
    legacy symbol's hash (`17h<16 hex>E`), a v0 symbol's crate
    disambiguators (`Cs<base 62>_`) and its back references (`B<base 62>_`,
    offsets into the name that move when a disambiguator's length does), and
    LLVM's `.<n>` / `.llvm.<n>` suffixes."""
    # LLVM renames a local symbol whose name is taken in the merged LTO
    # module to `<name>.<n>`, n different in every build.
    renamed = re.match(r'^(.*?)(\.llvm)?\.\d+$', name)
    if renamed and not name.startswith('.'):
        return wildcard(renamed.group(1)).rstrip('*') + '*'
    m = HASH.match(name)
    if m:
        return m.group(1) + '*'
    if name.startswith('_R'):
        w = re.sub(r'\.llvm\.\d+$', '', name)
        w = re.sub(r'Cs[0-9A-Za-z]+_', 'Cs*_', w)
        w = re.sub(r'B[0-9A-Za-z]*_', 'B*_', w)
        w = re.sub(r'\*+', '*', w)
        return w if w != name else name
    return name


def patterns(hot, syms):
    """Linker-script section patterns for the hot symbols of one binary: the
    wildcard form where, in this binary, it matches no more than SLACK bytes
    of functions that init does not run, else the exact symbol."""
    names = sorted(syms)
    out = set()
    for name in hot:
        pat = wildcard(name)
        if pat == name:
            out.add(name)
            continue
        prefix = pat.split('*', 1)[0]
        rx = re.compile(fnmatch.translate(pat))
        i = bisect.bisect_left(names, prefix)
        slack = 0
        while i < len(names) and names[i].startswith(prefix):
            n = names[i]
            if n not in hot and rx.match(n):
                slack += syms[n]
            i += 1
        out.add(pat if slack <= SLACK else name)
    return out


def main():
    args = sys.argv[1:]
    extra = {}
    if '--' in args:
        i = args.index('--')
        extra = dict(a.split('=', 1) for a in args[i + 1:])
        args = args[:i]
    if len(args) < 2:
        sys.exit(__doc__)
    out, binaries = args[0], args[1:]
    lines = set()
    for b in binaries:
        syms, addrs = text_symbols(b)
        hot = with_aliases(trace(b, extra) & set(syms), addrs)
        pats = patterns(hot, syms)
        hot_bytes = sum(syms[n] for n in hot)
        print(f'{b}: {len(hot)} function symbols (aliases included) run at init, {hot_bytes / 1024:.0f} KiB '
              f'of {sum(syms.values()) / 1024:.0f} KiB of function symbols; {len(pats)} patterns',
              file=sys.stderr)
        lines |= pats
    with open(out, 'w') as f:
        f.write('/* Generated by scripts/bench/lambda_order.py: the functions a Lambda\n'
                '   function runs at init, placed together ahead of .text (why: in that\n'
                '   script and functions/no_pie.rs). Regenerate after large changes. */\n')
        f.write('SECTIONS {\n  .text.init : {\n')
        for pat in sorted(lines):
            # `#[cold]` functions (`RawVec::grow_one`, `Once::call`, ...) are
            # in `.text.unlikely.<symbol>` (LLVM's section prefix for cold
            # functions), and init runs many of them.
            f.write(f'    *(.text.{pat} .text.unlikely.{pat})\n')
        f.write('  }\n} INSERT BEFORE .text;\n')
    print(f'{out}: {len(lines)} patterns', file=sys.stderr)


if __name__ == '__main__':
    main()
