#!/usr/bin/env python3
"""Bicep-vs-Terraform drift check: azure/main.bicep and terraform/azure/module/
must describe the same Azure stack.

Both are read into the same plain model, then compared field by field:

  params    each Bicep parameter's default = its Terraform variable's
            (snake_case of the same name), the prefix's length bounds
  names     log workspace, environment, intake app, identities, blob
            container, table; every queue and poison queue
  storage   SKU (Standard_ZRS), kind, shared-key access (off), public blobs
            (off), minimum TLS, HTTPS only, public network access, blob soft
            delete days, the lifecycle rule (name, blob types, prefix, days)
  logs      workspace SKU and retention
  roles     per identity: the role definition ids on the storage account and
            on the Key Vault
  secrets   the Key Vault secret names; which identity reads them, per app/job
  env       per container: every variable's name and value (or secret)
  intake    args, cpu, memory, ingress (external, port, transport, insecure),
            replicas, HTTP concurrency, probe paths, identity
  jobs      per job: name, trigger (Event/Schedule), cron, replica timeout and
            retry limit, parallelism, completions, min/max executions,
            polling interval, scale rule (name, type, queue, queueLength,
            account, identity), image, args, cpu, memory, identity
  outputs   every Bicep output has a Terraform output of its snake_case name

Names are compared with the prefix as "{prefix}", parameters as
"param:<bicepName>", identities as "identity:<intake|worker>", the storage
account as "storage-account", so a change of default shows once, in params.

How each side is read:
  * Terraform: python-hcl2 (8.x, which keeps string quotes), then a small
    evaluator for the reference forms the module uses (var., local., each.,
    resource attributes, tostring(), the `[for h in values(local.handlers) :
    "..."]` of the queue names). A form it does not know fails with exit 2.
  * Bicep: no Bicep parser exists in Python, so this reads the known shapes
    of azure/main.bicep with regular expressions: `param` lines, the
    `var handlers`/`roles`/`grants`/`vaultReaders`/`secretNames`/`commonEnv`
    literals (one object per line, `key: value` pairs), and each `resource`
    block's text up to the next top-level declaration, searched for
    `key: value`. A shape it does not find is reported as unreadable
    (exit 2), never as "no drift": restructure the Bicep and this script
    together.

Every mismatch is printed on its own line; exit status 1 on drift, 2 on a
usage or parse error.

  scripts/check-azure-drift.py              # the repository's files
  scripts/check-azure-drift.py --self-test  # plants drift in a copy and
                                            # expects it reported

Needs python-hcl2 (8.x); scripts/validate-template.sh installs it, pinned.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import drift_common  # scripts/drift_common.py, beside this script
from drift_common import compare, fmt


class Unreadable(Exception):
    """A file the check cannot read (not drift: exit 2)."""


def camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(w.title() for w in rest)


def snake(camel_name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", camel_name).lower()


# ------------------------------------------------------------------- bicep
def need(pattern, text, what, flags=0, group=1):
    m = re.search(pattern, text, flags)
    if not m:
        raise Unreadable(f"azure/main.bicep: {what} not found (pattern {pattern!r}); update scripts/check-azure-drift.py")
    return m.group(group)


class Bicep:
    def __init__(self, path: Path):
        try:
            self.text = path.read_text()
        except OSError as err:
            raise Unreadable(f"{path}: {err}") from err
        t = self.text
        self.params = {}
        self.param_lines = {}
        for m in re.finditer(r"^param (\w+) (\w+)(?: = (.+))?$", t, re.M):
            self.params[m.group(1)] = m.group(3)
            self.param_lines[m.group(1)] = m.start()
        self.vars = dict(re.findall(r"^var (\w+) = (.+)$", t, re.M))
        # resource blocks: header to the next top-level declaration
        self.resources = {}
        heads = list(re.finditer(r"^resource (\w+) '([^'@]+)@[^']+'( existing)? = ", t, re.M))
        for i, m in enumerate(heads):
            end = heads[i + 1].start() if i + 1 < len(heads) else len(t)
            body = t[m.end():end]
            stop = re.search(r"^(var|output|param) ", body, re.M)
            self.resources[m.group(1)] = {"type": m.group(2), "body": body[: stop.start()] if stop else body}

    def block(self, name):
        if name not in self.resources:
            raise Unreadable(f"azure/main.bicep: resource {name} not found; update scripts/check-azure-drift.py")
        return self.resources[name]["body"]

    def var_block(self, name, open_="[", close="]"):
        return need(rf"^var {name} = \{open_}(.*?)^\{close}", self.text, f"var {name}", re.M | re.S)

    def value(self, expr: str, h: dict | None = None):
        """A Bicep expression as the model's value."""
        e = expr.strip().rstrip(",")
        if re.fullmatch(r"-?\d+", e):
            return int(e)
        if e in ("true", "false"):
            return e == "true"
        m = re.fullmatch(r"'(.*)'", e)
        if m:
            return re.sub(r"\$\{([^}]+)\}", lambda x: str(self.value(x.group(1), h)), m.group(1))
        m = re.fullmatch(r"json\((.+)\)", e)
        if m:
            return float(self.value(m.group(1), h))
        m = re.fullmatch(r"string\((.+)\)", e)
        if m:
            return self.value(m.group(1), h)
        m = re.fullmatch(r"h\.(\w+)", e)
        if m:
            if h is None or m.group(1) not in h:
                raise Unreadable(f"azure/main.bicep: {e} outside a handler loop")
            return h[m.group(1)]
        m = re.fullmatch(r"(\w+)Identity\.(id|properties\.principalId|properties\.clientId)", e)
        if m:
            attr = {"id": "", "properties.principalId": "", "properties.clientId": ".client_id"}[m.group(2)]
            return f"identity:{m.group(1)}{attr}"
        if e == "storage.name":
            return "storage-account"
        if e in ("prefix", "queuePrefix"):
            return "{prefix}"
        if e in self.params:
            return f"param:{e}"
        if e in self.vars:
            return self.value(self.vars[e], h)
        return f"<bicep:{e}>"

    @staticmethod
    def pairs(obj_text: str) -> dict:
        """`{ a: 'x', b: y, c: json('0.5') }` -> {"a": "'x'", "b": "y", ...}."""
        return dict(re.findall(r"(\w+): ((?:'[^']*')|(?:\w+\([^)]*\))|[\w.]+)", obj_text))

    def env(self, text: str, h=None):
        out = {}
        for obj in re.findall(r"\{ name: '[^']+', (?:value|secretRef): [^}]+\}", text):
            p = self.pairs(obj)
            name = self.value(p["name"])
            out[name] = f"secret:{self.value(p['secretRef'])}" if "secretRef" in p else self.value(p["value"], h)
        return out


