#!/usr/bin/env python3
"""deploy.sh-vs-Terraform drift check: gcp-cloudrun/deploy.sh and
terraform/gcp/module/ must build the same Google Cloud stack.

Both are read into the same plain model, then compared field by field:

  run              per Cloud Run service, worker pool and job (by name):
                   kind, args, env var names (plain or secret), service
                   account, timeout, min/max instances, concurrency, cpu,
                   memory, custom audiences, invokers (role and member:
                   --allow-unauthenticated is run.invoker for allUsers),
                   worker pool instances, job retries and tasks
  service_accounts the account ids, and the grants on each account
  subscriptions    per subscription (queue and dead-letter): push or pull,
                   push endpoint, OIDC audience and account, ack deadline,
                   dead-letter topic, max delivery attempts, the members
                   holding roles/pubsub.subscriber on it
  scheduler        per Cloud Scheduler job: schedule, time zone, method,
                   the URI's path, auth (OAuth/OIDC account and scope)

How each side is read:
  * deploy.sh: run as `deploy.sh --print` (offline, in an empty
    environment, no gcloud call), which prints every `g "<command>" ARGS`
    call the script makes, loops and variables expanded, instead of running
    it. Values are deploy.sh's defaults, PROJECT=check-project and project
    number 0 (what --check uses); IMAGE is "<var.image>" and SCHEDULE
    "<var.schedule>" so they read like the Terraform's variables. When the
    create and update of one subscription or scheduler job disagree, that is
    reported too.
  * Terraform: python-hcl2 (8.x, which keeps string quotes), then a small
    evaluator for the expressions the module uses: var. (defaults; project
    "check-project"), local., each., dynamic-block iterators, resource
    attributes (names, emails, ids), data.google_project.project.number (0),
    merge/coalesce/toset/keys/contains/tostring, list literals, `for`
    expressions, conditionals, !, ==, !=. Anything else fails with exit 2,
    never "no drift": restructure the module and this script together.

Every mismatch is printed on its own line; exit status 1 on drift, 2 on a
usage or parse error.

  scripts/check-gcp-drift.py              # the repository's files
  scripts/check-gcp-drift.py --self-test  # plants drift in a copy and
                                          # expects it reported

Needs python-hcl2 (8.x); scripts/validate-deploy.sh installs it, pinned.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import drift_common  # scripts/drift_common.py, beside this script
from drift_common import compare, fmt

PROJECT = "check-project"
PROJECT_NUMBER = "0"


class Unreadable(Exception):
    """A file the check cannot read (not drift: exit 2)."""


def seconds(value):
    if value is None:
        return None
    m = re.fullmatch(r"(\d+)s?", str(value))
    if not m:
        raise Unreadable(f"not a duration in seconds: {value!r}")
    return int(m.group(1))


def num(value):
    return None if value is None else int(value)


# ---------------------------------------------------------------- deploy.sh
def print_deploy(root: Path) -> list[tuple[str, list[str]]]:
    script = root / "gcp-cloudrun" / "deploy.sh"
    if not script.is_file():
        raise Unreadable(f"{script}: not found")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"),
           "IMAGE": "<var.image>", "SCHEDULE": "<var.schedule>"}
    proc = subprocess.run(["bash", str(script), "--print"], capture_output=True, text=True,
                          env=env, check=False, timeout=60)
    if proc.returncode != 0:
        raise Unreadable(f"{script} --print exited {proc.returncode}: {proc.stderr.strip()}")
    calls = []
    for line in proc.stdout.splitlines():
        parts = line.split("\t")
        if parts[0] != "g" or len(parts) < 2:
            raise Unreadable(f"{script} --print: unexpected line {line!r}")
        calls.append((parts[1], parts[2:]))
    if not calls:
        raise Unreadable(f"{script} --print printed no gcloud command")
    return calls


def split_args(args):
    """ARGS -> (positional, {flag: value or True})."""
    pos, flags = [], {}
    for a in args:
        if a.startswith("--"):
            k, eq, v = a[2:].partition("=")
            flags[k] = v if eq else True
        else:
            pos.append(a)
    return pos, flags


def env_names(flags):
    out = {}
    for key, kind in (("set-env-vars", "plain"), ("set-secrets", "secret")):
        if key in flags:
            for pair in flags[key].split(","):
                out[pair.split("=", 1)[0]] = kind
    return out


def read_deploy(root: Path) -> tuple[dict, list[str]]:
    model = {"run": {}, "service_accounts": {}, "subscriptions": {}, "scheduler": {}}
    inner = []  # deploy.sh disagreeing with itself (create vs update)
    sa_grants = {}
    invokers = {}
    subs_seen = {}
    for path, args in print_deploy(root):
        pos, f = split_args(args)
        name = pos[0] if pos else None
        if path == "iam service-accounts create":
            model["service_accounts"].setdefault(name, [])
        elif path == "iam service-accounts add-iam-policy-binding":
            sa_grants.setdefault(name.split("@")[0], []).append(f"{f['role']} {f['member']}")
        elif path in ("run deploy", "beta run worker-pools deploy", "run jobs deploy"):
            kind = {"run deploy": "service", "beta run worker-pools deploy": "worker_pool",
                    "run jobs deploy": "job"}[path]
            r = {
                "kind": kind,
                "args": f.get("args", "").split(",") if f.get("args") else [],
                "env": env_names(f),
                "service_account": f.get("service-account"),
                "cpu": f.get("cpu"), "memory": f.get("memory"),
            }
            if kind == "service":
                r.update({"timeout": seconds(f.get("timeout")),
                          "min_instances": num(f.get("min-instances")),
                          "max_instances": num(f.get("max-instances")),
                          "concurrency": num(f.get("concurrency")),
                          "audiences": sorted(f["set-custom-audiences"].split(","))
                          if f.get("set-custom-audiences") else []})
                if f.get("allow-unauthenticated") is True:
                    invokers.setdefault(name, []).append("roles/run.invoker allUsers")
            elif kind == "worker_pool":
                r["instances"] = num(f.get("scaling"))
            else:
                r.update({"timeout": seconds(f.get("task-timeout")),
                          "max_retries": num(f.get("max-retries")),
                          "tasks": num(f.get("tasks", 1))})
            model["run"][name] = r
        elif path in ("run services add-iam-policy-binding", "run jobs add-iam-policy-binding"):
            invokers.setdefault(name, []).append(f"{f['role']} {f['member']}")
        elif path in ("pubsub subscriptions create", "pubsub subscriptions update"):
            s = {
                "mode": "push" if f.get("push-endpoint") else "pull",
                "push_endpoint": urlparse(f["push-endpoint"]).path if f.get("push-endpoint") else None,
                "push_host": urlparse(f["push-endpoint"]).netloc if f.get("push-endpoint") else None,
                "push_audience": f.get("push-auth-token-audience"),
                "push_service_account": f.get("push-auth-service-account"),
                "ack_deadline": num(f.get("ack-deadline", 10)),
                "dead_letter_topic": f.get("dead-letter-topic"),
                "max_delivery_attempts": num(f.get("max-delivery-attempts")),
            }
            if name in subs_seen:
                for k in s:
                    if subs_seen[name][k] != s[k]:
                        inner.append(f"deploy.sh: the create and update of subscription {name} disagree on "
                                     f"{k}: {fmt(subs_seen[name][k])} vs {fmt(s[k])}")
            else:
                subs_seen[name] = s
                model["subscriptions"][name] = {**s, "subscribers": set()}
        elif path == "pubsub subscriptions add-iam-policy-binding":
            if f["role"] == "roles/pubsub.subscriber":
                model["subscriptions"].setdefault(name, {"subscribers": set()})["subscribers"].add(f["member"])
        elif path == "pubsub subscriptions remove-iam-policy-binding":
            if name in model["subscriptions"]:
                model["subscriptions"][name]["subscribers"].discard(f["member"])
        elif path in ("scheduler jobs create http", "scheduler jobs update http"):
            j = {
                "schedule": f.get("schedule"),
                "time_zone": f.get("time-zone", "Etc/UTC"),
                "method": f.get("http-method", "POST"),
                "uri_path": urlparse(f.get("uri", "")).path,
                "auth": (f"oauth {f['oauth-service-account-email']} {f.get('oauth-token-scope')}"
                         if f.get("oauth-service-account-email") else
                         f"oidc {f['oidc-service-account-email']}" if f.get("oidc-service-account-email") else None),
            }
            if name in model["scheduler"]:
                for k in j:
                    if model["scheduler"][name][k] != j[k]:
                        inner.append(f"deploy.sh: the create and update of scheduler job {name} disagree on "
                                     f"{k}: {fmt(model['scheduler'][name][k])} vs {fmt(j[k])}")
            else:
                model["scheduler"][name] = j
    for sub in model["subscriptions"].values():
        sub["subscribers"] = sorted(sub["subscribers"])
    for name, grants in sa_grants.items():
        model["service_accounts"].setdefault(name, []).extend(grants)
    model["service_accounts"] = {k: sorted(v) for k, v in model["service_accounts"].items()}
    for name, r in model["run"].items():
        r["invokers"] = sorted(invokers.get(name, []))
    for name in invokers:
        if name not in model["run"]:
            inner.append(f"deploy.sh: an invoker binding on {name}, which it does not deploy")
    return model, inner


# --------------------------------------------------------------- terraform
TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<num>\d+(?:\.\d+)?)
  | (?P<op>==|!=|&&|\|\||=>|[-.\[\](),?:!{}<>+*/%])
  | (?P<ident>[A-Za-z_][A-Za-z0-9_-]*)
""", re.X)


