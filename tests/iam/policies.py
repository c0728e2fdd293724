#!/usr/bin/env python3
"""Least privilege in template.yaml, against the Service Authorization Reference data cfn-lint ships.

  policies.py check [template]   the static rules; prints each finding, exits 1 if any
  policies.py schedules [template]
                                 the Input of every function's ScheduleV2 event, as JSON by function and event
  policies.py dump [template] [Parameter=value ...]
                                 each function's Allow statements as JSON (actions, resources, conditions), with
                                 ${AWS::Partition}=aws, ${AWS::AccountId}=123456789012, ${AWS::Region}=us-east-1,
                                 parameters at their defaults unless given and both branches of every Fn::If (the
                                 widest grant); an empty template argument is the repository's

Static rules: every action exists; no `*` action and no service-wide wildcard; an action that supports no resource
type is granted only on "*" (IAM never matches it against an ARN: the call is denied); an action with resource types
granted on "*" needs a comment above its statement saying why; every ARN granted matches one of the action's
resource types (a parameter that names a grant's resources and is empty by default is given a sample value for
this). Read with cfn-lint's own template decoder, so short tags (!Sub, !If, ...) read as CloudFormation does.
"""

import json
import os
import re
import sys

import cfnlint
from cfnlint.decode import decode

ACCOUNT, REGION, PARTITION = "123456789012", "us-east-1", "aws"


def reference():
    path = os.path.join(os.path.dirname(cfnlint.__file__), "data", "AdditionalSpecs", "Policies.json")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def as_list(value):
    return value if isinstance(value, list) else [value]


class Resolver:
    """Turns the template's intrinsic functions into plain strings (lists for Fn::If: both branches)."""

    def __init__(self, template, overrides=None):
        self.parameters = {k: v.get("Default", "") for k, v in template.get("Parameters", {}).items()}
        self.parameters.update(overrides or {})
        self.resources = template.get("Resources", {})

    def ref(self, name):
        fixed = {"AWS::Partition": PARTITION, "AWS::AccountId": ACCOUNT, "AWS::Region": REGION,
                 "AWS::NoValue": None, "AWS::StackName": "keeper"}
        if name in fixed:
            return fixed[name]
        if name in self.parameters:
            return str(self.parameters[name])
        # A secret's Ref is its ARN, which ends in six characters Secrets Manager picks: a wildcard stands in for them.
        resource = self.resources.get(name, {})
        if resource.get("Type") == "AWS::SecretsManager::Secret":
            secret = self.values(resource.get("Properties", {}).get("Name", name))[0]
            return f"arn:{PARTITION}:secretsmanager:{REGION}:{ACCOUNT}:secret:{secret}-*"
        # A resource: its logical id stands in for its name (only ARNs built from it are compared).
        return name

    def getatt(self, name, attribute):
        kind = self.resources.get(name, {}).get("Type", "")
        if kind == "AWS::DynamoDB::Table" and attribute == "Arn":
            return f"arn:{PARTITION}:dynamodb:{REGION}:{ACCOUNT}:table/{name}"
        return f"arn:{PARTITION}:unknown:{REGION}:{ACCOUNT}:{name}/{attribute}"

    def values(self, node):
        """Every value the node can take (an Fn::If gives both)."""
        if isinstance(node, dict) and len(node) == 1:
            (fn, arg), = node.items()
            if fn == "Ref":
                value = self.ref(arg)
                return [] if value is None else [value]
            if fn == "Fn::GetAtt":
                name, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
                return [self.getatt(name, attribute)]
            if fn == "Fn::Sub":
                text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])

                def sub(match):
                    key = match.group(1)
                    if key in variables:
                        return self.values(variables[key])[0]
                    if "." in key:
                        return self.getatt(*key.split(".", 1))
                    return str(self.ref(key))

                return [re.sub(r"\$\{([^}!]+)\}", sub, text)]
            if fn == "Fn::If":
                return self.values(arg[1]) + self.values(arg[2])
            if fn == "Fn::Join":
                return [arg[0].join(self.values(part)[0] for part in arg[1])]
            if fn == "Fn::Split":
                return [piece for value in self.values(arg[1]) for piece in str(value).split(arg[0])]
            if fn == "Fn::Select":
                return [self.values(arg[1])[int(self.values(arg[0])[0])]]
        if isinstance(node, list):
            out = []
            for item in node:
                out.extend(self.values(item))
            return out
        return [node]

    def statements(self, document):
        out = []
        for statement in as_list(document.get("Statement", [])):
            for concrete in self.values(statement):
                if not isinstance(concrete, dict) or concrete.get("Effect") != "Allow":
                    continue
                out.append({
                    "sid": concrete.get("Sid", ""),
                    "actions": [a for a in self.values(concrete.get("Action", [])) if a],
                    "resources": [r for r in self.values(concrete.get("Resource", [])) if r],
                    "condition": concrete.get("Condition", {}),
                })
        return out

    def function_policies(self, function):
        out = []
        for policy in as_list(function.get("Properties", {}).get("Policies", [])):
            for document in self.values(policy):
                if isinstance(document, str) and document in self.resources:
                    document = self.resources[document].get("Properties", {}).get("PolicyDocument", {})
                if isinstance(document, dict):
                    out.extend(self.statements(document))
        return out