def read_bicep(path: Path) -> dict:
    b = Bicep(path)
    t = b.text
    v = b.value
    model = {}

    params = {}
    for name, default in b.params.items():
        if default is None:
            params[name] = None
        elif default.strip() == "resourceGroup().location":
            params[name] = "<resource group's>"
        else:
            params[name] = v(default) if not default.strip() in ("prefix",) else default
    # literal defaults, not the "{prefix}" placeholder
    params["prefix"] = need(r"^param prefix string = '(\w+)'", t, "param prefix", re.M)
    lo = int(need(r"@minLength\((\d+)\)\s*@maxLength\(\d+\)\s*param prefix", t, "prefix @minLength"))
    hi = int(need(r"@maxLength\((\d+)\)\s*param prefix", t, "prefix @maxLength"))
    params["prefix (length)"] = [lo, hi]
    model["params"] = params

    handlers = {}
    for line in b.var_block("handlers").splitlines():
        if "{" not in line:
            continue
        p = b.pairs(line)
        handlers[v(p["name"])] = {k: v(x) for k, x in p.items()}
    if len(handlers) != 4:
        raise Unreadable(f"azure/main.bicep: expected 4 handlers, read {sorted(handlers)}")

    def names_of(var):
        tmpl = need(rf"^var {var} = \[for h in handlers: ('.+')\]$", t, f"var {var}", re.M)
        return [v(tmpl, h) for h in handlers.values()]

    queue_names, poison_names = names_of("queueNames"), names_of("poisonNames")
    queues_body = b.block("queues")
    if "concat(queueNames, poisonNames)" not in queues_body:
        raise Unreadable("azure/main.bicep: resource queues no longer loops over concat(queueNames, poisonNames)")
    ident = {k: v(need(r"name: ('[^']+')", b.block(f"{k}Identity"), f"{k}Identity name")) for k in ("intake", "worker")}
    model["names"] = {
        "logs": v(need(r"name: ('[^']+')", b.block("logs"), "logs name")),
        "environment": v(need(r"name: ('[^']+')", b.block("env"), "env name")),
        "intake": v(need(r"name: ('[^']+')", b.block("intake"), "intake name")),
        "identities": ident,
        "container": v(b.vars["container"]),
        "table": v(b.vars["table"]),
        "queue_prefix": v(b.vars["queuePrefix"]),
        "queues": sorted(queue_names + poison_names),
    }

    st = b.block("storage")
    bs = b.block("blobService")
    lc = b.block("lifecycle")
    model["storage"] = {
        "sku": need(r"sku: \{ name: '(\w+)' \}", st, "storage sku"),
        "kind": need(r"kind: '(\w+)'", st, "storage kind"),
        "shared_key_access": v(need(r"allowSharedKeyAccess: (\w+)", st, "allowSharedKeyAccess")),
        "public_blobs": v(need(r"allowBlobPublicAccess: (\w+)", st, "allowBlobPublicAccess")),
        "min_tls": need(r"minimumTlsVersion: '(\w+)'", st, "minimumTlsVersion"),
        "https_only": v(need(r"supportsHttpsTrafficOnly: (\w+)", st, "supportsHttpsTrafficOnly")),
        "public_network": need(r"publicNetworkAccess: '(\w+)'", st, "publicNetworkAccess") == "Enabled",
        "blob_delete_retention_days": int(need(r"deleteRetentionPolicy: \{ enabled: true, days: (\d+) \}", bs, "blob deleteRetentionPolicy")),
        "container_public_access": need(r"publicAccess: '(\w+)'", b.block("blobContainer"), "container publicAccess") != "None",
        "lifecycle": {
            "name": v(need(r"rules: \[\s*\{\s*name: ('[^']+')", lc, "lifecycle rule name")),
            "enabled": v(need(r"enabled: (\w+)", lc, "lifecycle enabled")),
            "blob_types": re.findall(r"'(\w+)'", need(r"blobTypes: \[([^\]]*)\]", lc, "lifecycle blobTypes")),
            "prefixes": [v(x) for x in re.findall(r"('[^']*')", need(r"prefixMatch: \[([^\]]*)\]", lc, "lifecycle prefixMatch"))],
            "delete_after_days": int(need(r"daysAfterModificationGreaterThan: (\d+)", lc, "lifecycle days")),
        },
    }
    lg = b.block("logs")
    model["logs"] = {"sku": need(r"sku: \{ name: '(\w+)' \}", lg, "logs sku"),
                     "retention_days": int(need(r"retentionInDays: (\d+)", lg, "logs retention"))}

    roles = dict(re.findall(r"(\w+): '([0-9a-f-]{36})'", b.var_block("roles", "{", "}")))
    storage_roles = {}
    for who, role in re.findall(r"\{ principal: (\w+)Identity\.properties\.principalId, role: roles\.(\w+) \}", b.var_block("grants")):
        storage_roles.setdefault(who, []).append(roles[role])
    sg = b.block("storageGrants")
    if "scope: storage\n" not in sg or "for g in grants" not in t:
        raise Unreadable("azure/main.bicep: storageGrants is no longer `for g in grants` scoped to storage")
    vault_role = roles[need(r"roleDefinitionId: subscriptionResourceId\('Microsoft.Authorization/roleDefinitions', roles\.(\w+)\)", b.block("vaultGrants"), "vaultGrants role")]
    if "scope: vault\n" not in b.block("vaultGrants"):
        raise Unreadable("azure/main.bicep: vaultGrants no longer scoped to the vault")
    vault_roles = {w: [vault_role] for w in re.findall(r"(\w+)Identity\.properties\.principalId", b.var_block("vaultReaders"))}
    model["roles"] = {"storage": {k: sorted(x) for k, x in storage_roles.items()}, "vault": vault_roles}

    model["secrets"] = sorted(v(x) for x in re.findall(r"'[^']+'", need(r"^var secretNames = \[(.*)\]$", t, "var secretNames", re.M)))
    secret_ident = {}
    for var in ("intakeSecrets", "workerSecrets"):
        body = need(rf"^var {var} = \[(.*?)^\}}\]", t, f"var {var}", re.M | re.S)
        if "secrets/${s}" not in body or "for s in secretNames" not in body:
            raise Unreadable(f"azure/main.bicep: var {var} no longer maps secretNames to vault secret URLs")
        secret_ident[var] = v(need(r"identity: (\w+Identity\.id)", body, f"{var} identity"))

    common_env = b.env(b.var_block("commonEnv"))

    def container_env(body, h=None):
        extra = need(r"env: concat\(commonEnv, \[(.*?)\]\)", body, "container env", re.S)
        return {**common_env, **b.env(extra, h)}

    def secrets_of(body):
        var = need(r"secrets: (\w+)", body, "secrets")
        return secret_ident.get(var, f"<bicep:{var}>")

    def identity_of(body):
        return v(need(r"userAssignedIdentities: \{ '\$\{(\w+Identity)\.id\}': \{\} \}", body, "identity") + ".id")

    def args(body, h=None):
        return [v(x, h) for x in re.findall(r"('[^']*'|h\.\w+)", need(r"args: \[([^\]]*)\]", body, "args"))]

    def resources(body, h=None):
        m = re.search(r"resources: \{ cpu: (json\([^)]*\)), memory: ('[^']*'|h\.\w+) \}", body)
        if not m:
            raise Unreadable("azure/main.bicep: container resources not found")
        return v(m.group(1), h), v(m.group(2), h)

    ib = b.block("intake")
    cpu, mem = resources(ib)
    model["intake"] = {
        "name": v(need(r"name: ('[^']+')", ib, "intake name")),
        "identity": identity_of(ib),
        "secrets_identity": secrets_of(ib),
        "external": v(need(r"external: (\w+)", ib, "ingress external")),
        "target_port": int(need(r"targetPort: (\d+)", ib, "targetPort")),
        "transport": v(need(r"transport: ('\w+')", ib, "transport")),
        "allow_insecure": v(need(r"allowInsecure: (\w+)", ib, "allowInsecure")),
        "container": v(need(r"containers: \[\s*\{\s*name: ('[^']+')", ib, "intake container name")),
        "image": v(need(r"image: (\w+)", ib, "intake image")),
        "args": args(ib),
        "cpu": cpu, "memory": mem,
        "env": container_env(ib),
        "probes": sorted(f"{kind}:{path}:{port}" for kind, path, port in re.findall(
            r"\{ type: '(\w+)', httpGet: \{ path: '([^']+)', port: (\d+) \} \}", ib)),
        "min_replicas": int(need(r"minReplicas: (\d+)", ib, "minReplicas")),
        "max_replicas": int(need(r"maxReplicas: (\d+)", ib, "maxReplicas")),
        "http_rule": v(need(r"rules: \[ \{ name: ('\w+'), http:", ib, "http rule name")),
        "concurrent_requests": v(need(r"concurrentRequests: ('\d+')", ib, "concurrentRequests")),
    }

    jobs = {}
    jb = b.block("jobs")
    if "[for h in handlers:" not in jb:
        raise Unreadable("azure/main.bicep: resource jobs no longer loops over handlers")
    for h in handlers.values():
        cpu, mem = resources(jb, h)
        name = v(need(r"name: ('[^']+')", jb, "job name"), h)
        jobs[name] = {
            "identity": identity_of(jb),
            "secrets_identity": secrets_of(jb),
            "trigger": v(need(r"triggerType: ('\w+')", jb, "triggerType")),
            "cron": None,
            "replica_timeout": v(need(r"replicaTimeout: ([\w.]+)", jb, "replicaTimeout"), h),
            "retry_limit": int(need(r"replicaRetryLimit: (\d+)", jb, "replicaRetryLimit")),
            "parallelism": int(need(r"parallelism: (\d+)", jb, "parallelism")),
            "completions": int(need(r"replicaCompletionCount: (\d+)", jb, "replicaCompletionCount")),
            "min_executions": int(need(r"minExecutions: (\d+)", jb, "minExecutions")),
            "max_executions": int(need(r"maxExecutions: (\d+)", jb, "maxExecutions")),
            "polling_interval": int(need(r"pollingInterval: (\d+)", jb, "pollingInterval")),
            "rule": {
                "name": v(need(r"rules: \[\s*\{\s*name: ('[^']+')", jb, "rule name")),
                "type": v(need(r"rules: \[.*?type: ('[\w-]+')", jb, "rule type", re.S)),
                "account": v(need(r"accountName: ([\w.]+)", jb, "accountName")),
                "queue": v(need(r"queueName: ('[^']+')", jb, "queueName"), h),
                "queue_length": v(need(r"queueLength: ('\d+')", jb, "queueLength")),
                "identity": v(need(r"\}\s*identity: (\w+Identity\.id)", jb, "rule identity")),
            },
            "container": v(need(r"containers: \[\s*\{\s*name: ([\w.]+)", jb, "job container name"), h),
            "image": v(need(r"image: (h\.\w+)", jb, "job image"), h),
            "args": args(jb, h),
            "cpu": cpu, "memory": mem,
            "env": container_env(jb, h),
        }
    sw = b.block("sweep")
    cpu, mem = resources(sw)
    jobs[v(need(r"name: ('[^']+')", sw, "sweep name"))] = {
        "identity": identity_of(sw),
        "secrets_identity": secrets_of(sw),
        "trigger": v(need(r"triggerType: ('\w+')", sw, "sweep triggerType")),
        "cron": v(need(r"cronExpression: ('[^']+')", sw, "cronExpression")),
        "replica_timeout": int(need(r"replicaTimeout: (\d+)", sw, "sweep replicaTimeout")),
        "retry_limit": int(need(r"replicaRetryLimit: (\d+)", sw, "sweep replicaRetryLimit")),
        "parallelism": int(need(r"parallelism: (\d+)", sw, "sweep parallelism")),
        "completions": int(need(r"replicaCompletionCount: (\d+)", sw, "sweep replicaCompletionCount")),
        "min_executions": None, "max_executions": None, "polling_interval": None, "rule": None,
        "container": v(need(r"containers: \[\s*\{\s*name: ('[^']+')", sw, "sweep container name")),
        "image": v(need(r"image: (\w+)", sw, "sweep image")),
        "args": args(sw),
        "cpu": cpu, "memory": mem,
        "env": container_env(sw),
    }
    model["jobs"] = jobs
    # Outputs: every Bicep output has its snake_case Terraform output (the
    # module may add more).
    model["outputs"] = sorted(snake(o) for o in re.findall(r"^output (\w+) ", t, re.M))
    return model


