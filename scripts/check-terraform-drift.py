#!/usr/bin/env python3
"""Template-vs-Terraform drift check: template.yaml and terraform/aws/module/
must describe the same stack.

Both files are read into the same plain model, then compared field by field:

  functions   package type, memory, timeout, ephemeral storage, architecture,
              tracing, log format, async dead-letter queue, env var NAMES
  events      SQS event sources (queue, batch size, batching window, response
              types, maximum concurrency), HTTP routes (route key, auth,
              payload version, timeout), schedules (target, expression)
  queues      visibility timeout, max receive count, dead-letter target,
              retention, SSE; and on both sides the rule that ties them to the
              functions (visibility = 6 x the consumer's timeout)
  table       key schema, attributes, GSI names/keys/projection, TTL, PITR,
              SSE, billing mode
  bucket      versioning, SSE algorithm, public access block, ownership,
              lifecycle rules
  iam         per function: every (action, resource) pair of its role's
              policy, by statement Sid; the trust policy's service
  logs        log group names
  alarms      (namespace, metric, target) of every alarm
  parameters  each template Parameter's default = its Terraform variable's

A setting that is a Parameter in the template must be the matching variable
in Terraform ("param:ExecuteMemorySize" on both sides). Every mismatch is
printed on its own line; exit status 1 on drift, 2 on a usage or parse error.

  scripts/check-terraform-drift.py              # the repository's files
  scripts/check-terraform-drift.py --self-test  # plants drift in a copy and
                                                # expects it reported

Needs python-hcl2 (8.x, which keeps string quotes) and PyYAML;
scripts/validate-template.sh installs both, pinned.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import drift_common  # scripts/drift_common.py, beside this script
from drift_common import unq
import yaml

FUNCTIONS = ("trigger", "execute", "collect", "report")
QUEUES = ("requests", "shards", "results", "reports")

# Template Parameter <-> module variable (attribute paths for object fields).
PARAM_VARS = {
    "Architecture": "architecture",
    "ExecuteMemorySize": "execute_memory_size",
    "ExecuteEphemeralStorage": "execute_ephemeral_storage",
    "ExecuteMaxConcurrency": "execute_max_concurrency",
    "LogLevel": "log_level",
    "WebhookSecretArn": "webhook_secret_arn",
    "GithubAppId": "github_app_id",
    "GithubPrivateKeySecretArn": "github_private_key_secret_arn",
    "AllowedRepos": "allowed_repos",
    "NightlyRepo": "nightly.repo",
    "NightlyRef": "nightly.ref",
    "NightlySuite": "nightly.suite",
    "NightlySchedule": "nightly.schedule",
    "RunRetentionDays": "run_retention_days",
    "LogRetentionDays": "log_retention_days",
    "LinkTtlSeconds": "link_ttl_seconds",
    "AlarmTopicArn": "alarm_topic_arn",
}
VAR_PARAMS = {v: p for p, v in PARAM_VARS.items()}


class Unreadable(Exception):
    """A file the check cannot read (not drift: exit 2)."""


# ----------------------------------------------------------------- template
class CfnLoader(yaml.SafeLoader):
    """SafeLoader that reads CloudFormation's short tags (!Ref, !GetAtt,
    !Sub, !If, !Not, !Equals, ...) as their long forms ({"Ref": x},
    {"Fn::GetAtt": [res, attr]}, {"Fn::Sub": ...})."""


def _cfn_tag(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


CfnLoader.add_multi_constructor("!", _cfn_tag)


def cfn_norm(value, resources):
    """A template value as the model's string: literals as they are,
    parameters as "param:Name", resources by their role in the stack."""
    if isinstance(value, dict):
        if "Ref" in value:
            ref = value["Ref"]
            if ref in PARAM_VARS:
                return f"param:{ref}"
            return cfn_resource_name(ref, resources)
        if "Fn::GetAtt" in value:
            res, attr = value["Fn::GetAtt"]
            name = cfn_resource_name(res, resources)
            return name if attr in ("Arn", "QueueName") else f"{name}.{attr}"
        if "Fn::Sub" in value:
            text = value["Fn::Sub"]
            if isinstance(text, list):
                text = text[0]

            def sub(m):
                ref = m.group(1)
                if ref == "AWS::StackName":
                    return "{name}"
                if ref.endswith(".Arn"):
                    return cfn_resource_name(ref[: -len(".Arn")], resources)
                if ref in PARAM_VARS:
                    return f"param:{ref}"
                return m.group(0)

            return re.sub(r"\$\{([^}]+)\}", sub, text)
    return value


def cfn_resource_name(logical, resources):
    """RequestsQueue -> queue:requests, ShardsDlq -> queue:shards-dlq,
    TriggerFunction -> function:trigger, TriggerLogGroup -> log:trigger,
    Table -> table, Bucket -> bucket."""
    kind = resources.get(logical, {}).get("Type", "")
    m = re.fullmatch(r"([A-Z][a-z]+)(Queue|Dlq|Function|LogGroup|Role)", logical)
    if kind == "AWS::SQS::Queue" and m:
        base = m.group(1).lower()
        return f"queue:{base}" if m.group(2) == "Queue" else f"queue:{base}-dlq"
    if kind == "AWS::Serverless::Function" and m:
        return f"function:{m.group(1).lower()}"
    if kind == "AWS::Logs::LogGroup" and m:
        return f"log:{m.group(1).lower()}"
    if kind == "AWS::IAM::Role" and m:
        return f"role:{m.group(1).lower()}"
    return {"Table": "table", "Bucket": "bucket", "HttpApi": "api"}.get(logical, logical)


def dashboard_metrics(body) -> set:
    """What a dashboard shows: (SEARCH dimensions, metric name, statistic)
    of each widget, the namespace's stack part left out. `body` is the
    dashboard's JSON text (the template's !Sub string, Terraform's heredoc)."""
    if isinstance(body, dict):  # the template's {"Fn::Sub": text}
        body = body.get("Fn::Sub", "")
    text = body.replace('\\"', '"')
    return set(re.findall(r"SEARCH\('\{testexec/[^,]+,([a-z_,]+)\} MetricName=\"(testexec_[a-z_]+)\"', '(\w+)'", text))