def tokenize(text):
    toks, i = [], 0
    while i < len(text):
        c = text[i]
        if c == '"':  # a template string: up to the matching quote
            j, depth = i + 1, 0
            while j < len(text):
                if text[j] == "\\":
                    j += 2
                    continue
                if text.startswith("${", j):
                    depth += 1
                    j += 2
                    continue
                if text[j] == "}" and depth:
                    depth -= 1
                elif text[j] == '"' and not depth:
                    break
                j += 1
            toks.append(("str", text[i + 1:j]))
            i = j + 1
            continue
        m = TOKEN.match(text, i)
        if not m:
            raise Unreadable(f"terraform: cannot read expression {text!r} at {text[i:]!r}")
        if m.lastgroup != "ws":
            toks.append((m.lastgroup, m.group()))
        i = m.end()
    return toks


class Unknown(str):
    """A value Terraform knows only after apply (a service's URI)."""


class Terraform:
    def __init__(self, module_dir: Path):
        self.dir = module_dir
        module = drift_common.read_module(module_dir, Unreadable)
        self.resources, self.locals, self.variables = (
            module["resource"], module["locals"], module["variable"])
        self._local_cache = {}

    # ------------------------------------------------------------ values
    def value(self, v, scope=None):
        """A python-hcl2 value (string expression, list, dict, literal)."""
        scope = scope or {}
        if isinstance(v, list):
            return [self.value(x, scope) for x in v]
        if isinstance(v, dict):
            return {k: self.value(x, scope) for k, x in v.items()}
        if not isinstance(v, str):
            return v
        if v.startswith('"') and v.endswith('"') and len(v) >= 2:
            return self.template(v[1:-1], scope)
        if v.startswith("${") and v.endswith("}") and self._one_interpolation(v):
            return self.expr(v[2:-1], scope)
        return self.template(v, scope)

    @staticmethod
    def _one_interpolation(v):
        depth, i = 0, 0
        while i < len(v):
            if v.startswith("${", i):
                depth += 1
                i += 2
                continue
            if v[i] == "}":
                depth -= 1
                if depth == 0 and i != len(v) - 1:
                    return False
            i += 1
        return True

    def template(self, text, scope):
        out, i = "", 0
        while i < len(text):
            if text.startswith("${", i):
                depth, j = 1, i + 2
                while j < len(text) and depth:
                    if text.startswith("${", j):
                        depth += 1
                        j += 2
                        continue
                    depth += {"{": 1, "}": -1}.get(text[j], 0)
                    j += 1
                if depth:
                    raise Unreadable(f"terraform: unbalanced interpolation in {text!r}")
                val = self.expr(text[i + 2:j - 1], scope)
                if isinstance(val, (list, dict)) or val is None:
                    raise Unreadable(f"terraform: {text[i:j]!r} is not a string in a template")
                out += str(val).lower() if isinstance(val, bool) else str(val)
                i = j
            else:
                out += text[i]
                i += 1
        return out

    def expr(self, text, scope):
        p = Parser(self, tokenize(text), scope, text)
        val = p.parse()
        if p.i != len(p.toks):
            raise Unreadable(f"terraform: cannot read expression {text!r} (stopped at {p.toks[p.i:]})")
        return val

    def local(self, name):
        if name not in self._local_cache:
            if name not in self.locals:
                raise Unreadable(f"terraform/gcp/module: local.{name} not found")
            self._local_cache[name] = self.value(self.locals[name])
        return self._local_cache[name]

    def var(self, name):
        if name == "project":
            return PROJECT
        if name not in self.variables:
            raise Unreadable(f"terraform/gcp/module: var.{name} not declared")
        var = self.variables[name]
        if "default" not in var:
            return Unknown(f"<var.{name}>")
        return self.value(var["default"])

    def res(self, rtype, name):
        try:
            return self.resources[rtype][name]
        except KeyError:
            raise Unreadable(f"terraform/gcp/module: resource {rtype}.{name} not found") from None

    def instances(self, rtype, name):
        """[(each scope, body)] of a resource: one, or one per for_each key;
        a `count` of a condition is read as present."""
        body = self.res(rtype, name)
        if "for_each" not in body:
            return [({}, body)]
        fe = self.value(body["for_each"])
        if isinstance(fe, dict):
            return [({"each": {"key": k, "value": v}}, body) for k, v in fe.items()]
        if isinstance(fe, list):
            return [({"each": {"key": k, "value": k}}, body) for k in fe]
        raise Unreadable(f"terraform/gcp/module: {rtype}.{name}: for_each {body['for_each']!r} not understood")

    def attribute(self, rtype, name, key, attr):
        """An attribute of a resource instance (key: the for_each key or None)."""
        body = self.res(rtype, name)
        scope = {"each": {"key": key, "value": key}} if key is not None else {}
        if rtype == "google_service_account":
            email = f"{self.value(body['account_id'], scope)}@{PROJECT}.iam.gserviceaccount.com"
            return {"email": email, "member": f"serviceAccount:{email}", "name": email,
                    "id": email}.get(attr) or self._no_attr(rtype, name, attr)
        if rtype == "google_pubsub_topic":
            n = self.value(body["name"], scope)
            return {"name": n, "id": f"projects/{PROJECT}/topics/{n}"}.get(attr) or self._no_attr(rtype, name, attr)
        if rtype == "google_secret_manager_secret" and attr in ("secret_id", "name", "id"):
            return self.value(body["secret_id"], scope)
        if attr == "name" and "name" in body:
            return self.value(body["name"], scope)
        if attr == "uri":
            return Unknown(f"<{rtype}.{name}.uri>")
        return self._no_attr(rtype, name, attr)

    @staticmethod
    def _no_attr(rtype, name, attr):
        raise Unreadable(f"terraform/gcp/module: {rtype}.{name}.{attr} is not an attribute this check reads")