# --------------------------------------------------------------- terraform
def interpolations(text):
    """Splits 'a${x}b${y["${z}"]}' into literal and ("ref", inner) parts,
    matching nested braces."""
    out, i, buf = [], 0, ""
    while i < len(text):
        if text.startswith("${", i):
            depth, j = 1, i + 2
            while j < len(text) and depth:
                depth += {"{": 1, "}": -1}.get(text[j], 0)
                j += 1
            if depth:
                raise Unreadable(f"unbalanced interpolation in {text!r}")
            if buf:
                out.append(buf)
                buf = ""
            out.append(("ref", text[i + 2: j - 1]))
            i = j
        else:
            buf += text[i]
            i += 1
    if buf:
        out.append(buf)
    return out


class Terraform:
    def __init__(self, module_dir: Path):
        module = drift_common.read_module(module_dir, Unreadable)
        self.resources, self.data, self.locals, self.variables, self.outputs = (
            module["resource"], module["data"], module["locals"], module["variable"],
            module["output"])

    def res(self, rtype, name):
        try:
            return self.resources[rtype][name]
        except KeyError:
            raise Unreadable(f"terraform/azure/module: resource {rtype}.{name} not found") from None

    def value(self, expr, each=None):
        """A module expression as the model's value (see the module docstring)."""
        if not isinstance(expr, str):
            return expr
        if expr.startswith('"') and expr.endswith('"'):
            return "".join(p if isinstance(p, str) else str(self.ref(p[1], each)) for p in interpolations(expr[1:-1]))
        parts = interpolations(expr)
        if len(parts) == 1 and not isinstance(parts[0], str):
            return self.ref(parts[0][1], each)
        return expr

    def ref(self, r, each):
        r = r.strip()
        m = re.fullmatch(r"var\.(\w+)", r)
        if m:
            return "{prefix}" if m.group(1) == "prefix" else f"param:{camel(m.group(1))}"
        m = re.fullmatch(r"tostring\((.+)\)", r)
        if m:
            return self.ref(m.group(1), each)
        m = re.fullmatch(r"local\.(\w+)", r)
        if m:
            if m.group(1) not in self.locals:
                raise Unreadable(f"terraform/azure/module: local.{m.group(1)} not found")
            return self.value(self.locals[m.group(1)], each)
        m = re.fullmatch(r"local\.(\w+)\.(\w+)", r)
        if m:
            return self.value(self.locals[m.group(1)][m.group(2)], each)
        if r == "each.key" and each:
            return each[0]
        m = re.fullmatch(r"each\.value\.(\w+)", r)
        if m and each:
            return self.value(each[1][m.group(1)], each)
        m = re.fullmatch(r"azurerm_user_assigned_identity\.(\w+)\.(id|principal_id|client_id)", r)
        if m:
            return f"identity:{m.group(1)}" + (".client_id" if m.group(2) == "client_id" else "")
        if r == "azurerm_storage_account.storage.name":
            return "storage-account"
        m = re.fullmatch(r'azurerm_storage_queue\.queue\["(.*)"\]\.name', r)
        if m:
            return self.value(f'"{m.group(1)}"', each)
        m = re.fullmatch(r"(\w+)\.(key|value)", r)  # dynamic block iterator, left symbolic
        if m:
            return f"<{r}>"
        raise Unreadable(f"terraform/azure/module: expression ${{{r}}} not understood by the drift check")

    def for_names(self, local):
        """`[for h in values(local.handlers) : "..."]` -> the names."""
        expr = self.locals.get(local, "")
        m = re.fullmatch(r'\$\{\[for h in values\(local\.handlers\) : "(.*)"\]\}', expr)
        if not m:
            raise Unreadable(f"terraform/azure/module: local.{local} is not [for h in values(local.handlers) : \"...\"]")
        tmpl = m.group(1).replace("${h.", "${each.value.")
        return [self.value(f'"{tmpl}"', (k, h)) for k, h in self.locals["handlers"].items()]


