#!/usr/bin/env python3
"""Deploy rehearsal: create the stack from template.yaml on moto's server, the way `sam deploy` would.

What it does, in order (each step prints a line):
  1. parses template.yaml with SAM's own YAML loader (short tags !Ref, !GetAtt, !Sub, !If...);
  2. checks the --param values against the template's Parameters (names, AllowedValues,
     AllowedPattern, Min/MaxValue): CloudFormation rejects bad values, moto does not;
  3. "packages" the code like `sam package`: a placeholder zip (one file, `bootstrap`) uploaded to a
     moto S3 bucket, and every local CodeUri pointed at it (no code runs inside moto's Lambda: the
     caller runs the real binaries itself, with the environment this script reads back);
  4. transforms the template with SAM's translator (samtranslator), offline: managed policy names
     come from samtranslator's bundled map, falling back to a static map of moto's copy of AWS's
     managed policies (moto/iam/aws_managed_policies.py);
  5. patches the rehearsal's copy of the *transformed* template where moto's CloudFormation differs
     from AWS, printing every patch (resource, change, moto limit). A resource type that is neither
     known to be created by moto nor handled by a patch makes the script fail;
  6. CreateStack on moto and waits for CREATE_COMPLETE (failure: reason, events, exit 1);
  7. reads back what moto created (outputs, physical ids, functions' configuration and environment,
     event source mappings, queue attributes, table key schemas and streams) and writes it, with the
     list of patches and of template properties moto ignores, to --out as JSON.

CI runs it after `cfn-lint`, against a throw-away moto server, to catch drift between template.yaml and
the code: e.g. an environment variable the code reads that the template no longer sets, a queue that
lost FifoQueue, a table key the code does not use. It needs only moto's server (no AWS account, no
Docker, no network):

  .venv/bin/moto_server -H 127.0.0.1 -p 5111 &
  .venv/bin/python scripts/rehearse-deploy.py --endpoint http://127.0.0.1:5111 --stack-name rehearsal \
      --create-secrets signing=KEY,api=KEY --param NangoBaseUrl=http://127.0.0.1:9999 --out target/rehearsal.json

Exit codes: 0 stack created and read back; 1 the rehearsal failed (bad parameter, unknown resource type,
CreateStack failed); 2 bad command line.
"""

from __future__ import annotations

import argparse
import copy
import functools
import hashlib
import io
import json
import random
import re
import string
import sys
import time
import zipfile
from pathlib import Path
from typing import Any, Callable

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, WaiterError
from botocore.parsers import ResponseParserError

ROOT = Path(__file__).resolve().parent.parent
REGION = "us-east-1"
ARTIFACT_BUCKET = "rehearse-deploy-artifacts"
PLACEHOLDER_BOOTSTRAP = b"#!/bin/sh\n# rehearse-deploy.py placeholder: the rehearsal never runs code in moto\nexit 1\n"

# Resource types (after the SAM transform) that moto 5.2.5's CloudFormation creates through its own
# models, checked by running this script. Anything else needs a patch below, or the script fails.
CREATED_BY_MOTO = {
    "AWS::CloudWatch::Dashboard",
    "AWS::DynamoDB::Table",
    "AWS::IAM::Role",
    "AWS::Lambda::EventSourceMapping",
    "AWS::Lambda::Function",
    "AWS::Lambda::Permission",
    "AWS::Logs::LogGroup",
    "AWS::SNS::Topic",
    "AWS::SQS::Queue",
}