class Parser:
    """Recursive descent over the module's expression subset."""

    def __init__(self, tf, toks, scope, text):
        self.tf, self.toks, self.scope, self.text, self.i = tf, toks, scope, text, 0
        self.dry = 0  # > 0: reading the branch a conditional did not take

    def peek(self, k=0):
        return self.toks[self.i + k] if self.i + k < len(self.toks) else (None, None)

    def take(self, want=None):
        tok = self.peek()
        if tok[0] is None or (want is not None and tok[1] != want):
            raise Unreadable(f"terraform: expected {want!r} in {self.text!r}, got {tok[1]!r}")
        self.i += 1
        return tok

    def parse(self):
        cond = self.binary()
        if self.peek()[1] == "?":
            self.take("?")
            self.dry += not cond
            a = self.parse()
            self.dry -= not cond
            self.take(":")
            self.dry += bool(cond)
            b = self.parse()
            self.dry -= bool(cond)
            return a if cond else b
        return cond

    def binary(self):
        left = self.unary()
        while self.peek()[1] in ("==", "!=", "&&", "||"):
            op = self.take()[1]
            right = self.unary()
            if self.dry:
                continue
            left = {"==": left == right, "!=": left != right,
                    "&&": bool(left) and bool(right), "||": bool(left) or bool(right)}[op]
        return left

    def unary(self):
        if self.peek()[1] == "!":
            self.take()
            val = self.unary()
            return None if self.dry else not val
        return self.postfix(self.primary())

    def primary(self):
        kind, tok = self.take()
        if kind == "str":
            return self.tf.template(tok.replace('\\"', '"'), self.scope)
        if kind == "num":
            return float(tok) if "." in tok else int(tok)
        if tok == "(":
            v = self.parse()
            self.take(")")
            return v
        if tok == "[":
            if self.peek()[1] == "for":
                return self.for_list()
            items = []
            while self.peek()[1] != "]":
                items.append(self.parse())
                if self.peek()[1] == ",":
                    self.take(",")
            self.take("]")
            return items
        if kind != "ident":
            raise Unreadable(f"terraform: unexpected {tok!r} in {self.text!r}")
        if tok in ("true", "false"):
            return tok == "true"
        if tok == "null":
            return None
        if self.peek()[1] == "(":
            return self.call(tok)
        return self.reference(tok)

    def call(self, fn):
        self.take("(")
        args = []
        while self.peek()[1] != ")":
            args.append(self.parse())
            if self.peek()[1] == ",":
                self.take(",")
        self.take(")")
        if self.dry:
            return None
        if fn == "merge":
            out = {}
            for a in args:
                out.update(a)
            return out
        if fn == "coalesce":
            return next((a for a in args if a not in (None, "")), None)
        if fn == "toset":
            return sorted(set(args[0]), key=args[0].index)
        if fn == "keys":
            return list(args[0])
        if fn == "values":
            return list(args[0].values())
        if fn == "contains":
            return args[1] in args[0]
        if fn == "tostring":
            return str(args[0])
        raise Unreadable(f"terraform: function {fn}() in {self.text!r} is not one this check evaluates")

    def for_list(self):
        self.take("for")
        var = self.take()[1]
        self.take("in")
        start = self.i
        coll = self.binary()
        self.take(":")
        body_start = self.i
        items = [] if self.dry else coll if isinstance(coll, list) else list(coll)
        # re-parse the body and condition per item
        out = []
        end = None
        for item in items:
            self.i = body_start
            saved = self.scope
            self.scope = {**saved, var: item}
            val = self.parse()
            keep = True
            if self.peek()[1] == "if":
                self.take("if")
                keep = self.parse()
            end = self.i
            self.scope = saved
            if keep:
                out.append(val)
        if end is None:  # empty collection: skip to the closing bracket
            depth = 0
            self.i = start
            while not (self.peek()[1] == "]" and depth == 0):
                depth += {"[": 1, "]": -1}.get(self.peek()[1], 0)
                self.i += 1
            end = self.i
        self.i = end
        self.take("]")
        return out

    def reference(self, head):
        """var.x, local.x, each.key, <iterator>.value, data..., resource attrs."""
        def attr():
            self.take(".")
            return self.take()[1]

        def index():
            self.take("[")
            k = self.parse()
            self.take("]")
            return k

        if self.dry:  # consume the reference, evaluate nothing
            while self.peek()[1] in (".", "["):
                attr() if self.peek()[1] == "." else index()
            return None
        if head == "var":
            return self.tf.var(attr())
        if head == "local":
            return self.tf.local(attr())
        if head in self.scope:
            val = self.scope[head]
            return val
        if head == "data":
            path = ".".join(attr() for _ in range(3))
            if path == "google_project.project.number":
                return PROJECT_NUMBER
            raise Unreadable(f"terraform: data.{path} is not one this check reads")
        if head.startswith("google_"):
            name = attr()
            key = index() if self.peek()[1] == "[" else None
            if self.peek()[1] != ".":  # the whole resource (a for_each map)
                return {k: {"member": self.tf.attribute(head, name, k, "member")}
                        for k, _ in ((s["each"]["key"], b) for s, b in self.tf.instances(head, name))} \
                    if head == "google_service_account" else Unknown(f"<{head}.{name}>")
            return self.tf.attribute(head, name, key, attr())
        raise Unreadable(f"terraform: reference {head!r} in {self.text!r} is not one this check reads")

    def postfix(self, val):
        if self.dry:
            while self.peek()[1] in (".", "["):
                if self.take()[1] == ".":
                    self.take()
                else:
                    self.parse()
                    self.take("]")
            return None
        while self.peek()[1] in (".", "["):
            if self.peek()[1] == ".":
                self.take(".")
                k = self.take()[1]
            else:
                self.take("[")
                k = self.parse()
                self.take("]")
            if isinstance(val, dict) and k in val:
                val = val[k]
            elif isinstance(val, list) and isinstance(k, int):
                val = val[k]
            else:
                raise Unreadable(f"terraform: no {k!r} in {fmt(val)} ({self.text!r})")
        return val


