#!/usr/bin/env python3
"""Writes the CloudFormation template that AWS::Serverless-2016-10-31 makes of template.yaml, for cfn-lint to check
what CloudFormation will really create: the roles, schedules, queues, permissions and subscriptions SAM generates.

cfn-lint's own handling of the transform is partial (it invents CodeDeploy resources and omits the Scheduler ones),
so the transform here is the one CloudFormation runs, from aws-sam-translator, offline: managed policy names are not
looked up in IAM (the template uses none) and CodeUri, which `sam build` fills in, is a placeholder S3 location.

Usage: sam_transform.py TEMPLATE OUT.json [Param=Value ...]  (parameters not given take their defaults, as in a
deploy that leaves them alone).
"""

import json
import os
import sys

from cfnlint.decode import decode
from samtranslator.translator.transform import transform


class NoManagedPolicies:
    """The translator's IAM lookup, answered offline: keeper's template names no AWS managed policy."""

    def load(self):
        return {}


def transformed(path, parameters=None):
    """The CloudFormation template AWS::Serverless-2016-10-31 makes of the template at `path` (a dict)."""
    template, matches = decode(path)
    if matches:
        sys.exit("\n".join(str(m) for m in matches))
    # The translator reads the pseudo parameters' region from the environment.
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    template = json.loads(json.dumps(template, default=str))
    for resource in template.get("Resources", {}).values():
        if resource.get("Type") == "AWS::Serverless::Function":
            resource.setdefault("Properties", {})["CodeUri"] = "s3://keeper-build-artifacts/placeholder.zip"
    return transform(template, dict(parameters or {}), NoManagedPolicies())


def main(argv):
    if len(argv) < 3:
        sys.exit(__doc__)
    out = transformed(argv[1], dict(arg.split("=", 1) for arg in argv[3:]))
    os.makedirs(os.path.dirname(os.path.abspath(argv[2])), exist_ok=True)
    with open(argv[2], "w") as f:
        json.dump(out, f, indent=1, sort_keys=False)
    print(f"{argv[2]}: {len(out.get('Resources', {}))} resources after the SAM transform")


if __name__ == "__main__":
    main(sys.argv)