def one(blocks, what):
    if not isinstance(blocks, list) or len(blocks) != 1:
        raise Unreadable(f"terraform/azure/module: expected one {what} block")
    return blocks[0]


def dynamic(block, name):
    for d in block.get("dynamic", []):
        if name in d:
            return d[name]
    raise Unreadable(f"terraform/azure/module: no dynamic \"{name}\" block")


def read_terraform(module_dir: Path) -> dict:
    tf = Terraform(module_dir)
    v = tf.value
    L = tf.locals
    model = {}

    params = {}
    for name, var in tf.variables.items():
        if name in ("resource_group_name", "storage_account_name", "tags"):
            continue  # Terraform-only (variables.tf says why)
        default = var.get("default", "<required>")
        if name == "location" and default is None:
            default = "<resource group's>"
        params[camel(name)] = None if default == "<required>" else v(default)
    cond = one(tf.variables["prefix"].get("validation", []), "prefix validation")["condition"]
    m = re.search(r"\{(\d+),(\d+)\}", cond)
    params["prefix (length)"] = [int(m.group(1)), int(m.group(2))] if m else "<not found>"
    model["params"] = params

    queues_res = tf.res("azurerm_storage_queue", "queue")
    if queues_res.get("for_each") != "${toset(concat(local.queue_names, local.poison_names))}":
        raise Unreadable("terraform/azure/module: azurerm_storage_queue.queue no longer loops over queue_names + poison_names")
    model["names"] = {
        "logs": v(tf.res("azurerm_log_analytics_workspace", "logs")["name"]),
        "environment": v(tf.res("azurerm_container_app_environment", "env")["name"]),
        "intake": v(tf.res("azurerm_container_app", "intake")["name"]),
        "identities": {k: v(tf.res("azurerm_user_assigned_identity", k)["name"]) for k in ("intake", "worker")},
        "container": v(L["container"]),
        "table": v(L["table"]),
        "queue_prefix": v(L["queue_prefix"]),
        "queues": sorted(tf.for_names("queue_names") + tf.for_names("poison_names")),
    }
    if v(tf.res("azurerm_storage_container", "container")["name"]) != model["names"]["container"] or \
       v(tf.res("azurerm_storage_table", "runs")["name"]) != model["names"]["table"]:
        raise Unreadable("terraform/azure/module: container/table resources no longer named by local.container/local.table")

    st = tf.res("azurerm_storage_account", "storage")
    blob = one(st.get("blob_properties", []), "blob_properties")
    rule = one(tf.res("azurerm_storage_management_policy", "lifecycle")["rule"], "lifecycle rule")
    filters, actions = one(rule["filters"], "filters"), one(rule["actions"], "actions")
    model["storage"] = {
        "sku": f"{v(st['account_tier'])}_{v(st['account_replication_type'])}",
        "kind": v(st.get("account_kind", '"StorageV2"')),
        "shared_key_access": v(st.get("shared_access_key_enabled", True)),
        "public_blobs": v(st.get("allow_nested_items_to_be_public", True)),
        "min_tls": v(st.get("min_tls_version", '"TLS1_2"')),
        "https_only": v(st.get("https_traffic_only_enabled", True)),
        "public_network": v(st.get("public_network_access_enabled", True)),
        "blob_delete_retention_days": v(one(blob["delete_retention_policy"], "delete_retention_policy").get("days", 7)),
        "container_public_access": v(tf.res("azurerm_storage_container", "container").get("container_access_type", '"private"')) != "private",
        "lifecycle": {
            "name": v(rule["name"]),
            "enabled": v(rule["enabled"]),
            "blob_types": [v(x) for x in filters["blob_types"]],
            "prefixes": [v(x) for x in filters["prefix_match"]],
            "delete_after_days": v(one(actions["base_blob"], "base_blob")["delete_after_days_since_modification_greater_than"]),
        },
    }
    lg = tf.res("azurerm_log_analytics_workspace", "logs")
    model["logs"] = {"sku": v(lg["sku"]), "retention_days": v(lg["retention_in_days"])}

    roles = {"storage": {}, "vault": {}}
    for res_name, grants, scope in (("storage", "storage_grants", "${azurerm_storage_account.storage.id}"),
                                    ("vault", "vault_grants", "${data.azurerm_key_vault.vault.id}")):
        ra = tf.res("azurerm_role_assignment", res_name)
        if ra.get("for_each") != f"${{local.{grants}}}" or ra.get("scope") != scope:
            raise Unreadable(f"terraform/azure/module: azurerm_role_assignment.{res_name} is not for_each local.{grants} scoped to {scope}")
        if not str(ra.get("role_definition_id", "")).endswith('roleDefinitions/${each.value.role}"'):
            raise Unreadable(f"terraform/azure/module: azurerm_role_assignment.{res_name} role_definition_id form changed")
        for g in L[grants].values():
            roles[res_name].setdefault(v(g["identity"]), []).append(v(g["role"]))
    model["roles"] = {k: {w: sorted(x) for w, x in r.items()} for k, r in roles.items()}

    model["secrets"] = sorted(v(x) for x in L["secret_names"])
    if L.get("secret_urls") != '${{for s in local.secret_names : s => "${data.azurerm_key_vault.vault.vault_uri}secrets/${s}"}}':
        raise Unreadable("terraform/azure/module: local.secret_urls no longer maps secret_names to vault secret URLs")

    def env_of(container):
        d = dynamic(container, "env")
        m = re.fullmatch(r"\$\{concat\(local\.common_env, local\.(\w+)\)\}", d["for_each"])
        if not m:
            raise Unreadable(f"terraform/azure/module: dynamic env for_each {d['for_each']!r} not understood")
        content = one(d["content"], "env content")
        if (content.get("name"), content.get("value"), content.get("secret_name")) != \
           ("${env.value.name}", "${env.value.value}", "${env.value.secret}"):
            raise Unreadable("terraform/azure/module: dynamic env content no longer name/value/secret")
        out = {}
        for e in L["common_env"] + L[m.group(1)]:
            out[v(e["name"])] = f"secret:{v(e['secret'])}" if e.get("secret") else v(e["value"])
        return out

    def secrets_identity(block):
        d = dynamic(block, "secret")
        content = one(d["content"], "secret content")
        if d["for_each"] != "${local.secret_urls}" or content.get("key_vault_secret_id") != "${secret.value}":
            raise Unreadable("terraform/azure/module: dynamic secret no longer from local.secret_urls")
        return v(content["identity"])

    def identity(block):
        ident = one(block["identity"], "identity")
        ids = ident["identity_ids"]
        return v(ids[0]) if v(ident["type"]) == "UserAssigned" and len(ids) == 1 else f"<{ident}>"

    ia = tf.res("azurerm_container_app", "intake")
    ing = one(ia["ingress"], "ingress")
    tmpl = one(ia["template"], "template")
    c = one(tmpl["container"], "container")
    http = one(tmpl["http_scale_rule"], "http_scale_rule")
    probes = []
    for kind in ("liveness", "readiness"):
        for p in c.get(f"{kind}_probe", []):
            probes.append(f"{kind.title()}:{v(p['path'])}:{v(p['port'])}")
    model["intake"] = {
        "name": v(ia["name"]),
        "identity": identity(ia),
        "secrets_identity": secrets_identity(ia),
        "external": v(ing["external_enabled"]),
        "target_port": v(ing["target_port"]),
        "transport": v(ing["transport"]),
        "allow_insecure": v(ing["allow_insecure_connections"]),
        "container": v(c["name"]),
        "image": v(c["image"]),
        "args": [v(a) for a in c["args"]],
        "cpu": float(v(c["cpu"])), "memory": v(c["memory"]),
        "env": env_of(c),
        "probes": sorted(probes),
        "min_replicas": v(tmpl["min_replicas"]),
        "max_replicas": v(tmpl["max_replicas"]),
        "http_rule": v(http["name"]),
        "concurrent_requests": v(http["concurrent_requests"]),
    }

    jobs = {}
    hj = tf.res("azurerm_container_app_job", "handler")
    if hj.get("for_each") != "${local.handlers}":
        raise Unreadable("terraform/azure/module: azurerm_container_app_job.handler no longer loops over local.handlers")
    for key, h in L["handlers"].items():
        each = (key, h)
        ev = one(hj["event_trigger_config"], "event_trigger_config")
        scale = one(ev["scale"], "scale")
        rule = one(scale["rules"], "rules")
        c = one(one(hj["template"], "template")["container"], "container")
        jobs[v(hj["name"], each)] = {
            "identity": identity(hj),
            "secrets_identity": secrets_identity(hj),
            "trigger": "Event",
            "cron": None,
            "replica_timeout": v(hj["replica_timeout_in_seconds"], each),
            "retry_limit": v(hj["replica_retry_limit"]),
            "parallelism": v(ev["parallelism"]),
            "completions": v(ev["replica_completion_count"]),
            "min_executions": v(scale["min_executions"]),
            "max_executions": v(scale["max_executions"]),
            "polling_interval": v(scale["polling_interval_in_seconds"]),
            "rule": {
                "name": v(rule["name"]),
                "type": v(rule["custom_rule_type"]),
                "account": v(rule["metadata"]["accountName"], each),
                "queue": v(rule["metadata"]["queueName"], each),
                "queue_length": v(rule["metadata"]["queueLength"]),
                "identity": v(rule.get("identity_id")),
            },
            "container": v(c["name"], each),
            "image": v(c["image"], each),
            "args": [v(a, each) for a in c["args"]],
            "cpu": float(v(c["cpu"], each)), "memory": v(c["memory"], each),
            "env": env_of(c),
        }
    sw = tf.res("azurerm_container_app_job", "sweep")
    sched = one(sw["schedule_trigger_config"], "schedule_trigger_config")
    c = one(one(sw["template"], "template")["container"], "container")
    jobs[v(sw["name"])] = {
        "identity": identity(sw),
        "secrets_identity": secrets_identity(sw),
        "trigger": "Schedule",
        "cron": v(sched["cron_expression"]),
        "replica_timeout": v(sw["replica_timeout_in_seconds"]),
        "retry_limit": v(sw["replica_retry_limit"]),
        "parallelism": v(sched["parallelism"]),
        "completions": v(sched["replica_completion_count"]),
        "min_executions": None, "max_executions": None, "polling_interval": None, "rule": None,
        "container": v(c["name"]),
        "image": v(c["image"]),
        "args": [v(a) for a in c["args"]],
        "cpu": float(v(c["cpu"])), "memory": v(c["memory"]),
        "env": env_of(c),
    }
    model["jobs"] = jobs
    model["outputs"] = sorted(tf.outputs)
    return model


