#!/usr/bin/env python3
"""Rules of template.yaml that no linter knows, each a lesson from a review:

- every parameter that reaches an IAM policy's Resource (directly, or through !Sub) has an AllowedPattern, so a value
  the policy cannot use (a role name where an ARN is needed) fails the deploy's parameter check, not the deploy;
- every dead-letter queue has an alarm that notifies on each arrival (NumberOfMessagesSent), not only on the queue
  becoming non-empty (an alarm already in ALARM does not notify the second lost event);
- every custom metric alarm names both dimensions the EMF line carries (function and stack).

  template_rules.py [template]    prints each finding, exits 1 if any
"""

import os
import re
import sys

from cfnlint.decode import decode


def walk(node):
    """Every dict and list below node, node included."""
    yield node
    if isinstance(node, dict):
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def referenced(node, parameters):
    """The parameters a node refers to (Ref, or ${Name} in a Sub)."""
    found = set()
    for n in walk(node):
        if isinstance(n, dict) and len(n) == 1:
            (fn, arg), = n.items()
            if fn == "Ref" and arg in parameters:
                found.add(arg)
            if fn == "Fn::Sub":
                text = arg if isinstance(arg, str) else arg[0]
                found.update(m for m in re.findall(r"\$\{([A-Za-z0-9]+)\}", text) if m in parameters)
    return found


def check(path):
    template, matches = decode(path)
    if matches:
        return [f"{path}: cannot be read: {m}" for m in matches]
    parameters = template.get("Parameters", {})
    resources = template.get("Resources", {})
    findings = []
    # Parameters in IAM Resource elements.
    for name, resource in resources.items():
        for node in walk(resource.get("Properties", {})):
            if isinstance(node, dict) and "Effect" in node and "Resource" in node:
                for parameter in sorted(referenced(node["Resource"], parameters)):
                    if "AllowedPattern" not in parameters[parameter] and "AllowedValues" not in parameters[parameter]:
                        findings.append(f"{name}: parameter {parameter} is an IAM Resource without an AllowedPattern")
    # Dead-letter queues and their per-arrival alarm.
    queues = [n for n, r in resources.items() if r.get("Type") == "AWS::SQS::Queue" and "DeadLetter" in n]
    alarms = {n: r for n, r in resources.items() if r.get("Type") == "AWS::CloudWatch::Alarm"}
    for queue in queues:
        per_arrival = [
            n for n, a in alarms.items()
            if queue in str(a.get("Properties", {})) and "NumberOfMessagesSent" in str(a.get("Properties", {}))
        ]
        if not per_arrival:
            findings.append(f"{queue}: no alarm on NumberOfMessagesSent: a second lost event would not notify")
    # Custom metric alarms and the EMF dimensions.
    for name, alarm in alarms.items():
        props = alarm.get("Properties", {})
        namespace = props.get("Namespace")
        metrics = props.get("Metrics", [])
        dimension_sets = [props.get("Dimensions", [])] if namespace else []
        for m in metrics:
            stat = m.get("MetricStat", {}).get("Metric", {})
            if stat:
                namespace = namespace or stat.get("Namespace")
                dimension_sets.append(stat.get("Dimensions", []))
        namespace = namespace if isinstance(namespace, dict) else {"Literal": namespace}
        if namespace.get("Ref") != "MetricsNamespace":
            continue
        for dimensions in dimension_sets:
            names = sorted(d.get("Name") for d in dimensions)
            if names != ["function", "stack"]:
                findings.append(f"{name}: dimensions {names}; the EMF line has function and stack")
    return findings


def main(argv):
    path = argv[1] if len(argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..", "template.yaml")
    findings = check(path)
    for f in findings:
        print(f)
    print(f"template rules: {len(findings)} finding(s)")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