# Template properties that moto's create_from_cloudformation_json accepts but drops: nothing fails,
# nothing is created, so a mistake in them is invisible here (cfn-lint / a real deploy must catch it).
# Printed as notes and listed in the output. Types not listed pass all their properties through.
MOTO_CONSUMES = {
    # moto/awslambda/models.py LambdaFunction.create_from_cloudformation_json
    "AWS::Lambda::Function": {"Code", "FunctionName", "Handler", "Role", "Runtime", "Description",
                              "MemorySize", "Publish", "Timeout", "VpcConfig", "Environment",
                              "ReservedConcurrentExecutions"},
    # moto/dynamodb/models/table.py Table.create_from_cloudformation_json
    "AWS::DynamoDB::Table": {"TableName", "KeySchema", "AttributeDefinitions", "GlobalSecondaryIndexes",
                             "ProvisionedThroughput", "LocalSecondaryIndexes", "StreamSpecification",
                             "Tags", "DeletionProtectionEnabled", "WarmThroughput", "BillingMode"},
    # (SSESpecification is passed on but read as the API's `Enabled`, not CloudFormation's `SSEEnabled`:
    # DescribeTable shows no SSEDescription. Counted as ignored.)
    # moto/iam/models.py Role.create_from_cloudformation_json
    "AWS::IAM::Role": {"RoleName", "AssumeRolePolicyDocument", "Path", "PermissionsBoundary",
                       "Description", "Tags", "MaxSessionDuration", "Policies"},
    # moto/cloudwatch/models.py Dashboard.create_from_cloudformation_json
    "AWS::CloudWatch::Dashboard": {"DashboardName", "DashboardBody"},
}


# ---------------------------------------------------------------------------------------------- CLI


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--endpoint", required=True, help="moto server URL, e.g. http://127.0.0.1:5111")
    p.add_argument("--stack-name", required=True)
    p.add_argument("--param", action="append", default=[], metavar="Key=Value",
                   help="a template parameter (repeatable)")
    p.add_argument("--create-secrets", metavar="signing=VALUE,api=VALUE",
                   help="create the two Secrets Manager secrets on moto and pass their ARNs")
    p.add_argument("--template", default=str(ROOT / "template.yaml"))
    p.add_argument("--out", required=True, help="JSON file to write what was read back")
    args = p.parse_args(argv)
    args.params = {}
    for item in args.param:
        key, sep, value = item.partition("=")
        if not sep or not key:
            p.error(f"--param {item!r}: expected Key=Value")
        args.params[key] = value
    return args


def step(msg: str) -> None:
    print(f"== {msg}", flush=True)