def load(path):
    template, matches = decode(path)
    if matches:
        raise SystemExit(f"{path}: {matches}")
    return template


def functions(template):
    return {name: r for name, r in template["Resources"].items() if r.get("Type") == "AWS::Serverless::Function"}


def all_statements(template, resolver):
    """(where, statement) for every function's policies and every managed policy."""
    for name, function in functions(template).items():
        for statement in resolver.function_policies(function):
            yield name, statement
    for name, resource in template["Resources"].items():
        if resource.get("Type") == "AWS::IAM::ManagedPolicy":
            for statement in resolver.statements(resource["Properties"]["PolicyDocument"]):
                yield name, statement


def arn_regex(arn_format):
    parts = re.split(r"(\$\{[^}]+\})", arn_format)
    return "^" + "".join(".+" if p.startswith("${") else re.escape(p).replace(r"\.\*", ".*") for p in parts) + "$"


def grant_matches(resource, arn_format):
    """Whether an ARN granted (possibly with wildcards) lies within a resource type's ARN format."""
    probe = resource.replace("*", "x")
    return re.match(arn_regex(arn_format), probe) is not None


def commented(text, sid):
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if re.match(rf"\s*-\s*Sid:\s*{re.escape(sid)}\s*$", line):
            previous = [l for l in lines[max(0, i - 3):i] if l.strip()]
            return bool(previous) and previous[-1].strip().startswith("#")
    return False


# Parameters whose default (empty) leaves a grant out: `check` judges the grant with a sample value.
CHECK_SAMPLES = {
    "DistributionConfigurationArns":
        f"arn:{PARTITION}:imagebuilder:{REGION}:{ACCOUNT}:distribution-configuration/sample",
    "LifecycleExecutionRoleArn": f"arn:{PARTITION}:iam::{ACCOUNT}:role/sample",
}


def check(path):
    template, text, ref = load(path), open(path, encoding="utf-8").read(), reference()
    resolver = Resolver(template, {k: v for k, v in CHECK_SAMPLES.items() if k in template.get("Parameters", {})})
    findings = []
    for where, st in all_statements(template, resolver):
        label = f"{where}/{st['sid'] or '(no Sid)'}"
        for action in st["actions"]:
            if action == "*" or action.endswith(":*"):
                findings.append(f"{label}: `{action}` grants a whole service or everything")
                continue
            service, _, name = action.partition(":")
            if "*" in name:
                findings.append(f"{label}: `{action}` is a wildcard action")
                continue
            known = ref.get(service, {}).get("Actions", {}).get(name.lower())
            if known is None:
                findings.append(f"{label}: `{action}` is not an action of the Service Authorization Reference")
                continue
            types = known.get("Resources", [])
            if not types:
                for r in st["resources"]:
                    if r != "*":
                        findings.append(
                            f"{label}: `{action}` supports no resource-level permissions; granted on `{r}` it never "
                            "matches and the call is denied: grant it on \"*\"")
                continue
            formats = []
            for t in types:
                spec = ref[service]["Resources"].get(t) or ref[service]["Resources"].get(t.lower(), {})
                formats.extend(spec.get("ARNFormats", []))
            for r in st["resources"]:
                if r == "*":
                    if not st["sid"] or not commented(text, st["sid"]):
                        findings.append(f"{label}: `{action}` supports {', '.join(types)} but is granted on \"*\" "
                                        "with no comment above the statement saying why")
                elif not any(grant_matches(r, f) for f in formats):
                    findings.append(f"{label}: `{action}` is granted on `{r}`, which is none of its resource types "
                                    f"({', '.join(types)})")
    return findings


def dump(path, overrides):
    template = load(path)
    resolver = Resolver(template, overrides)
    out = {name: resolver.function_policies(f) for name, f in functions(template).items()}
    ref = reference()
    actions = {}
    for statements in out.values():
        for st in statements:
            for action in st["actions"]:
                service, _, name = action.partition(":")
                known = ref.get(service, {}).get("Actions", {}).get(name.lower(), {})
                actions[action] = known.get("Resources", [])
    return {"functions": out, "resourceTypes": actions}


def main(argv):
    mode = argv[1] if len(argv) > 1 else "check"
    default = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "template.yaml")
    path = argv[2] if len(argv) > 2 and argv[2] else default
    if mode == "schedules":
        template = load(path)
        out = {
            name: {
                event: props.get("Properties", {}).get("Input")
                for event, props in f.get("Properties", {}).get("Events", {}).items()
                if props.get("Type") == "ScheduleV2"
            }
            for name, f in functions(template).items()
        }
        print(json.dumps(out, indent=1, sort_keys=True))
        return 0
    if mode == "dump":
        overrides = dict(arg.split("=", 1) for arg in argv[3:])
        print(json.dumps(dump(path, overrides), indent=1, sort_keys=True))
        return 0
    findings = check(path)
    for f in findings:
        print(f)
    print(f"{len(findings)} finding(s) in {os.path.relpath(path)}", file=sys.stderr)
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