def read_template(path: Path) -> dict:
    try:
        doc = yaml.load(path.read_text(), Loader=CfnLoader)  # noqa: S506 (SafeLoader subclass)
    except (OSError, yaml.YAMLError) as err:
        raise Unreadable(f"{path}: {err}") from err
    res = doc["Resources"]
    norm = lambda v: cfn_norm(v, res)  # noqa: E731
    model = {"functions": {}, "events": {"sqs": {}, "http": {}, "schedules": set()},
             "queues": {}, "iam": {}, "logs": set(), "alarms": set(), "parameters": {},
             "dashboard_metrics": set()}

    glob = doc.get("Globals", {}).get("Function", {})
    global_env = set(glob.get("Environment", {}).get("Variables", {}))
    for r in res.values():
        if r["Type"] != "AWS::Serverless::Function":
            continue
        p = r["Properties"]
        name = norm(p["FunctionName"]).replace("{name}-", "")
        env = set(global_env) | set(p.get("Environment", {}).get("Variables", {}))
        dlq = p.get("DeadLetterQueue", {}).get("TargetArn")
        model["functions"][name] = {
            "package_type": p.get("PackageType", "Zip"),
            "runtime": p.get("Runtime"),
            "handler": p.get("Handler"),
            "memory": norm(p["MemorySize"]),
            "timeout": p["Timeout"],
            "ephemeral_storage": norm(p.get("EphemeralStorage", {}).get("Size", 512)),
            "architecture": norm((p.get("Architectures") or glob.get("Architectures"))[0]),
            "tracing": p.get("Tracing", glob.get("Tracing", "PassThrough")),
            "log_format": p.get("LoggingConfig", {}).get("LogFormat"),
            "log_group": norm(p.get("LoggingConfig", {}).get("LogGroup")),
            "application_log_level": norm(p.get("LoggingConfig", {}).get("ApplicationLogLevel")),
            "system_log_level": p.get("LoggingConfig", {}).get("SystemLogLevel"),
            "async_dlq": norm(dlq) if dlq else None,
            "role": norm(p["Role"]),
            "env": sorted(env),
        }
        for event in p.get("Events", {}).values():
            ep = event.get("Properties", {})
            if event["Type"] == "SQS":
                queue = norm(ep["Queue"])
                model["events"]["sqs"][queue] = {
                    "function": f"function:{name}",
                    "batch_size": ep.get("BatchSize", 10),
                    "batching_window": ep.get("MaximumBatchingWindowInSeconds", 0),
                    "response_types": sorted(ep.get("FunctionResponseTypes", [])),
                    "max_concurrency": norm(ep.get("ScalingConfig", {}).get("MaximumConcurrency")),
                }
            elif event["Type"] == "HttpApi":
                auth = ep.get("Auth", {}).get("Authorizer", "NONE")
                model["events"]["http"][f"{ep['Method']} {ep['Path']}"] = {
                    "function": f"function:{name}",
                    "auth": auth,
                    "payload_format_version": ep.get("PayloadFormatVersion"),
                    "timeout_ms": ep.get("TimeoutInMillis"),
                }
            elif event["Type"] == "Schedule":
                model["events"]["schedules"].add((f"function:{name}", norm(ep["Schedule"])))

    for logical, r in res.items():
        t, p = r["Type"], r.get("Properties", {})
        if t == "AWS::Events::Rule":
            for target in p.get("Targets", []):
                model["events"]["schedules"].add((norm(target["Arn"]), norm(p["ScheduleExpression"])))
        elif t == "AWS::SQS::Queue":
            redrive = p.get("RedrivePolicy") or {}
            model["queues"][cfn_resource_name(logical, res)] = {
                "visibility_timeout": p.get("VisibilityTimeout", 30),
                "retention": p.get("MessageRetentionPeriod", 345600),
                "max_receive_count": redrive.get("maxReceiveCount"),
                "dead_letter_target": norm(redrive["deadLetterTargetArn"]) if redrive else None,
                "sse_sqs": p.get("SqsManagedSseEnabled", False),
            }
        elif t == "AWS::DynamoDB::Table":
            model["table"] = {
                "billing_mode": p.get("BillingMode"),
                "keys": {k["KeyType"]: k["AttributeName"] for k in p["KeySchema"]},
                "attributes": {a["AttributeName"]: a["AttributeType"] for a in p["AttributeDefinitions"]},
                "indexes": {
                    g["IndexName"]: {
                        "keys": {k["KeyType"]: k["AttributeName"] for k in g["KeySchema"]},
                        "projection": g["Projection"]["ProjectionType"],
                    }
                    for g in p.get("GlobalSecondaryIndexes", [])
                },
                "ttl": p.get("TimeToLiveSpecification", {}).get("AttributeName")
                if p.get("TimeToLiveSpecification", {}).get("Enabled") else None,
                "pitr": p.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled", False),
                "sse": p.get("SSESpecification", {}).get("SSEEnabled", False),
                "retained": r.get("DeletionPolicy") == "Retain",
            }
        elif t == "AWS::S3::Bucket":
            rules = {}
            for rule in p.get("LifecycleConfiguration", {}).get("Rules", []):
                rules[rule["Id"]] = {
                    "enabled": rule["Status"] == "Enabled",
                    "prefix": rule.get("Prefix", ""),
                    "expiration_days": norm(rule.get("ExpirationInDays")),
                    "noncurrent_days": rule.get("NoncurrentVersionExpiration", {}).get("NoncurrentDays"),
                    "expired_object_delete_marker": rule.get("ExpiredObjectDeleteMarker", False),
                    "abort_multipart_days": rule.get("AbortIncompleteMultipartUpload", {}).get("DaysAfterInitiation"),
                }
            model["bucket"] = {
                "versioning": p.get("VersioningConfiguration", {}).get("Status"),
                "sse": p["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
                ["ServerSideEncryptionByDefault"]["SSEAlgorithm"],
                "public_access_block": sorted(k for k, v in p.get("PublicAccessBlockConfiguration", {}).items() if v),
                "ownership": p.get("OwnershipControls", {}).get("Rules", [{}])[0].get("ObjectOwnership"),
                "lifecycle": rules,
                "retained": r.get("DeletionPolicy") == "Retain",
            }
        elif t == "AWS::IAM::Role":
            pairs = set()
            for pol in p.get("Policies", []):
                for st in pol["PolicyDocument"]["Statement"]:
                    actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
                    rs = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
                    for a in actions:
                        for rr in rs:
                            pairs.add((st.get("Sid", ""), st.get("Effect", "Allow"), a, norm(rr)))
            trust = {s["Principal"]["Service"] for s in p["AssumeRolePolicyDocument"]["Statement"]}
            model["iam"][cfn_resource_name(logical, res)] = {"statements": pairs, "trust": sorted(trust)}
        elif t == "AWS::Logs::LogGroup":
            model["logs"].add(norm(p["LogGroupName"]))
        elif t == "AWS::CloudWatch::Dashboard":
            model["dashboard_metrics"] |= dashboard_metrics(p["DashboardBody"])
        elif t == "AWS::CloudWatch::Alarm":
            dim = p["Dimensions"][0]
            model["alarms"].add((p["Namespace"], p["MetricName"], dim["Name"], norm(dim["Value"]),
                                 p["Statistic"], p["Period"], p["Threshold"], p["ComparisonOperator"]))

    for name, spec in doc.get("Parameters", {}).items():
        model["parameters"][name] = spec.get("Default")
    return model


# ---------------------------------------------------------------- terraform
class Terraform:
    def __init__(self, module_dir: Path):
        self.dir = module_dir
        module = drift_common.read_module(module_dir, Unreadable)
        self.resources: dict[str, dict[str, dict]] = module["resource"]
        self.data: dict[str, dict[str, dict]] = module["data"]
        self.locals: dict = module["locals"]
        self.variables: dict = module["variable"]

    # Expressions are strings "${...}"; only the forms this module uses are
    # resolved, anything else stays as its text (and so shows up as drift).
    def value(self, expr, each_key=None, each_value=None):
        expr = unq(expr)
        if not isinstance(expr, str):
            return expr
        m = re.fullmatch(r"\$\{(.*)\}", expr, re.S)
        if not m:
            return self.norm_text(expr, each_key)
        inner = m.group(1).strip()
        if re.fullmatch(r"local\.[\w.]+", inner):
            return self.value(self.path(self.locals, inner.split(".")[1:]), each_key, each_value)
        if re.fullmatch(r"each\.value\.\w+", inner) and each_value is not None:
            return self.value(each_value[inner.split(".")[2]], each_key, each_value)
        if re.fullmatch(r"var\.[\w.]+", inner):
            var = inner[len("var."):]
            return f"param:{VAR_PARAMS[var]}" if var in VAR_PARAMS else f"var:{var}"
        ref = self.ref(inner, each_key)
        return ref if ref is not None else expr

    @staticmethod
    def path(obj, keys):
        for k in keys:
            obj = obj[k]
        return obj

    def ref(self, inner, each_key=None):
        """aws_sqs_queue.queue["shards"].arn -> queue:shards, and so on."""
        inner = inner.replace("[each.key]", f'["{each_key}"]') if each_key else inner
        m = re.fullmatch(r'(aws_[a-z0-9_]+)\.(\w+)(?:\["([\w-]+)"\]|\[0\])?\.(arn|name|function_name|id|url|invoke_arn)', inner)
        if not m:
            return None
        rtype, name, key, _attr = m.groups()
        if rtype == "aws_sqs_queue":
            if name == "async_dlq":
                return "queue:async-dlq"
            return f"queue:{key}" if name == "queue" else f"queue:{key}-dlq"
        if rtype == "aws_lambda_function":
            return f"function:{name}"
        if rtype == "aws_cloudwatch_log_group":
            return f"log:{key}" if key else f"log:{name}"
        if rtype == "aws_iam_role":
            return f"role:{name}"
        if rtype == "aws_dynamodb_table":
            return "table"
        if rtype == "aws_s3_bucket":
            return "bucket"
        return None

    def norm_text(self, text, each_key=None):
        """An interpolated string: "${aws_s3_bucket.bucket.arn}/*" -> "bucket/*",
        "${var.name}-${each.key}" -> "{name}-<key>"."""
        def sub(m):
            inner = m.group(1).strip()
            if inner == "var.name":
                return "{name}"
            if inner == "each.key" and each_key is not None:
                return each_key
            if re.fullmatch(r"var\.[\w.]+", inner) and inner[4:] in VAR_PARAMS:
                return f"param:{VAR_PARAMS[inner[4:]]}"
            ref = self.ref(inner, each_key)
            return ref if ref is not None else m.group(0)

        return re.sub(r"\$\{([^}]+)\}", sub, text)

    def env_names(self, expr, seen=()):
        """Variable names an environment expression can set: the keys of
        literal maps, of the locals it refers to, and any `NAME =` it holds."""
        if isinstance(expr, dict):
            return set(expr)
        if not isinstance(expr, str):
            return set()
        names = set(re.findall(r"\b(TESTEXEC_[A-Z0-9_]+)\s*=", expr))
        for local in re.findall(r"\blocal\.(\w+)", expr):
            if local in self.locals and local not in seen:
                names |= self.env_names(self.locals[local], seen + (local,))
        return names

    def resource_list(self, expr):
        """A policy statement's resources: a list, or a local holding one."""
        if isinstance(expr, list):
            return [self.value(e) for e in expr]
        m = re.fullmatch(r"\$\{local\.(\w+)\}", str(expr))
        if m:
            return self.resource_list(self.locals[m.group(1)])
        return [self.value(expr)]

    def policy_doc(self, expr):
        m = re.fullmatch(r"\$\{data\.aws_iam_policy_document\.(\w+)\.json\}", str(expr))
        if not m:
            raise Unreadable(f"policy {expr!r} is not a data.aws_iam_policy_document")
        return self.data["aws_iam_policy_document"][m.group(1)]


def choices(expr):
    """A literal, or the string literals a conditional chooses between:
    'cond ? "Image" : "Zip"' -> ["Image", "Zip"]."""
    if isinstance(expr, str) and expr.startswith("${") and "?" in expr:
        return sorted(set(re.findall(r'"([^"]*)"', expr)))
    return unq(expr)


def for_each_keys(tf, block):
    expr = block.get("for_each")
    if expr is None:
        return [None]
    m = re.fullmatch(r"\$\{local\.(\w+)\}", expr)
    if m:
        return list(tf.locals[m.group(1)])
    m = re.fullmatch(r"\$\{toset\(\[(.*)\]\)\}", expr)
    if m:
        return [unq(s.strip()) for s in m.group(1).split(",") if s.strip()]
    raise Unreadable(f"for_each {expr!r}: form not understood by the drift check")


def read_terraform(module_dir: Path) -> dict:
    tf = Terraform(module_dir)
    v = tf.value
    model = {"functions": {}, "events": {"sqs": {}, "http": {}, "schedules": set()},
             "queues": {}, "iam": {}, "logs": set(), "alarms": set(), "parameters": {},
             "dashboard_metrics": set()}

    for fn in tf.resources.get("aws_lambda_function", {}).values():
        name = tf.norm_text(unq(fn["function_name"])).replace("{name}-", "")
        log = (fn.get("logging_config") or [{}])[0]
        dlq = (fn.get("dead_letter_config") or [{}])[0].get("target_arn")
        # A conditional (execute: an image, or the zip) gives the list of
        # the choices it offers; the template's value must be among them.
        packages = choices(fn.get("package_type", '"Zip"'))
        packages = packages if isinstance(packages, list) else [packages]
        model["functions"][name] = {
            "package_type": packages,
            "runtime": choices(fn.get("runtime")),
            "handler": choices(fn.get("handler")),
            "memory": v(fn["memory_size"]),
            "timeout": v(fn["timeout"]),
            "ephemeral_storage": v((fn.get("ephemeral_storage") or [{"size": 512}])[0]["size"]),
            "architecture": v(fn["architectures"][0]),
            "tracing": unq((fn.get("tracing_config") or [{"mode": '"PassThrough"'}])[0]["mode"]),
            "log_format": unq(log.get("log_format")),
            "log_group": v(log.get("log_group")),
            "application_log_level": v(log.get("application_log_level")),
            "system_log_level": unq(log.get("system_log_level")),
            "async_dlq": v(dlq) if dlq else None,
            "role": v(fn["role"]),
            "env": sorted(tf.env_names((fn.get("environment") or [{}])[0].get("variables"))),
        }

    for esm in tf.resources.get("aws_lambda_event_source_mapping", {}).values():
        scaling = (esm.get("scaling_config") or [{}])[0]
        model["events"]["sqs"][v(esm["event_source_arn"])] = {
            "function": v(esm["function_name"]),
            "batch_size": v(esm.get("batch_size", 10)),
            "batching_window": v(esm.get("maximum_batching_window_in_seconds", 0)),
            "response_types": sorted(unq(t) for t in esm.get("function_response_types", [])),
            "max_concurrency": v(scaling["maximum_concurrency"]) if scaling else None,
        }

    integrations = tf.resources.get("aws_apigatewayv2_integration", {})
    for route in tf.resources.get("aws_apigatewayv2_route", {}).values():
        m = re.fullmatch(r'"?integrations/\$\{aws_apigatewayv2_integration\.(\w+)\.id\}"?', route["target"])
        integ = integrations[m.group(1)] if m else {}
        model["events"]["http"][unq(route["route_key"])] = {
            "function": v(integ.get("integration_uri", "?")),
            "auth": {"NONE": "NONE", "AWS_IAM": "AWS_IAM"}.get(unq(route.get("authorization_type", '"NONE"'))),
            "payload_format_version": unq(integ.get("payload_format_version")),
            "timeout_ms": integ.get("timeout_milliseconds"),
        }

    rules = tf.resources.get("aws_cloudwatch_event_rule", {})
    for target in tf.resources.get("aws_cloudwatch_event_target", {}).values():
        m = re.fullmatch(r"\$\{aws_cloudwatch_event_rule\.(\w+)(?:\[0\])?\.name\}", target["rule"])
        rule = rules[m.group(1)]
        model["events"]["schedules"].add((v(target["arn"]), v(rule["schedule_expression"])))

    for q in tf.resources.get("aws_sqs_queue", {}).values():
        for key in for_each_keys(tf, q):
            each_value = tf.locals["queues"].get(key) if key else None
            name = tf.norm_text(unq(q["name"]), key).replace("{name}-", "")
            redrive = q.get("redrive_policy")
            mrc = target = None
            if redrive:
                m = re.search(r"maxReceiveCount\s*=\s*([\w.]+)", redrive)
                mrc = v("${" + m.group(1) + "}") if m and not m.group(1).isdigit() else int(m.group(1)) if m else None
                m = re.search(r"deadLetterTargetArn\s*=\s*([\w.\[\]\"]+)", redrive)
                target = tf.ref(m.group(1), key) if m else None
            model["queues"][f"queue:{name}"] = {
                "visibility_timeout": v(q.get("visibility_timeout_seconds", 30), key, each_value),
                "retention": v(q.get("message_retention_seconds", 345600), key, each_value),
                "max_receive_count": mrc,
                "dead_letter_target": target,
                "sse_sqs": q.get("sqs_managed_sse_enabled", False),
            }

    table = next(iter(tf.resources.get("aws_dynamodb_table", {}).values()), None)
    if table:
        keys = {"HASH": unq(table["hash_key"])}
        if table.get("range_key"):
            keys["RANGE"] = unq(table["range_key"])
        indexes = {}
        for g in table.get("global_secondary_index", []):
            gk = {"HASH": unq(g["hash_key"])}
            if g.get("range_key"):
                gk["RANGE"] = unq(g["range_key"])
            indexes[unq(g["name"])] = {"keys": gk, "projection": unq(g["projection_type"])}
        ttl = (table.get("ttl") or [{}])[0]
        model["table"] = {
            "billing_mode": unq(table.get("billing_mode")),
            "keys": keys,
            "attributes": {unq(a["name"]): unq(a["type"]) for a in table.get("attribute", [])},
            "indexes": indexes,
            "ttl": unq(ttl.get("attribute_name")) if ttl.get("enabled") else None,
            "pitr": (table.get("point_in_time_recovery") or [{}])[0].get("enabled", False),
            "sse": (table.get("server_side_encryption") or [{}])[0].get("enabled", False),
            "retained": (table.get("lifecycle") or [{}])[0].get("prevent_destroy", False),
        }

    bucket = next(iter(tf.resources.get("aws_s3_bucket", {}).values()), None)
    if bucket:
        def one(rtype):
            return next(iter(tf.resources.get(rtype, {}).values()), {})
        lifecycle = {}
        for rule in one("aws_s3_bucket_lifecycle_configuration").get("rule", []):
            filt = (rule.get("filter") or [{}])[0] or {}
            exp = (rule.get("expiration") or [{}])[0]
            lifecycle[unq(rule["id"])] = {
                "enabled": unq(rule["status"]) == "Enabled",
                "prefix": unq(filt.get("prefix", '""')),
                "expiration_days": v(exp["days"]) if "days" in exp else None,
                "noncurrent_days": (rule.get("noncurrent_version_expiration") or [{}])[0].get("noncurrent_days"),
                "expired_object_delete_marker": exp.get("expired_object_delete_marker", False),
                "abort_multipart_days": (rule.get("abort_incomplete_multipart_upload") or [{}])[0].get("days_after_initiation"),
            }
        pab = one("aws_s3_bucket_public_access_block")
        camel = {"block_public_acls": "BlockPublicAcls", "block_public_policy": "BlockPublicPolicy",
                 "ignore_public_acls": "IgnorePublicAcls", "restrict_public_buckets": "RestrictPublicBuckets"}
        sse = one("aws_s3_bucket_server_side_encryption_configuration").get("rule", [{}])[0]
        model["bucket"] = {
            "versioning": unq(one("aws_s3_bucket_versioning").get("versioning_configuration", [{}])[0].get("status")),
            "sse": unq(sse.get("apply_server_side_encryption_by_default", [{}])[0].get("sse_algorithm")),
            "public_access_block": sorted(camel[k] for k, val in pab.items() if k in camel and val is True),
            "ownership": unq(one("aws_s3_bucket_ownership_controls").get("rule", [{}])[0].get("object_ownership")),
            "lifecycle": lifecycle,
            "retained": (bucket.get("lifecycle") or [{}])[0].get("prevent_destroy", False),
        }

    for rname, role in tf.resources.get("aws_iam_role", {}).items():
        pairs = set()
        for pol in tf.resources.get("aws_iam_role_policy", {}).values():
            if pol["role"] != f"${{aws_iam_role.{rname}.id}}":
                continue
            for st in tf.policy_doc(pol["policy"]).get("statement", []):
                effect = unq(st.get("effect", '"Allow"'))
                for a in st.get("actions", []):
                    for r in tf.resource_list(st.get("resources", [])):
                        # The template's !GetAtt LogGroup.Arn ends in ":*" (it
                        # covers the group's streams); Terraform's arn does not,
                        # so the module appends it. Without it, no stream matches.
                        if isinstance(r, str) and r.startswith("log:"):
                            r = r[:-2] if r.endswith(":*") else f"{r} (arn without :*, matches no log stream)"
                        pairs.add((unq(st.get("sid", '""')), effect, unq(a), r))
        trust = set()
        for st in tf.policy_doc(role["assume_role_policy"]).get("statement", []):
            for pr in st.get("principals", []):
                trust |= {unq(i) for i in pr["identifiers"]}
        model["iam"][f"role:{rname}"] = {"statements": pairs, "trust": sorted(trust)}

    for lg in tf.resources.get("aws_cloudwatch_log_group", {}).values():
        for key in for_each_keys(tf, lg):
            model["logs"].add(tf.norm_text(unq(lg["name"]), key))

    for alarm in tf.resources.get("aws_cloudwatch_metric_alarm", {}).values():
        m = re.fullmatch(r"\$\{local\.(\w+)\}", alarm["for_each"]) if "for_each" in alarm else None
        items = tf.locals[m.group(1)].items() if m else [(None, None)]
        for key, each_value in items:
            (dname, dexpr), = alarm["dimensions"].items()
            target = v(dexpr, key, each_value)
            metric = v(alarm["metric_name"], key, each_value)
            model["alarms"].add((unq(alarm["namespace"]), unq(metric), dname, target, unq(alarm["statistic"]),
                                 alarm["period"], alarm["threshold"], unq(alarm["comparison_operator"])))

    for dash in tf.resources.get("aws_cloudwatch_dashboard", {}).values():
        model["dashboard_metrics"] |= dashboard_metrics(dash["dashboard_body"])

    for pname, var in PARAM_VARS.items():
        top, _, attr = var.partition(".")
        spec = tf.variables.get(top)
        if spec is None:
            model["parameters"][pname] = "<no variable>"
            continue
        if not attr:
            d = spec.get("default", "<required>")
            model["parameters"][pname] = unq(d) if not isinstance(d, list) else ",".join(unq(x) for x in d)
        else:
            # An optional object attribute's default lives in the type:
            # optional(string, "main").
            m = re.search(rf"\b{attr}\s*=\s*optional\(\w+\s*,\s*\"([^\"]*)\"\)", spec["type"])
            model["parameters"][pname] = m.group(1) if m else None
    return model


# ------------------------------------------------------------------ compare
def normalise_template_params(model):
    """The template's "" means "not set", which is Terraform's null (or an
    empty list); numbers as numbers."""
    out = {}
    for k, d in model["parameters"].items():
        out[k] = None if d == "" else d
    return out


def compare(t: dict, f: dict) -> list[str]:
    out = []

    def diff(where, a, b):
        if a != b:
            out.append(f"{where}: template {fmt(a)}, terraform {fmt(b)}")

    def sets(where, a, b):
        for x in sorted(set(a) - set(b), key=str):
            out.append(f"{where}: {fmt(x)} only in template")
        for x in sorted(set(b) - set(a), key=str):
            out.append(f"{where}: {fmt(x)} only in terraform")

    sets("functions", t["functions"], f["functions"])
    for name in sorted(set(t["functions"]) & set(f["functions"])):
        tf_, ff = t["functions"][name], f["functions"][name]
        for field in tf_:
            a, b = tf_[field], ff[field]
            if field == "env":
                sets(f"functions.{name}.env", a, b)
            elif isinstance(b, list) and field != "env":
                # Terraform offers choices (execute: Image or Zip); the
                # template's must be one of them.
                if a is not None and a not in b:
                    out.append(f"functions.{name}.{field}: template {fmt(a)} not among terraform's {fmt(b)}")
            elif field in ("runtime", "handler") and tf_["package_type"] == "Image":
                continue  # an image has neither; the zip alternative has them
            else:
                diff(f"functions.{name}.{field}", a, b)

    for kind in ("sqs", "http"):
        ta, fa = t["events"][kind], f["events"][kind]
        sets(f"events.{kind}", ta, fa)
        for key in sorted(set(ta) & set(fa)):
            for field in ta[key]:
                diff(f"events.{kind}.{key}.{field}", ta[key][field], fa[key][field])
    sets("events.schedules", t["events"]["schedules"], f["events"]["schedules"])

    sets("queues", t["queues"], f["queues"])
    for q in sorted(set(t["queues"]) & set(f["queues"])):
        for field in t["queues"][q]:
            diff(f"queues.{q.split(':', 1)[1]}.{field}", t["queues"][q][field], f["queues"][q][field])

    for section in ("table", "bucket"):
        a, b = t.get(section, {}), f.get(section, {})
        for field in sorted(set(a) | set(b)):
            if isinstance(a.get(field), dict) and isinstance(b.get(field), dict):
                sets(f"{section}.{field}", a[field], b[field])
                for k in sorted(set(a[field]) & set(b[field])):
                    diff(f"{section}.{field}.{k}", a[field][k], b[field][k])
            else:
                diff(f"{section}.{field}", a.get(field), b.get(field))

    sets("iam roles", t["iam"], f["iam"])
    for role in sorted(set(t["iam"]) & set(f["iam"])):
        fn = role.split(":", 1)[1]
        a, b = t["iam"][role]["statements"], f["iam"][role]["statements"]
        for sid, effect, action, res in sorted(a - b, key=str):
            out.append(f"iam.{fn}: template allows {action} on {res} (statement {sid}, {effect}), terraform does not")
        for sid, effect, action, res in sorted(b - a, key=str):
            out.append(f"iam.{fn}: terraform allows {action} on {res} (statement {sid}, {effect}), template does not")
        diff(f"iam.{fn}.trust", t["iam"][role]["trust"], f["iam"][role]["trust"])

    sets("logs", t["logs"], f["logs"])
    sets("alarms", t["alarms"], f["alarms"])
    sets("dashboard metrics", t["dashboard_metrics"], f["dashboard_metrics"])

    tp = normalise_template_params(t)
    for name in sorted(tp):
        a, b = tp[name], f["parameters"].get(name, "<not mapped>")
        if name == "AllowedRepos" and b == "":
            b = None  # [] in Terraform, "" in the template: no allow-list
        diff(f"parameters.{name} (default)", a, b)
    return out


def rules(model: dict, side: str) -> list[str]:
    """The invariant both files state: a queue's visibility timeout is six
    times its consumer's function timeout."""
    out = []
    for queue, esm in model["events"]["sqs"].items():
        fn = esm["function"].split(":", 1)[1]
        timeout = model["functions"].get(fn, {}).get("timeout")
        vis = model["queues"].get(queue, {}).get("visibility_timeout")
        if isinstance(timeout, int) and isinstance(vis, int) and vis != 6 * timeout:
            out.append(f"{side}: {queue.split(':', 1)[1]} visibility timeout {vis} s is not 6 x {fn}'s timeout {timeout} s")
    return out


def fmt(x):
    if isinstance(x, (set, frozenset)):
        x = sorted(x, key=str)
    return json.dumps(x, default=str) if not isinstance(x, str) else x


def check(root: Path) -> list[str]:
    t = read_template(root / "template.yaml")
    f = read_terraform(root / "terraform" / "aws" / "module")
    return compare(t, f) + rules(t, "template.yaml") + rules(f, "terraform")


# ---------------------------------------------------------------- self-test
PLANTS = [
    # (file, old, new, words the report must contain)
    ("terraform/aws/module/queues.tf",
     "shards   = { visibility_timeout_seconds = 5400 }",
     "shards   = { visibility_timeout_seconds = 5401 }",
     ["queues.shards.visibility_timeout", "5400", "5401"]),
    ("terraform/aws/module/iam.tf",
     '"s3:ListBucket"', '"s3:ListAllMyBuckets"',
     ["iam.report", "s3:ListBucket", "s3:ListAllMyBuckets"]),
]
TEMPLATE_PLANT = ("template.yaml", "      MemorySize: 512\n      Timeout: 120\n",
                  "      MemorySize: 640\n      Timeout: 120\n", ["functions.collect.memory", "640", "512"])


def self_test(root: Path) -> int:
    return drift_common.self_test(
        Path(__file__).resolve(), root, ["template.yaml", "terraform/aws"],
        [("clean copy", []), ("terraform drift", PLANTS), ("template drift", [TEMPLATE_PLANT])],
        "tf-drift-", Unreadable,
        "a clean copy agrees; a changed visibility timeout and IAM action in the Terraform, "
        "and a changed memory size in the template, are each reported")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent,
                    help="repository root holding template.yaml and terraform/aws/module (default: this script's)")
    ap.add_argument("--self-test", action="store_true",
                    help="plant drift in a temporary copy and expect it to be reported")
    args = ap.parse_args()
    try:
        if args.self_test:
            return self_test(args.root)
        problems = check(args.root)
    except Unreadable as err:
        print(f"check-terraform-drift: {err}", file=sys.stderr)
        return 2
    if problems:
        print(f"template.yaml and terraform/aws/module disagree ({len(problems)}):")
        for p in problems:
            print(f"  - {p}")
        return 1
    print("terraform drift: none (functions, env names, event sources, routes, schedules, queues, "
          "table, bucket, IAM actions and resources, log groups, alarms, dashboard metrics, parameter defaults)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