# ----------------------------------------------------------------- compare
def check(root: Path) -> list[str]:
    b = read_bicep(root / "azure" / "main.bicep")
    t = read_terraform(root / "terraform" / "azure" / "module")
    tf_outputs = t.pop("outputs")
    missing = [o for o in b.pop("outputs") if o not in tf_outputs]
    return compare(b, t, ("the Bicep", "the Terraform", "bicep", "terraform")) + [f"outputs.{o}: a Bicep output with no Terraform output of that name" for o in missing]


# --------------------------------------------------------------- self-test
# (file, old, new, words the report must contain on one line)
PLANTS = [
    ("terraform/azure/module/jobs.tf",
     "polling_interval_in_seconds = 10", "polling_interval_in_seconds = 30",
     ["polling_interval", "10", "30"]),
    ("terraform/azure/module/identity.tf",
     '"worker/blob"  = { identity = "worker", role = local.roles.blob_data_contributor }',
     '"worker/blob"  = { identity = "worker", role = local.roles.table_data_contributor }',
     ["roles.storage.worker", "ba92f5b4"]),
]
BICEP_PLANT = ("azure/main.bicep", "cronExpression: '*/5 * * * *'", "cronExpression: '*/15 * * * *'",
               ["cron", "*/15 * * * *", "*/5 * * * *"])