def fail(msg: str) -> None:
    print(f"rehearse-deploy: FAILED: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


def clients(endpoint: str) -> Callable[[str], Any]:
    session = boto3.Session(region_name=REGION, aws_access_key_id="test", aws_secret_access_key="test")
    config = Config(retries={"total_max_attempts": 1})  # no retried CreateStack after a moto 500

    @functools.cache
    def client(service: str) -> Any:
        return session.client(service, endpoint_url=endpoint, config=config)

    client.session = session  # type: ignore[attr-defined]
    return client


# ----------------------------------------------------------------------------- 1-2. template, params


def load_template(path: str) -> dict[str, Any]:
    from samcli.yamlhelper import yaml_parse  # SAM CLI's loader: CloudFormation short tags

    with open(path, encoding="utf-8") as f:
        return yaml_parse(f.read())


def create_secrets(spec: str, params: dict[str, str], stack: str, aws: Callable[[str], Any]) -> None:
    """--create-secrets signing=V,api=V (values may hold commas, e.g. JSON)."""
    targets = {"signing": "SigningKeySecretArn", "api": "NangoApiKeySecretArn"}
    parts = re.split(r",(?=(?:signing|api)=)", spec)
    sm = aws("secretsmanager")
    for part in parts:
        key, sep, value = part.partition("=")
        if key not in targets or not sep:
            fail(f"--create-secrets: {part!r}: expected signing=VALUE or api=VALUE")
        param = targets[key]
        if param in params:
            fail(f"--create-secrets {key}=... and --param {param}=... both given")
        name = f"{stack}/{key}"
        try:
            arn = sm.create_secret(Name=name, SecretString=value)["ARN"]
        except ClientError as e:
            if e.response["Error"]["Code"] != "ResourceExistsException":
                raise
            arn = sm.put_secret_value(SecretId=name, SecretString=value)["ARN"]
        params[param] = arn
        print(f"   secret {name} -> {param}={arn}")


def check_params(template: dict[str, Any], params: dict[str, str]) -> None:
    """What CloudFormation checks on CreateStack and moto does not."""
    declared = template.get("Parameters") or {}
    errors = [f"{k}: not a parameter of the template" for k in params if k not in declared]
    for name, decl in declared.items():
        if name not in params:
            if "Default" not in decl:
                errors.append(f"{name}: required (no Default) and not given")
            continue
        value = params[name]
        if "AllowedValues" in decl and value not in [str(v) for v in decl["AllowedValues"]]:
            errors.append(f"{name}={value!r}: not in AllowedValues {decl['AllowedValues']}")
        if "AllowedPattern" in decl and not re.fullmatch(decl["AllowedPattern"], value):
            errors.append(f"{name}={value!r}: does not match AllowedPattern {decl['AllowedPattern']}")
        if decl.get("Type") == "Number":
            try:
                number = float(value)
            except ValueError:
                errors.append(f"{name}={value!r}: not a Number")
                continue
            if "MinValue" in decl and number < float(decl["MinValue"]):
                errors.append(f"{name}={value}: below MinValue {decl['MinValue']}")
            if "MaxValue" in decl and number > float(decl["MaxValue"]):
                errors.append(f"{name}={value}: above MaxValue {decl['MaxValue']}")
    if errors:
        fail("parameters rejected (as CloudFormation would):\n  " + "\n  ".join(errors))


# ------------------------------------------------------------------------------------- 3. package


def placeholder_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        info = zipfile.ZipInfo("bootstrap", date_time=(2020, 1, 1, 0, 0, 0))
        info.external_attr = 0o755 << 16
        z.writestr(info, PLACEHOLDER_BOOTSTRAP)
    return buf.getvalue()


def package(template: dict[str, Any], template_dir: Path, aws: Callable[[str], Any]) -> None:
    """Like `sam package`: local CodeUri -> s3:// of an uploaded zip (here, one placeholder)."""
    s3 = aws("s3")
    s3.create_bucket(Bucket=ARTIFACT_BUCKET)
    body = placeholder_zip()
    key = hashlib.md5(body).hexdigest()  # sam package names artifacts by content hash too
    s3.put_object(Bucket=ARTIFACT_BUCKET, Key=key, Body=body)
    uri = f"s3://{ARTIFACT_BUCKET}/{key}"

    functions = {"Globals": (template.get("Globals") or {}).get("Function") or {}}
    for lid, res in (template.get("Resources") or {}).items():
        if res.get("Type") == "AWS::Serverless::Function":
            functions[lid] = res.setdefault("Properties", {})
    for lid, props in functions.items():
        code = props.get("CodeUri")
        if code is None or (isinstance(code, str) and code.startswith("s3://")) or isinstance(code, dict):
            continue  # nothing to package (already in S3)
        if not isinstance(code, str):
            fail(f"{lid}: CodeUri {code!r} is neither a local path nor s3:// (unsupported here)")
        local = (template_dir / code).resolve()
        if not local.exists():
            fail(f"{lid}: CodeUri {code!r}: {local} does not exist (sam build/package would fail)")
        props["CodeUri"] = uri
        print(f"   {lid}: CodeUri {code!r} -> {uri} (placeholder zip with `bootstrap`)")


# ----------------------------------------------------------------------------------- 4. transform


def transform(template: dict[str, Any], params: dict[str, str], aws: Callable[[str], Any]) -> dict[str, Any]:
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    # samtranslator resolves managed policy names (Policies: [AmazonS3ReadOnlyAccess]) from its own
    # bundled map first; names missing there come from a static map built from moto's copy of AWS's
    # managed policy list (moto's server only serves that list when started with
    # MOTO_IAM_LOAD_MANAGED_POLICIES=true, so it is not asked).
    translator = Translator(None, Parser(), boto_session=aws.session)  # type: ignore[attr-defined]
    return translator.translate(copy.deepcopy(template), parameter_values=dict(params),
                                get_managed_policy_map=aws_managed_policy_map)


@functools.cache
def aws_managed_policy_map() -> dict[str, str]:
    """Managed policy name -> ARN, offline, from moto/iam/aws_managed_policies.py."""
    from moto.iam.aws_managed_policies import aws_managed_policies_data

    data = json.loads(aws_managed_policies_data)
    return {name: f"arn:aws:iam::aws:policy{d.get('Path', '/')}{name}" for name, d in data.items()}


# -------------------------------------------------------------------------------------- 5. patches


class Patcher:
    """Patches the transformed template for moto, recording every change."""

    def __init__(self, template: dict[str, Any], params: dict[str, str], stack: str):
        self.t = template
        defaults = {k: str(v.get("Default")) for k, v in (template.get("Parameters") or {}).items()}
        pseudo = {"AWS::Region": REGION, "AWS::Partition": "aws", "AWS::AccountId": "123456789012",
                  "AWS::StackName": stack, "AWS::URLSuffix": "amazonaws.com"}
        self.params = {**defaults, **params, **pseudo}
        self.stack = stack
        self.applied: list[dict[str, str]] = []
        self.removed: dict[str, dict[str, Any]] = {}  # logical id -> removed resource
        self.removed_outputs: dict[str, Any] = {}  # output key -> its value before the placeholder
        self.notes: list[dict[str, str]] = []

    def record(self, resource: str, change: str, why: str) -> None:
        self.applied.append({"resource": resource, "change": change, "why": why})
        print(f"   PATCH {resource}: {change} -- {why}")

    def remove(self, lid: str, why: str) -> None:
        self.removed[lid] = self.t["Resources"].pop(lid)
        self.record(lid, f"removed ({self.removed[lid]['Type']})", why)


def patch_fifo_queue_name(p: Patcher, lid: str, res: dict[str, Any]) -> None:
    props = res.setdefault("Properties", {})
    if str(props.get("FifoQueue", "")).lower() != "true" or "QueueName" in props:
        return
    suffix = "".join(random.choices(string.ascii_uppercase + string.digits, k=12))
    name = f"{p.stack}-{lid}"[: 80 - len(suffix) - 6] + f"-{suffix}.fifo"
    props["QueueName"] = name
    p.record(lid, f"QueueName set to {name!r} (AWS generates such a name, with .fifo)",
             "moto names a CloudFormation queue {stack}-{id}-{suffix} without .fifo, then rejects "
             "the FIFO queue (moto/sqs/models.py Queue.__init__: 'Queue name must end in .fifo')")


def patch_table_deletion_protection(p: Patcher, lid: str, res: dict[str, Any]) -> None:
    """CloudFormation turns "true"/"false" (a String parameter) into a boolean; moto keeps the string."""
    props = res.get("Properties") or {}
    value = props.get("DeletionProtectionEnabled")
    resolved = p.params.get(value["Ref"]) if isinstance(value, dict) and list(value) == ["Ref"] else value
    if isinstance(resolved, str) and resolved.lower() in ("true", "false"):
        props["DeletionProtectionEnabled"] = resolved.lower() == "true"
        p.record(lid, f"DeletionProtectionEnabled {value!r} -> {props['DeletionProtectionEnabled']} (boolean)",
                 "moto stores the string: DescribeTable then answers \"false\"/\"true\" where AWS answers a "
                 "boolean, and a \"false\" string still refuses DeleteTable "
                 "(moto/dynamodb/models/table.py Table.create_from_cloudformation_json)")


def patch_lambda_url(p: Patcher, lid: str, res: dict[str, Any]) -> None:
    p.remove(lid, "moto's CloudFormation has no AWS::Lambda::Url model, and an output's GetAtt on it makes "
                  "CreateStack fail with HTTP 500 (moto/cloudformation/parsing.py ResourceMap.validate_outputs); "
                  "created after the stack with Lambda CreateFunctionUrlConfig instead, which moto has")


def remove_unmodelled(p: Patcher, lid: str, res: dict[str, Any]) -> None:
    p.remove(lid, f"moto's CloudFormation has no {res['Type']} model: it would skip it silently "
                  "(moto/cloudformation/parsing.py resource_class_from_type); its properties go to "
                  "`removed` in --out")


def check_role_managed_policies(p: Patcher, lid: str, res: dict[str, Any]) -> None:
    """Not a change: moto's Role model drops ManagedPolicyArns, so check AWS-managed ones exist here."""
    arns = (res.get("Properties") or {}).get("ManagedPolicyArns") or []
    known = set(aws_managed_policy_map().values())
    for arn in arns:
        if isinstance(arn, str) and arn.startswith("arn:aws:iam::aws:policy/") and arn not in known:
            fail(f"{lid}: ManagedPolicyArns {arn}: no such AWS managed policy (in moto's copy of the list)")
    if arns:
        p.notes.append({"resource": lid, "property": "ManagedPolicyArns",
                        "note": "moto's Role model drops it (no attachment); AWS-managed ARNs were checked "
                                "against moto's copy of AWS's managed policy list"})


def patch_list_novalue(p: Patcher, lid: str, res: dict[str, Any]) -> None:
    """A list item `!If [Cond, X, !Ref AWS::NoValue]` whose branch is NoValue: AWS drops the item,
    moto keeps a null in the list. Dropped here (any resource type, any depth)."""

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{path}.{key}" if path else key)
        elif isinstance(node, list):
            for item in list(node):
                if isinstance(item, dict) and list(item) == ["Fn::If"]:
                    cond, yes, no = item["Fn::If"]
                    chosen = yes if condition_value(p, cond) else no
                    if chosen == {"Ref": "AWS::NoValue"}:
                        node.remove(item)
                        p.record(lid, f"{path}: list item `Fn::If [{cond}, ...]` dropped (its branch is AWS::NoValue)",
                                 "moto's clean_json (moto/cloudformation/parsing.py) leaves a null list item "
                                 "where AWS removes it; the IAM Role model then crashes on it "
                                 "(moto/iam/models.py Role.create_from_cloudformation_json: HTTP 500)")
                        continue
                walk(item, path)

    walk(res.get("Properties") or {}, "")


# Applied to every resource, then the per-type ones below.
PATCH_ALL = [patch_list_novalue]

# resource type -> patch functions, applied in order.
PATCHES: dict[str, list[Callable[[Patcher, str, dict[str, Any]], None]]] = {
    "AWS::SQS::Queue": [patch_fifo_queue_name],
    "AWS::DynamoDB::Table": [patch_table_deletion_protection],
    "AWS::IAM::Role": [check_role_managed_policies],
    "AWS::Lambda::Url": [patch_lambda_url],
    "AWS::Scheduler::Schedule": [remove_unmodelled],
    "AWS::Logs::MetricFilter": [remove_unmodelled],
    "AWS::CloudWatch::Alarm": [remove_unmodelled],
}


def condition_value(p: Patcher, name: str) -> bool:
    """Evaluates a template condition over the parameter values (Equals/Not/And/Or/Ref/Condition)."""

    def ev(node: Any) -> Any:
        if isinstance(node, dict) and len(node) == 1:
            (fn, arg), = node.items()
            if fn == "Ref":
                return p.params[arg]
            if fn == "Condition":
                return condition_value(p, arg)
            if fn == "Fn::Equals":
                return str(ev(arg[0])) == str(ev(arg[1]))
            if fn == "Fn::Not":
                return not ev(arg[0])
            if fn == "Fn::And":
                return all(ev(a) for a in arg)
            if fn == "Fn::Or":
                return any(ev(a) for a in arg)
        if isinstance(node, (str, int, float, bool)):
            return node
        fail(f"condition {name}: cannot evaluate {node!r}")

    return bool(ev(p.t["Conditions"][name]))


def references(node: Any) -> set[str]:
    """Logical ids a template fragment refers to (Ref, Fn::GetAtt, Fn::Sub variables)."""
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                found.add(value)
            elif key == "Fn::GetAtt":
                found.add(value[0] if isinstance(value, list) else value.split(".")[0])
            elif key == "Fn::Sub":
                text = value[0] if isinstance(value, list) else value
                found |= {m.split(".")[0] for m in re.findall(r"\$\{([^!}][^}]*)\}", text)}
                if isinstance(value, list):
                    found -= set(value[1])
                    found |= references(value[1])
            else:
                found |= references(value)
    elif isinstance(node, list):
        for item in node:
            found |= references(item)
    return found


def patch_for_moto(template: dict[str, Any], params: dict[str, str], stack: str) -> Patcher:
    p = Patcher(template, params, stack)
    unknown = sorted({r["Type"] for r in template["Resources"].values()} - CREATED_BY_MOTO - set(PATCHES))
    if unknown:
        fail(f"resource type(s) {unknown} in the template: moto's CloudFormation is not known to create "
             "them and no patch handles them; try them on moto and add them to CREATED_BY_MOTO or PATCHES "
             "in scripts/rehearse-deploy.py")
    for lid, res in list(template["Resources"].items()):
        for fn in PATCH_ALL + PATCHES.get(res["Type"], []):
            if lid in template["Resources"]:
                fn(p, lid, res)
    check_dangling(p)
    note_ignored_properties(p)
    return p


def check_dangling(p: Patcher) -> None:
    """A kept resource must not refer to a removed one; an output that does gets a placeholder."""
    removed = set(p.removed)
    for lid, res in p.t["Resources"].items():
        bad = references(res) & removed
        depends = res.get("DependsOn")
        if depends:
            deps = [depends] if isinstance(depends, str) else depends
            if set(deps) & removed:
                res["DependsOn"] = [d for d in deps if d not in removed]
                p.record(lid, f"DependsOn {sorted(set(deps) & removed)} dropped", "that resource was removed above")
        if bad:
            fail(f"{lid} refers to {sorted(bad)}, removed for moto; add a patch for {res['Type']} "
                 "in scripts/rehearse-deploy.py")
    for key, out in (p.t.get("Outputs") or {}).items():
        gone = references(out.get("Value")) & removed
        if gone:
            p.removed_outputs[key] = out["Value"]
            out["Value"] = f"<rehearsal: {sorted(gone)} not created by moto>"
            p.record(f"Outputs.{key}", f"Value replaced by a placeholder (refers to {sorted(gone)})",
                     "its resource was removed above; moto would fail the stack on the dangling "
                     "reference (filled after the stack when the resource is emulated)")


def note_ignored_properties(p: Patcher) -> None:
    for lid, res in p.t["Resources"].items():
        consumed = MOTO_CONSUMES.get(res["Type"])
        if consumed is None or ("Condition" in res and not condition_value(p, res["Condition"])):
            continue
        for prop in sorted(set(res.get("Properties") or {}) - consumed - {"Tags"}):
            if prop == "ManagedPolicyArns":
                continue  # noted by check_role_managed_policies
            p.notes.append({"resource": lid, "property": prop,
                            "note": f"moto's {res['Type']} model ignores it: not checked by this rehearsal"})
    for n in p.notes:
        print(f"   note {n['resource']}.{n['property']}: {n['note']}")


# ---------------------------------------------------------------------------------- 6. create stack


def create_stack(cfn: Any, stack: str, template: dict[str, Any], params: dict[str, str]) -> None:
    try:
        cfn.create_stack(
            StackName=stack,
            TemplateBody=json.dumps(template),
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()],
            Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
        )
        cfn.get_waiter("stack_create_complete").wait(StackName=stack, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    except (ClientError, WaiterError, BotoCoreError, ResponseParserError) as e:
        print(f"CreateStack failed: {e}", file=sys.stderr)
        if isinstance(e, ResponseParserError) or "500" in str(e):
            print("(an HTTP 500 is a crash inside moto: its server log has the traceback, usually a "
                  "template construct moto's CloudFormation mishandles; add a patch)", file=sys.stderr)
        print_events(cfn, stack)
        fail(f"stack {stack} was not created")


def print_events(cfn: Any, stack: str) -> None:
    try:
        events = cfn.describe_stack_events(StackName=stack)["StackEvents"]
    except ClientError:
        return
    for ev in reversed(events):
        print(f"   {ev['LogicalResourceId']} {ev['ResourceType']} {ev['ResourceStatus']} "
              f"{ev.get('ResourceStatusReason', '')}", file=sys.stderr)


# ---------------------------------------------------------------------- emulated after CreateStack


def create_function_urls(p: Patcher, resources: dict[str, dict[str, str]], aws: Callable[[str], Any]) -> dict[str, Any]:
    urls = {}
    for lid, res in p.removed.items():
        if res["Type"] != "AWS::Lambda::Url":
            continue
        props = res["Properties"]
        target = props["TargetFunctionArn"]
        if not (isinstance(target, dict) and target.get("Ref") in resources):
            fail(f"{lid}: TargetFunctionArn {target!r}: only a Ref to a function of the stack is emulated")
        function = resources[target["Ref"]]["physical_id"]
        config = {k: props[k] for k in ("AuthType", "Cors", "InvokeMode") if k in props}
        out = aws("lambda").create_function_url_config(FunctionName=function, **config)
        urls[lid] = {"function": function, "FunctionUrl": out["FunctionUrl"], "AuthType": out["AuthType"]}
        print(f"   {lid}: CreateFunctionUrlConfig({function}, {config}) -> {out['FunctionUrl']}")
    return urls


# ------------------------------------------------------------------------------------ 7. read back


def stack_resources(cfn: Any, stack: str) -> dict[str, dict[str, str]]:
    out = {}
    for page in cfn.get_paginator("list_stack_resources").paginate(StackName=stack):
        for r in page["StackResourceSummaries"]:
            if not r["LogicalResourceId"]:
                continue  # moto lists each resource skipped by a false Condition as an empty entry
            out[r["LogicalResourceId"]] = {"type": r["ResourceType"], "physical_id": r["PhysicalResourceId"]}
    return out


def read_functions(resources: dict[str, dict[str, str]], p: Patcher, aws: Callable[[str], Any]) -> dict[str, Any]:
    lam = aws("lambda")
    out = {}
    for lid, r in resources.items():
        if r["type"] != "AWS::Lambda::Function":
            continue
        c = lam.get_function_configuration(FunctionName=r["physical_id"])
        concurrency = lam.get_function_concurrency(FunctionName=r["physical_id"])
        out[lid] = {
            "FunctionName": c["FunctionName"],
            "FunctionArn": c["FunctionArn"],
            "Environment": environment(lid, c),
            "Runtime": c.get("Runtime"),
            "Architectures": c.get("Architectures"),
            "Handler": c.get("Handler"),
            "Timeout": c.get("Timeout"),
            "MemorySize": c.get("MemorySize"),
            "ReservedConcurrentExecutions": concurrency.get("ReservedConcurrentExecutions"),
            "Role": c.get("Role"),
            # Template properties moto dropped: e.g. Architectures above is moto's default, not the template's.
            "NotAppliedByMoto": sorted(n["property"] for n in p.notes if n["resource"] == lid),
        }
    return out


def environment(lid: str, config: dict[str, Any]) -> dict[str, str]:
    """Lambda's variables are strings; moto hands back a Number parameter's value as a JSON number."""
    variables = (config.get("Environment") or {}).get("Variables", {})
    for k, v in variables.items():
        if not isinstance(v, str):
            print(f"   note {lid}.Environment.{k}: moto returned {v!r}, not a string (AWS: {str(v)!r}); written as a string")
    return {k: str(v) for k, v in variables.items()}


def read_event_source_mappings(resources: dict[str, dict[str, str]], aws: Callable[[str], Any]) -> dict[str, Any]:
    keep = ("EventSourceArn", "FunctionArn", "BatchSize", "FunctionResponseTypes", "ScalingConfig",
            "StartingPosition", "MaximumRetryAttempts", "MaximumBatchingWindowInSeconds",
            "BisectBatchOnFunctionError", "FilterCriteria", "State")
    out = {}
    for lid, r in resources.items():
        if r["type"] == "AWS::Lambda::EventSourceMapping":
            m = aws("lambda").get_event_source_mapping(UUID=r["physical_id"])
            out[lid] = {"UUID": r["physical_id"], "Function": m["FunctionArn"].rsplit(":", 1)[-1],
                        **{k: m[k] for k in keep if k in m}}
    return out


def read_queues(resources: dict[str, dict[str, str]], aws: Callable[[str], Any]) -> dict[str, Any]:
    sqs = aws("sqs")
    out = {}
    for lid, r in resources.items():
        if r["type"] == "AWS::SQS::Queue":
            attrs = sqs.get_queue_attributes(QueueUrl=r["physical_id"], AttributeNames=["All"])["Attributes"]
            if "RedrivePolicy" in attrs:
                attrs["RedrivePolicy"] = json.loads(attrs["RedrivePolicy"])
            out[lid] = {"QueueUrl": r["physical_id"], "Attributes": attrs}
    return out


def read_tables(resources: dict[str, dict[str, str]], aws: Callable[[str], Any]) -> dict[str, Any]:
    ddb = aws("dynamodb")
    out = {}
    for lid, r in resources.items():
        if r["type"] == "AWS::DynamoDB::Table":
            t = ddb.describe_table(TableName=r["physical_id"])["Table"]
            out[lid] = {k: t.get(k) for k in ("TableName", "TableArn", "KeySchema", "AttributeDefinitions",
                                              "GlobalSecondaryIndexes", "LocalSecondaryIndexes",
                                              "StreamSpecification", "LatestStreamArn", "BillingModeSummary",
                                              "DeletionProtectionEnabled", "SSEDescription")
                        if t.get(k) is not None}
    return out


def read_dashboards(resources: dict[str, dict[str, str]], aws: Callable[[str], Any]) -> dict[str, Any]:
    """AWS's PutDashboard rejects a body that is not JSON; moto stores anything. Check it here."""
    out = {}
    for lid, r in resources.items():
        if r["type"] == "AWS::CloudWatch::Dashboard":
            body = aws("cloudwatch").get_dashboard(DashboardName=r["physical_id"])["DashboardBody"]
            try:
                widgets = json.loads(body).get("widgets", [])
            except json.JSONDecodeError as e:
                fail(f"{lid}: DashboardBody is not JSON once substituted ({e}); AWS would reject it")
            out[lid] = {"DashboardName": r["physical_id"], "widgets": len(widgets)}
    return out


def read_back(cfn: Any, stack: str, p: Patcher, aws: Callable[[str], Any]) -> dict[str, Any]:
    resources = stack_resources(cfn, stack)
    urls = create_function_urls(p, resources, aws)
    desc = cfn.describe_stacks(StackName=stack)["Stacks"][0]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in desc.get("Outputs", [])}
    for key, value in p.removed_outputs.items():
        target, attr = (value.get("Fn::GetAtt") or [None, None]) if isinstance(value, dict) else (None, None)
        if target in urls and attr == "FunctionUrl":
            outputs[key] = urls[target]["FunctionUrl"]
            print(f"   Outputs.{key} <- {outputs[key]} (from the emulated {target})")
    return {
        "stack_name": stack,
        "stack_id": desc["StackId"],
        "status": desc["StackStatus"],
        "outputs": outputs,
        "resources": resources,
        "functions": read_functions(resources, p, aws),
        "event_source_mappings": read_event_source_mappings(resources, aws),
        "function_urls": urls,
        "queues": read_queues(resources, aws),
        "tables": read_tables(resources, aws),
        "dashboards": read_dashboards(resources, aws),
        "patches": p.applied,
        # What moto could not create, as the transformed template has it (intrinsics unresolved), for
        # callers that check it themselves (e.g. the schedule's Input is a job the worker parses).
        "removed": p.removed,
        "not_checked_by_moto": p.notes,
    }