def one(blocks, what):
    if not isinstance(blocks, list) or len(blocks) != 1:
        raise Unreadable(f"terraform/gcp/module: expected one {what} block")
    return blocks[0]


def tf_env(tf, container, scope):
    """The env var names of a container: static env blocks and dynamic ones."""
    out = {}
    for e in container.get("env", []):
        out[tf.value(e["name"], scope)] = "secret" if "value_source" in e else "plain"
    for d in container.get("dynamic", []):
        if "env" not in d:
            continue
        d = d["env"]
        coll = tf.value(d["for_each"], scope)
        content = one(d["content"], "dynamic env content")
        if content.get("name") != "${env.key}":
            raise Unreadable("terraform/gcp/module: dynamic env name is not env.key")
        for k in coll:
            out[k] = "secret" if "value_source" in content else "plain"
    return out


def read_terraform(module_dir: Path) -> dict:
    tf = Terraform(module_dir)
    v = tf.value
    model = {"run": {}, "service_accounts": {}, "subscriptions": {}, "scheduler": {}}

    invokers = {}
    for rtype in ("google_cloud_run_v2_service_iam_member", "google_cloud_run_v2_job_iam_member"):
        for name in tf.resources.get(rtype, {}):
            for scope, body in tf.instances(rtype, name):
                invokers.setdefault(v(body["name"], scope), []).append(
                    f"{v(body['role'], scope)} {v(body['member'], scope)}")

    def limits(c):
        res = c.get("resources", [])
        lim = v(one(res, "resources").get("limits", {})) if res else {}
        return lim.get("cpu"), lim.get("memory")

    for name, body in tf.resources.get("google_cloud_run_v2_service", {}).items():
        t = one(body["template"], f"{name} template")
        c = one(t["containers"], f"{name} containers")
        sc = one(t.get("scaling", [{}]), f"{name} scaling")
        cpu, mem = limits(c)
        rname = v(body["name"])
        model["run"][rname] = {
            "kind": "service", "args": v(c.get("args", [])), "env": tf_env(tf, c, {}),
            "service_account": v(t.get("service_account")), "cpu": cpu, "memory": mem,
            "timeout": seconds(v(t.get("timeout"))),
            "min_instances": num(v(sc.get("min_instance_count"))),
            "max_instances": num(v(sc.get("max_instance_count"))),
            "concurrency": num(v(t.get("max_instance_request_concurrency"))),
            "audiences": sorted(v(body.get("custom_audiences", []))),
        }
    for name, body in tf.resources.get("google_cloud_run_v2_worker_pool", {}).items():
        t = one(body["template"], f"{name} template")
        c = one(t["containers"], f"{name} containers")
        sc = one(body.get("scaling", [{}]), f"{name} scaling")
        if v(sc.get("scaling_mode")) != "MANUAL":
            raise Unreadable(f"terraform/gcp/module: worker pool {name} is not manually scaled")
        cpu, mem = limits(c)
        model["run"][v(body["name"])] = {
            "kind": "worker_pool", "args": v(c.get("args", [])), "env": tf_env(tf, c, {}),
            "service_account": v(t.get("service_account")), "cpu": cpu, "memory": mem,
            "instances": num(v(sc.get("manual_instance_count"))),
        }
    for name, body in tf.resources.get("google_cloud_run_v2_job", {}).items():
        outer = one(body["template"], f"{name} template")
        t = one(outer["template"], f"{name} task template")
        c = one(t["containers"], f"{name} containers")
        cpu, mem = limits(c)
        model["run"][v(body["name"])] = {
            "kind": "job", "args": v(c.get("args", [])), "env": tf_env(tf, c, {}),
            "service_account": v(t.get("service_account")), "cpu": cpu, "memory": mem,
            "timeout": seconds(v(t.get("timeout"))),
            "max_retries": num(v(t.get("max_retries", 3))),
            "tasks": num(v(outer.get("task_count", 1))),
        }
    for rname, r in model["run"].items():
        r["invokers"] = sorted(invokers.pop(rname, []))
    for rname in invokers:
        model["run"].setdefault(rname, {})["invokers"] = sorted(invokers[rname])

    for name in tf.resources.get("google_service_account", {}):
        for scope, body in tf.instances("google_service_account", name):
            model["service_accounts"][v(body["account_id"], scope)] = []
    for name in tf.resources.get("google_service_account_iam_member", {}):
        for scope, body in tf.instances("google_service_account_iam_member", name):
            acct = v(body["service_account_id"], scope).split("@")[0]
            model["service_accounts"].setdefault(acct, []).append(f"{v(body['role'], scope)} {v(body['member'], scope)}")
    model["service_accounts"] = {k: sorted(x) for k, x in model["service_accounts"].items()}

    ids = {}
    for name in tf.resources.get("google_pubsub_subscription", {}):
        for scope, body in tf.instances("google_pubsub_subscription", name):
            sname = v(body["name"], scope)
            ids[(name, scope.get("each", {}).get("key"))] = sname
            push = None
            pushes = list(body.get("push_config", []))
            for d in body.get("dynamic", []):
                if "push_config" in d:
                    d = d["push_config"]
                    for item in v(d["for_each"], scope):
                        content = one(d["content"], "push_config content")
                        pushes.append((content, {**scope, "push_config": {"value": item, "key": item}}))
            pushes = [p if isinstance(p, tuple) else (p, scope) for p in pushes]
            if len(pushes) > 1:
                raise Unreadable(f"terraform/gcp/module: subscription {sname}: more than one push_config")
            if pushes:
                content, pscope = pushes[0]
                endpoint = v(content["push_endpoint"], pscope)
                oidc = one(content.get("oidc_token", [{}]), "oidc_token")
                push = (endpoint, v(oidc.get("audience"), pscope), v(oidc.get("service_account_email"), pscope))
            dl = body.get("dead_letter_policy", [])
            dl = one(dl, "dead_letter_policy") if dl else {}
            topic = v(dl.get("dead_letter_topic"), scope)
            model["subscriptions"][sname] = {
                "mode": "push" if push else "pull",
                "push_endpoint": urlparse(push[0]).path if push else None,
                "push_host": urlparse(push[0]).netloc if push else None,
                "push_audience": push[1] if push else None,
                "push_service_account": push[2] if push else None,
                "ack_deadline": num(v(body.get("ack_deadline_seconds", 10), scope)),
                "dead_letter_topic": topic.rsplit("/", 1)[-1] if topic else None,
                "max_delivery_attempts": num(v(dl.get("max_delivery_attempts"), scope)) if dl else None,
                "subscribers": [],
            }
    for name in tf.resources.get("google_pubsub_subscription_iam_member", {}):
        for scope, body in tf.instances("google_pubsub_subscription_iam_member", name):
            if v(body["role"], scope) != "roles/pubsub.subscriber":
                continue
            sname = v(body["subscription"], scope)
            model["subscriptions"].setdefault(sname, {"subscribers": []})["subscribers"].append(v(body["member"], scope))
    for s in model["subscriptions"].values():
        s["subscribers"] = sorted(s["subscribers"])

    for name in tf.resources.get("google_cloud_scheduler_job", {}):
        for scope, body in tf.instances("google_cloud_scheduler_job", name):
            h = one(body["http_target"], f"{name} http_target")
            oauth = h.get("oauth_token", [])
            oidc = h.get("oidc_token", [])
            auth = None
            if oauth:
                o = one(oauth, "oauth_token")
                auth = f"oauth {v(o['service_account_email'], scope)} {v(o.get('scope'), scope)}"
            elif oidc:
                auth = f"oidc {v(one(oidc, 'oidc_token')['service_account_email'], scope)}"
            uri = v(h["uri"], scope)
            path = re.sub(r"^<[^>]*>", "", uri) if uri.startswith("<") else urlparse(uri).path
            model["scheduler"][v(body["name"], scope)] = {
                # a job that exists only when a variable is set (count): its
                # schedule is that variable, read as deploy.sh's SCHEDULE
                "schedule": (f"<{body['schedule'][2:-1]}>" if re.fullmatch(r"\$\{var\.\w+\}", body["schedule"])
                             else v(body["schedule"], scope)),
                "time_zone": v(body.get("time_zone", '"Etc/UTC"'), scope),
                "method": v(h.get("http_method", '"POST"'), scope),
                "uri_path": path,
                "auth": auth,
            }
    return model