def self_test(root: Path) -> int:
    return drift_common.self_test(
        Path(__file__).resolve(), root, ["azure", "terraform/azure"],
        [("clean copy", []), ("terraform drift", PLANTS), ("bicep drift", [BICEP_PLANT])],
        "azure-drift-", Unreadable,
        "a clean copy agrees; a changed KEDA polling interval and a worker role in the "
        "Terraform, and a changed sweep schedule in the Bicep, are each reported")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent,
                    help="repository root holding azure/main.bicep and terraform/azure/module (default: this script's)")
    ap.add_argument("--self-test", action="store_true",
                    help="plant drift in a temporary copy and expect it to be reported")
    ap.add_argument("--dump", choices=("bicep", "terraform"), help="print one side's model (debugging)")
    args = ap.parse_args()
    try:
        if args.self_test:
            return self_test(args.root)
        if args.dump:
            model = (read_bicep(args.root / "azure" / "main.bicep") if args.dump == "bicep"
                     else read_terraform(args.root / "terraform" / "azure" / "module"))
            print(json.dumps(model, indent=1, sort_keys=True))
            return 0
        problems = check(args.root)
    except Unreadable as err:
        print(f"check-azure-drift: {err}", file=sys.stderr)
        return 2
    if problems:
        print(f"azure/main.bicep and terraform/azure/module disagree ({len(problems)}):")
        for p in problems:
            print(f"  - {p}")
        return 1
    print("azure drift: none (parameters, names, queues, storage settings, lifecycle, logs, role "
          "definitions per identity, secrets, env, intake, jobs: triggers, scaling, args, sizes; outputs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
