#!/usr/bin/env python3
"""Writes the constraint data of the emulated operations, from botocore's service models, into local/models/.

Run by hand or with `make models` after upgrading botocore (the venv's), then review the diff: a constraint added to a
model is enforced by the emulator and exercised by local/tests/suite/model_conformance.rs without anyone writing a case.

Kept: operations (HTTP binding, input, output, modeled errors) and every shape reachable from them, with required
members, types, lengths, patterns, enums, list and map sizes, integer ranges and wire locations. Dropped: documentation.
"""

import glob
import gzip
import json
import os
import sys

import botocore

SERVICES = {
    "appstream": [
        "CreateImageBuilder", "DescribeImageBuilders", "StartImageBuilder", "StopImageBuilder",
        "DeleteImageBuilder", "ListTagsForResource", "TagResource",
    ],
    "imagebuilder": [
        "CreateDistributionConfiguration", "GetDistributionConfiguration", "UpdateDistributionConfiguration",
        "ListDistributionConfigurations", "StartResourceStateUpdate", "ListImages", "ListImageBuildVersions",
        "GetImage", "ListLifecycleExecutions", "GetLifecycleExecution",
    ],
    "cloudfront": [
        "CreatePublicKey", "ListPublicKeys", "GetPublicKey", "GetPublicKeyConfig", "DeletePublicKey",
        "CreateKeyGroup", "ListKeyGroups", "GetKeyGroup", "GetKeyGroupConfig", "UpdateKeyGroup", "DeleteKeyGroup",
    ],
    "secretsmanager": [
        "CreateSecret", "DescribeSecret", "GetSecretValue", "PutSecretValue", "UpdateSecretVersionStage",
        "ListSecretVersionIds", "TagResource", "RotateSecret", "CancelRotateSecret",
    ],
}

SHAPE_KEYS = ("type", "required", "min", "max", "pattern", "enum", "payload", "flattened", "timestampFormat")
MEMBER_KEYS = ("location", "locationName", "idempotencyToken", "flattened", "jsonvalue")


def newest_model(service):
    root = os.path.join(os.path.dirname(botocore.__file__), "data", service)
    return sorted(glob.glob(os.path.join(root, "*", "service-2.json*")))[-1]


def load(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        return json.load(f)


def compact_shape(shape):
    out = {k: shape[k] for k in SHAPE_KEYS if k in shape}
    if "members" in shape:
        out["members"] = {
            name: dict({"shape": m["shape"]}, **{k: m[k] for k in MEMBER_KEYS if k in m})
            for name, m in shape["members"].items()
        }
    for part in ("member", "key", "value"):
        if part in shape:
            ref = shape[part]
            out[part] = dict({"shape": ref["shape"]}, **{k: ref[k] for k in MEMBER_KEYS if k in ref})
    if shape.get("exception"):
        out["exception"] = True
        out["status"] = shape.get("error", {}).get("httpStatusCode", 400)
        if "code" in shape.get("error", {}):
            out["code"] = shape["error"]["code"]
    return out


def reachable(shapes, roots):
    seen, todo = set(), list(roots)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        shape = shapes[name]
        todo.extend(m["shape"] for m in shape.get("members", {}).values())
        todo.extend(shape[p]["shape"] for p in ("member", "key", "value") if p in shape)
    return seen


def generate(service, operations):
    path = newest_model(service)
    model = load(path)
    ops, roots = {}, []
    for name in operations:
        op = model["operations"][name]
        entry = {"method": op["http"]["method"], "uri": op["http"]["requestUri"]}
        for part in ("input", "output"):
            if part in op:
                entry[part] = op[part]["shape"]
                roots.append(op[part]["shape"])
        entry["errors"] = [e["shape"] for e in op.get("errors", [])]
        roots.extend(entry["errors"])
        ops[name] = entry
    shapes = {n: compact_shape(model["shapes"][n]) for n in sorted(reachable(model["shapes"], roots))}
    meta = model["metadata"]
    return {
        "service": service,
        "apiVersion": meta["apiVersion"],
        "protocols": meta.get("protocols", [meta["protocol"]]),
        "targetPrefix": meta.get("targetPrefix"),
        "source": "botocore " + botocore.__version__ + " " + os.path.relpath(path, os.path.dirname(botocore.__file__)),
        "operations": ops,
        "shapes": shapes,
    }


def write(data, path):
    # One operation or shape per line: small diffs when a model changes.
    lines = ["{"]
    for key in ("service", "apiVersion", "protocols", "targetPrefix", "source"):
        lines.append(f"{json.dumps(key)}: {json.dumps(data[key])},")
    for section in ("operations", "shapes"):
        lines.append(f"{json.dumps(section)}: {{")
        items = list(data[section].items())
        for i, (name, value) in enumerate(items):
            comma = "," if i < len(items) - 1 else ""
            lines.append(f"  {json.dumps(name)}: {json.dumps(value, sort_keys=True)}{comma}")
        lines.append("}," if section == "operations" else "}")
    lines.append("}")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def main():
    out_dir = os.path.dirname(os.path.abspath(__file__))
    for service, operations in SERVICES.items():
        data = generate(service, operations)
        target = os.path.join(out_dir, f"{service}.json")
        write(data, target)
        print(f"{target}: {len(data['operations'])} operations, {len(data['shapes'])} shapes ({data['source']})")


if __name__ == "__main__":
    sys.exit(main())
