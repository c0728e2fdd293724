#!/usr/bin/env python3
"""Every checkov finding silenced in the template says why: each `Metadata: checkov: skip:` entry of a resource needs
an `id` (CKV_...) and a `comment` that gives the reason (a sentence, not a placeholder).

Usage: checkov_skips.py TEMPLATE. Prints each skip (resource, id, reason) and each one without a reason; exits 1 if
any has none.
"""

import re
import sys

from cfnlint.decode import decode


def main(argv):
    if len(argv) != 2:
        sys.exit(__doc__)
    template, matches = decode(argv[1])
    if matches:
        sys.exit("\n".join(str(m) for m in matches))
    findings, skips = [], 0
    for name, resource in template.get("Resources", {}).items():
        entries = (resource.get("Metadata") or {}).get("checkov", {}).get("skip", [])
        for entry in entries if isinstance(entries, list) else [entries]:
            skips += 1
            check = entry.get("id", "") if isinstance(entry, dict) else str(entry)
            comment = " ".join(str(entry.get("comment", "")).split()) if isinstance(entry, dict) else ""
            if not re.fullmatch(r"CKV2?_[A-Z0-9]+_[0-9]+", check):
                findings.append(f"{name}: a checkov skip without a check id: {entry!r}")
            elif len(comment) < 30:
                findings.append(f"{name}: {check} is skipped without its reason (comment: {comment!r})")
            else:
                print(f"{name}: {check} skipped: {comment}")
    for finding in findings:
        print(finding)
    print(f"{skips} checkov skip(s), {len(findings)} without a reason")
    sys.exit(1 if findings else 0)


if __name__ == "__main__":
    main(sys.argv)