# -------------------------------------------------------------------------------------------- main


def main(argv: list[str]) -> int:
    started = time.monotonic()
    args = parse_args(argv)
    aws = clients(args.endpoint)
    params: dict[str, str] = dict(args.params)

    step(f"1. parse {args.template}")
    template = load_template(args.template)
    if args.create_secrets:
        step("   create secrets on moto (--create-secrets)")
        create_secrets(args.create_secrets, params, args.stack_name, aws)
    step("2. check parameters against the template")
    check_params(template, params)

    step(f"3. package: placeholder code to s3://{ARTIFACT_BUCKET}")
    package(template, Path(args.template).resolve().parent, aws)

    step("4. SAM transform (samtranslator; managed policy names: its bundled map, then moto's copy of AWS's list)")
    transformed = transform(template, params, aws)
    print(f"   {len(transformed['Resources'])} resources")

    step("5. patch the transformed template for moto's CloudFormation")
    patcher = patch_for_moto(transformed, params, args.stack_name)
    print(f"   {len(patcher.applied)} patch(es)")

    step(f"6. CreateStack {args.stack_name} on {args.endpoint}")
    cfn = aws("cloudformation")
    create_stack(cfn, args.stack_name, transformed, params)
    print("   CREATE_COMPLETE")

    step("7. read back")
    result = read_back(cfn, args.stack_name, patcher, aws)
    result["seconds"] = round(time.monotonic() - started, 2)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2, sort_keys=True, default=str) + "\n")
    print(f"   wrote {args.out} ({result['seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