# ----------------------------------------------------------------- compare
def check(root: Path) -> list[str]:
    d, inner = read_deploy(root)
    t = read_terraform(root / "terraform" / "gcp" / "module")
    return inner + compare(d, t, ("deploy.sh", "the Terraform", "deploy.sh", "terraform"))


def dump(root: Path, side: str) -> dict:
    return read_deploy(root)[0] if side == "deploy" else read_terraform(root / "terraform" / "gcp" / "module")


# --------------------------------------------------------------- self-test
# (file, old, new, words the report must contain on one line)
PLANTS = [
    ("terraform/gcp/module/scheduler.tf",
     'schedule  = "*/5 * * * *"', 'schedule  = "*/10 * * * *"',
     ["testexec-sweep.schedule", "*/5 * * * *", "*/10 * * * *"]),
    ("terraform/gcp/module/main.tf",
     'results  = "collect"', 'results  = "report"',
     ["testexec-results-sub.push_endpoint", "/queues/collect", "/queues/report"]),
]
DEPLOY_PLANTS = [
    ("gcp-cloudrun/deploy.sh",
     "--args=worker,--queue,execute", "--args=serve,--jobs,2",
     ["testexec-workers.args", "worker", "serve"]),
    ("gcp-cloudrun/deploy.sh",
     ",TESTEXEC_GCP_PUSH_SERVICE_ACCOUNT=$(sa push)\"", "\"",
     ["TESTEXEC_GCP_PUSH_SERVICE_ACCOUNT", "testexec-handlers.env", "not in deploy.sh"]),
    ("gcp-cloudrun/deploy.sh",
     "declare -A push_handler=([requests]=trigger [results]=collect [reports]=report)",
     "declare -A push_handler=([requests]=trigger [results]=collect [reports]=report [shards]=execute)",
     ["testexec-shards-sub.mode", "push", "pull"]),
]


