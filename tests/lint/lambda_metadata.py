#!/usr/bin/env python3
"""Keeps each function's `[package.metadata.lambda.deploy]` (what `cargo lambda deploy` sets) equal to what the
template gives the same function: memory, timeout, runtime, log retention, and every environment variable at its
parameter's default. A deploy by hand then behaves like the stack's, and a setting added to one is not forgotten in
the other.

Usage: lambda_metadata.py TRANSFORMED.json  (the output of sam_transform.py). Reads each package's configuration as
cargo lambda itself resolves it (`cargo lambda system --package NAME --output-format json`). Prints each difference
and exits 1 if there is any.

Differences allowed by design, and checked as such:
- a variable whose template value names a resource of the stack: IDEMPOTENCY_TABLE is the docs/deploy.md recipe's table
  (keeper-idempotency); DESIRED_STATE_S3_URI and SCHEDULES_S3_URI name the account's bucket and are given at deploy
  (--env-var);
- KEEPER_STACK, the stack's name in the template: a deploy by hand has no stack, and leaves it at the functions'
  default or gives it with --env-var, so it is not compared on either side;
- a variable whose default is empty is left out (cargo lambda refuses `NAME=`; unset and empty read the same).
"""

import json
import subprocess
import sys

RECIPE = {"IDEMPOTENCY_TABLE": "keeper-idempotency"}
PER_ACCOUNT = {"DESIRED_STATE_S3_URI", "SCHEDULES_S3_URI"}
PER_DEPLOYMENT = {"KEEPER_STACK"}


def binary_of(resource):
    return resource.get("Metadata", {}).get("BuildProperties", {}).get("Binary")


def expected_env(variables, parameters):
    out = {}
    for name, value in variables.items():
        if isinstance(value, dict) and "Ref" in value and value["Ref"] in parameters:
            value = parameters[value["Ref"]].get("Default", "")
        if name in RECIPE:
            out[name] = RECIPE[name]
        elif name in PER_ACCOUNT:
            continue
        elif isinstance(value, dict):
            out[name] = ("<resource>", json.dumps(value))
        elif str(value) != "":
            out[name] = str(value)
    return out


def resolved(value, parameters):
    if isinstance(value, dict) and "Ref" in value and value["Ref"] in parameters:
        return parameters[value["Ref"]].get("Default")
    return value


def main(argv):
    if len(argv) != 2:
        sys.exit(__doc__)
    with open(argv[1]) as f:
        template = json.load(f)
    parameters = template.get("Parameters", {})
    retention = {}
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] == "AWS::Logs::LogGroup":
            retention[logical_id] = resolved(resource["Properties"].get("RetentionInDays"), parameters)
    findings = []
    functions = [(r, binary_of(r)) for r in template["Resources"].values() if r["Type"] == "AWS::Lambda::Function"]
    if not functions:
        findings.append("no AWS::Lambda::Function in the transformed template")
    for resource, binary in functions:
        if not binary:
            findings.append(f"a function without Metadata.BuildProperties.Binary: {resource['Properties'].get('Description')}")
            continue
        out = subprocess.run(["cargo", "lambda", "system", "--package", binary, "--output-format", "json"],
                             capture_output=True, text=True)
        if out.returncode != 0:
            findings.append(f"{binary}: cargo lambda system failed: {out.stderr.strip()}")
            continue
        deploy = json.loads(out.stdout)["config"]["package"].get("deploy", {})
        props = resource["Properties"]
        want = {
            "memory": props.get("MemorySize"),
            "timeout": props.get("Timeout"),
            "runtime": props.get("Runtime"),
            "log_retention": retention.get(props.get("LoggingConfig", {}).get("LogGroup", {}).get("Ref")),
        }
        for key, value in want.items():
            if deploy.get(key) != value:
                findings.append(f"{binary}: deploy.{key} is {deploy.get(key)!r}, the template's is {value!r}")
        env = dict(v.split("=", 1) for v in deploy.get("env_var", []))
        template_env = expected_env(props.get("Environment", {}).get("Variables", {}), parameters)
        for name in sorted((set(env) | set(template_env)) - PER_DEPLOYMENT):
            if env.get(name) != template_env.get(name):
                findings.append(f"{binary}: env {name} is {env.get(name)!r}, the template's is {template_env.get(name)!r}")
    for finding in findings:
        print(finding)
    print(f"{len(functions)} functions compared, {len(findings)} differences")
    sys.exit(1 if findings else 0)


if __name__ == "__main__":
    main(sys.argv)
