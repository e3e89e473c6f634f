#!/usr/bin/env python3
"""Independent count of the JUnit fixtures, for shared/tests/junit_fixtures.rs.

Usage: python3 scripts/junit_fixture_counts.py fixtures/junit

Uses Python's xml.etree (not our parser) and applies the dialect rules of
docs/junit.md: result precedence error > failure > skipped; `result`/`status`
attributes when no result child; flaky/rerun elements; a testcase repeating
the previous one's identity after a failure is a retry (flaky if it passed);
<error>/<failure> directly in a <testsuite> is a case. Files etree cannot
parse print PE and were checked by hand.
"""
import sys, glob, os
import xml.etree.ElementTree as ET
SKIP={'disabled','skipped','skip','notrun','not run','suppressed','ignored','pending'}
FAIL={'failed','failure','fail'}; ERR={'error','errored','broken'}
def ln(t): return t.split('}')[-1]
def outcome(tc):
    kinds=[ln(c.tag) for c in tc]
    if 'error' in kinds: o='error'
    elif 'failure' in kinds: o='failed'
    elif 'skipped' in kinds: o='skipped'
    else:
        o='passed'
        for v in (tc.get('result'), tc.get('status')):
            if v is None: continue
            v=v.strip().lower()
            if v in SKIP: o='skipped'; break
            if v in FAIL: o='failed'; break
            if v in ERR: o='error'; break
    reruns=[k for k in kinds if k in('flakyFailure','flakyError','rerunFailure','rerunError')]
    if o=='passed' and reruns: o='flaky'
    return o
def count(root):
    res={'tests':0,'failed':0,'error':0,'skipped':0,'flaky':0,'passed':0}
    def rec(o):
        res['tests']+=1; res[o if o!='error' else 'error']+=1
    def suite(s, name):
        prev=None  # (key, outcome)
        for c in s:
            t=ln(c.tag)
            if t=='testsuite':
                if prev: rec(prev[1]); prev=None
                suite(c, c.get('name',''))
            elif t=='testcase':
                o=outcome(c); key=(c.get('classname',''), c.get('name',''))
                if prev and prev[0]==key and prev[1] in('failed','error'):
                    if o=='passed': o='flaky'
                    prev=(key,o)
                else:
                    if prev: rec(prev[1])
                    prev=(key,o)
            elif t in('error','failure') and ln(s.tag)=='testsuite':
                if prev: rec(prev[1]); prev=None
                rec('error' if t=='error' else 'failed')
        if prev: rec(prev[1])
    suite(root, root.get('name',''))
    return res
for f in sorted(glob.glob(sys.argv[1]+'/*.xml')):
    try:
        r=ET.parse(f).getroot()
        if ln(r.tag) not in('testsuites','testsuite'): print(os.path.basename(f),'NOT_JUNIT'); continue
        c=count(r)
        print(f"{os.path.basename(f)}: tc={c['tests']} f={c['failed']} e={c['error']} s={c['skipped']} flaky={c['flaky']}")
    except Exception as e:
        print(os.path.basename(f),'PE',type(e).__name__, e)