def self_test(root: Path) -> int:
    return drift_common.self_test(
        Path(__file__).resolve(), root, ["gcp-cloudrun", "terraform/gcp"],
        [("clean copy", []), ("terraform drift", PLANTS), ("deploy.sh drift", DEPLOY_PLANTS)],
        "gcp-drift-", Unreadable,
        "a clean copy agrees; a changed sweep schedule and push endpoint in the Terraform, "
        "and the worker pool's args, a handlers env var and a pushed shards queue in "
        "deploy.sh, are each reported")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent,
                    help="repository root holding gcp-cloudrun/deploy.sh and terraform/gcp/module (default: this script's)")
    ap.add_argument("--self-test", action="store_true",
                    help="plant drift in a temporary copy and expect it to be reported")
    ap.add_argument("--dump", choices=("deploy", "terraform"), help="print one side's model (debugging)")
    args = ap.parse_args()
    try:
        if args.self_test:
            return self_test(args.root)
        if args.dump:
            print(json.dumps(dump(args.root, args.dump), indent=1, sort_keys=True))
            return 0
        problems = check(args.root)
    except Unreadable as err:
        print(f"check-gcp-drift: {err}", file=sys.stderr)
        return 2
    if problems:
        print(f"gcp-cloudrun/deploy.sh and terraform/gcp/module disagree ({len(problems)}):")
        for p in problems:
            print(f"  - {p}")
        return 1
    print("gcp drift: none (Cloud Run services, worker pool, jobs: args, env names, accounts, sizes, "
          "scaling, timeouts, audiences, invokers; service accounts and their grants; subscriptions: "
          "push/pull, endpoints, OIDC, ack deadlines, dead letters, subscribers; scheduler jobs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
