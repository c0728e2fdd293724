#!/usr/bin/env python3
"""Who can make keeper act: template.yaml's resource policies evaluated as IAM does, for a set of principals.

  resource_policies.py [check] [template] [Param=Value ...]
      the static rule and the evaluation, each with Publishers given (a sample role, unless a Publishers=... argument
      is given) and with Publishers empty; prints one line per case and exits 1 if any case fails
  resource_policies.py control [template] [Param=Value ...]
      the same check on the template broken four ways (a topic and a bucket reaching a function unguarded, the Denies
      of non-Publishers removed, S3 permissions without SourceArn); exits 1 unless each is caught

The template is read with cfn-lint's decoder and put through the SAM transform (tests/lint/sam_transform.py), so the
subscriptions, Lambda permissions and roles SAM generates are judged as CloudFormation creates them. Every Fn::If
follows its condition, evaluated with the parameters given (defaults otherwise).

Static rule: every event source of a function (an SNS topic it is subscribed to or that a Lambda permission names, an
S3 bucket with a NotificationConfiguration or named by a Lambda permission or an EventBridge rule, an EventBridge
rule targeting it) is locked: a topic or bucket has a resource policy with an explicit Deny that refuses a principal of
this account that is not a Publisher but holds sns:Publish / s3:* on "*", and one that refuses a request without
TLS; an S3 permission names its bucket (SourceArn: without it, any bucket of the account may invoke the function); an
EventBridge rule matches only events AWS itself emits (`aws.*` sources, this account).

Evaluation (IAM's rules for one account): an explicit Deny in any policy wins; otherwise a principal of this account
is allowed when its identity policy or the resource policy allows it (a resource policy naming the account itself only
delegates to identity policies); a principal of another account needs both; an anonymous request needs the resource
policy to allow "*"; a service principal needs the resource policy. Conditions: the Bool, String*, Arn* and Null
operators, their ...IfExists forms, and IAM's rule for a key missing from the request (a negated operator is then
true, any other false).
"""

import json
import logging
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lint"))

# The translator warns at exit about usage metrics it never sends.
logging.getLogger("samtranslator").setLevel(logging.ERROR)

ACCOUNT, OTHER_ACCOUNT, REGION, PARTITION, STACK = "123456789012", "210987654321", "us-east-1", "aws", "keeper"
STACK_ID = f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/{STACK}/8d3b6a20-0f1e-11f0-9c4e-0a1b2c3d4e5f"
SAMPLE_PUBLISHER = f"arn:aws:iam::{ACCOUNT}:role/keeper-publisher"
IMAGE_BUILDER_ROLE = (f"arn:aws:iam::{ACCOUNT}:role/aws-service-role/imagebuilder.amazonaws.com/"
                      "AWSServiceRoleForImageBuilder")


def as_list(value):
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


# --- the template, every intrinsic function resolved ---------------------------------------------------------------

class Template:
    """A CloudFormation template (after the SAM transform) with parameters, conditions and intrinsics resolved."""

    def __init__(self, template, overrides):
        self.raw = template
        self.resources = template.get("Resources", {})
        self.parameters = {}
        for name, spec in template.get("Parameters", {}).items():
            value = str(overrides.get(name, spec.get("Default", "")))
            self.parameters[name] = value.split(",") if spec.get("Type") == "CommaDelimitedList" else value
        self.conditions = {}
        for name in template.get("Conditions", {}):
            self.condition(name)

    def condition(self, name):
        if name not in self.conditions:
            self.conditions[name] = bool(self.resolve(self.raw["Conditions"][name]))
        return self.conditions[name]

    # Stand-ins for what CloudFormation would name: a resource's Ref and its Arn.
    def name_of(self, logical):
        kind = self.resources.get(logical, {}).get("Type", "")
        props = self.resources[logical].get("Properties", {}) if logical in self.resources else {}
        if kind == "AWS::S3::Bucket":
            return self.resolve(props["BucketName"]) if "BucketName" in props else f"{STACK}-{logical.lower()}-1a2b3c"
        return f"{STACK}-{logical}-1A2B3C"

    def ref(self, name):
        pseudo = {"AWS::Partition": PARTITION, "AWS::AccountId": ACCOUNT, "AWS::Region": REGION,
                  "AWS::StackName": STACK, "AWS::StackId": STACK_ID, "AWS::URLSuffix": "amazonaws.com",
                  "AWS::NoValue": None}
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        kind = self.resources.get(name, {}).get("Type", "")
        if kind in ("AWS::SNS::Topic", "AWS::Events::Rule", "AWS::Scheduler::Schedule"):
            return self.arn(name)
        if kind == "AWS::SQS::Queue":
            return f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{self.name_of(name)}"
        return self.name_of(name)

    def arn(self, logical):
        kind = self.resources.get(logical, {}).get("Type", "")
        name = self.name_of(logical)
        return {
            "AWS::S3::Bucket": f"arn:{PARTITION}:s3:::{name}",
            "AWS::SNS::Topic": f"arn:{PARTITION}:sns:{REGION}:{ACCOUNT}:{name}",
            "AWS::SQS::Queue": f"arn:{PARTITION}:sqs:{REGION}:{ACCOUNT}:{name}",
            "AWS::Lambda::Function": f"arn:{PARTITION}:lambda:{REGION}:{ACCOUNT}:function:{name}",
            "AWS::Events::Rule": f"arn:{PARTITION}:events:{REGION}:{ACCOUNT}:rule/{name}",
            "AWS::Scheduler::Schedule": f"arn:{PARTITION}:scheduler:{REGION}:{ACCOUNT}:schedule/default/{name}",
            "AWS::IAM::Role": f"arn:{PARTITION}:iam::{ACCOUNT}:role/{name}",
            "AWS::DynamoDB::Table": f"arn:{PARTITION}:dynamodb:{REGION}:{ACCOUNT}:table/{name}",
        }.get(kind, f"arn:{PARTITION}:unknown:{REGION}:{ACCOUNT}:{name}")

    def getatt(self, logical, attribute):
        if attribute == "Arn":
            return self.arn(logical)
        if attribute in ("QueueName", "TopicName"):
            return self.name_of(logical)
        return f"{self.name_of(logical)}.{attribute}"

    def resolve(self, node):
        """The concrete value of a node; None stands for AWS::NoValue (dropped from lists and mappings)."""
        if isinstance(node, list):
            return [v for v in (self.resolve(item) for item in node) if v is not None]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (fn, arg), = node.items()
            if fn == "Ref":
                return self.ref(arg)
            if fn == "Condition":
                return self.condition(arg)
            if fn == "Fn::GetAtt":
                logical, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
                return self.getatt(logical, attribute)
            if fn == "Fn::Sub":
                text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])

                def sub(match):
                    key = match.group(1)
                    if key in variables:
                        return str(self.resolve(variables[key]))
                    if "." in key and key.split(".", 1)[0] in self.resources:
                        return str(self.getatt(*key.split(".", 1)))
                    return str(self.ref(key))

                return re.sub(r"\$\{([^}!]+)\}", sub, text)
            if fn == "Fn::If":
                return self.resolve(arg[1] if self.condition(arg[0]) else arg[2])
            if fn == "Fn::Join":
                return arg[0].join(str(v) for v in as_list(self.resolve(arg[1])))
            if fn == "Fn::Split":
                return str(self.resolve(arg[1])).split(arg[0])
            if fn == "Fn::Select":
                return as_list(self.resolve(arg[1]))[int(self.resolve(arg[0]))]
            if fn == "Fn::Equals":
                left, right = self.resolve(arg[0]), self.resolve(arg[1])
                return str(left) == str(right)
            if fn == "Fn::Not":
                return not self.resolve(arg[0])
            if fn == "Fn::And":
                return all(self.resolve(a) for a in arg)
            if fn == "Fn::Or":
                return any(self.resolve(a) for a in arg)
        return {k: v for k, v in ((k, self.resolve(v)) for k, v in node.items()) if v is not None}

    def of_type(self, kind):
        return {n: r for n, r in self.resources.items() if r.get("Type") == kind and self.exists(r)}

    def exists(self, resource):
        return "Condition" not in resource or self.condition(resource["Condition"])

    def props(self, logical):
        return self.resolve(self.resources[logical].get("Properties", {}))


# --- IAM evaluation ------------------------------------------------------------------------------------------------

def glob(pattern, text, case=True):
    """IAM's wildcards: * any run, ? one character; actions compare without case, ARNs with it."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, text, 0 if case else re.IGNORECASE) is not None


class Request:
    """One request: who (an IAM principal ARN, a service, or nobody), the action, the resource, the context."""

    def __init__(self, label, action, resource, principal=None, account=None, service=None, tls=True,
                 source_arn=None, source_account=None, identity=()):
        self.label, self.action, self.resource = label, action, resource
        self.principal, self.account, self.service, self.identity = principal, account, service, list(identity)
        self.context = {"aws:securetransport": "true" if tls else "false"}
        if principal:
            self.context["aws:principalarn"] = principal
            self.context["aws:principalaccount"] = account
        if service:
            self.context["aws:principalservicename"] = service
            self.context["aws:principalisawsservice"] = "true"
        else:
            self.context["aws:principalisawsservice"] = "false"
        if source_arn:
            self.context["aws:sourcearn"] = source_arn
        if source_account:
            self.context["aws:sourceaccount"] = source_account


def condition_holds(conditions, request):
    for operator, block in (conditions or {}).items():
        # ForAnyValue:/ForAllValues: over the single-valued keys modelled here mean the operator itself.
        operator = operator.split(":", 1)[-1]
        if_exists = operator.endswith("IfExists")
        base = operator[: -len("IfExists")] if if_exists else operator
        for key, wanted in block.items():
            actual = request.context.get(key.lower())
            wanted = [str(w).lower() if base == "Bool" else str(w) for w in as_list(wanted)]
            if base == "Null":
                if (actual is None) != (wanted[0].lower() == "true"):
                    return False
                continue
            negated = "Not" in base
            if actual is None:
                if if_exists or negated:
                    continue
                return False
            if base == "Bool":
                matched = actual in wanted
            elif base in ("StringEquals", "StringNotEquals", "ArnEquals", "ArnNotEquals"):
                matched = actual in wanted if base.startswith("String") else any(glob(w, actual) for w in wanted)
            elif base in ("StringEqualsIgnoreCase", "StringNotEqualsIgnoreCase"):
                matched = actual.lower() in [w.lower() for w in wanted]
            elif base in ("StringLike", "StringNotLike", "ArnLike", "ArnNotLike"):
                matched = any(glob(w, actual) for w in wanted)
            else:
                raise SystemExit(f"condition operator {operator} is not modelled by {os.path.basename(__file__)}")
            if matched == negated:
                return False
    return True


def statement_applies(statement, request, resource_policy):
    actions = as_list(statement.get("Action"))
    if "NotAction" in statement:
        if any(glob(a, request.action, case=False) for a in as_list(statement["NotAction"])):
            return False
    elif not any(glob(a, request.action, case=False) for a in actions):
        return False
    if "NotResource" in statement:
        if any(glob(r, request.resource) for r in as_list(statement["NotResource"])):
            return False
    elif not any(glob(r, request.resource) for r in as_list(statement.get("Resource", "*"))):
        return False
    if resource_policy and principal_match(statement.get("Principal"), request) is None:
        return False
    return condition_holds(statement.get("Condition"), request)


def principal_match(principal, request):
    """How a resource policy's Principal covers the request: 'explicit' (it names the caller, or everyone),
    'delegated' (it names the caller's account: the account's identity policies decide), or None."""
    if principal == "*" or (isinstance(principal, dict) and "*" in as_list(principal.get("AWS"))):
        return "explicit"
    if not isinstance(principal, dict):
        return None
    if request.service and request.service in as_list(principal.get("Service")):
        return "explicit"
    for arn in as_list(principal.get("AWS")):
        if request.principal and arn == request.principal:
            return "explicit"
        if request.account and arn in (request.account, f"arn:{PARTITION}:iam::{request.account}:root"):
            return "delegated"
    return None


def decide(request, resource_statements, resource_account=ACCOUNT):
    """(allowed, why) as IAM decides for one account's resource."""
    for source, statements, is_resource in (("identity", request.identity, False),
                                            ("resource", resource_statements, True)):
        for st in statements:
            if st.get("Effect") == "Deny" and statement_applies(st, request, is_resource):
                return False, f"explicit Deny in the {source} policy ({st.get('Sid', 'no Sid')})"
    identity = any(st.get("Effect") == "Allow" and statement_applies(st, request, False) for st in request.identity)
    grants = [principal_match(st.get("Principal"), request) for st in resource_statements
              if st.get("Effect") == "Allow" and statement_applies(st, request, True)]
    explicit, delegated = "explicit" in grants, "delegated" in grants
    if request.principal is None and request.service is None:
        return (True, "the resource policy allows anyone") if explicit else (False, "anonymous, nothing allows it")
    if request.service:
        return (True, "the resource policy allows the service") if explicit else (False, "no grant to the service")
    if request.account == resource_account:
        if identity:
            return True, "its identity policy allows it and no Deny applies"
        if explicit:
            return True, "the resource policy allows it and no Deny applies"
        return False, "nothing allows it"
    if identity and (explicit or delegated):
        return True, "both its identity policy and the resource policy allow it"
    return False, "another account: the resource policy does not allow it" if identity else "nothing allows it"


# --- keeper's resource policies and event sources ------------------------------------------------------------------

def statements(document):
    return [st for st in as_list((document or {}).get("Statement")) if isinstance(st, dict)]


class Policies:
    """Every resource policy of the template, by the ARN of the resource it guards."""

    def __init__(self, t):
        self.t = t
        self.topics = {t.arn(n): n for n in t.of_type("AWS::SNS::Topic")}
        self.buckets = {t.arn(n): n for n in t.of_type("AWS::S3::Bucket")}
        self.functions = {t.arn(n): n for n in t.of_type("AWS::Lambda::Function")}
        self.by_arn = {}
        for name in t.of_type("AWS::SNS::TopicPolicy"):
            p = t.props(name)
            for topic in as_list(p.get("Topics")):
                self.by_arn.setdefault(topic, []).extend(statements(p.get("PolicyDocument")))
        for name in t.of_type("AWS::S3::BucketPolicy"):
            p = t.props(name)
            self.by_arn.setdefault(f"arn:{PARTITION}:s3:::{p['Bucket']}", []).extend(statements(p["PolicyDocument"]))
        self.permissions = {}
        for name in t.of_type("AWS::Lambda::Permission"):
            p = t.props(name)
            function = self.function_arn(p["FunctionName"])
            condition = {}
            if "SourceArn" in p:
                condition["ArnLike"] = {"aws:SourceArn": p["SourceArn"]}
            if "SourceAccount" in p:
                condition["StringEquals"] = {"aws:SourceAccount": p["SourceAccount"]}
            principal = p["Principal"]
            principal = {"Service": principal} if principal.endswith(".amazonaws.com") else (
                "*" if principal == "*" else {"AWS": principal})
            self.permissions.setdefault(function, []).append(
                (name, p, {"Sid": name, "Effect": "Allow", "Principal": principal, "Action": p["Action"],
                           "Resource": function, "Condition": condition}))

    def function_arn(self, value):
        return value if value.startswith("arn:") else f"arn:{PARTITION}:lambda:{REGION}:{ACCOUNT}:function:{value}"

    def of(self, arn):
        """The statements guarding an ARN (for an object: its bucket's policy)."""
        if arn.startswith(f"arn:{PARTITION}:s3:::"):
            arn = arn.split("/", 1)[0]
        return self.by_arn.get(arn, [])

    def roles(self):
        """Each function's execution role: its identity statements."""
        out = {}
        for name in self.t.of_type("AWS::Lambda::Function"):
            role = self.t.resources[name]["Properties"].get("Role", {})
            logical = role.get("Fn::GetAtt", [None])[0] if isinstance(role, dict) else None
            if isinstance(logical, str) and "." in logical:
                logical = logical.split(".", 1)[0]
            if logical not in self.t.resources:
                continue
            props = self.t.props(logical)
            out[name] = (self.t.arn(logical), [st for policy in as_list(props.get("Policies"))
                                               for st in statements(policy.get("PolicyDocument"))])
        return out

    def event_sources(self):
        """(kind, ARN, detail, the functions it reaches) of every way an AWS source reaches a function."""
        sources = {}

        def add(kind, arn, detail, function):
            entry = sources.setdefault((kind, arn), {"detail": set(), "functions": set()})
            entry["detail"].add(detail)
            entry["functions"].add(self.functions.get(function, function))

        for name in self.t.of_type("AWS::SNS::Subscription"):
            p = self.t.props(name)
            if p.get("Protocol") == "lambda":
                add("topic", p["TopicArn"], f"subscription {name}", p["Endpoint"])
        for name in self.t.of_type("AWS::S3::Bucket"):
            n = self.t.props(name).get("NotificationConfiguration", {})
            for kind in ("LambdaConfigurations", "TopicConfigurations", "QueueConfigurations"):
                for c in as_list(n.get(kind)):
                    add("bucket", self.t.arn(name), f"{name}.NotificationConfiguration",
                        c.get("Function") or c.get("Topic") or c.get("Queue"))
            if n.get("EventBridgeConfiguration"):
                add("bucket", self.t.arn(name), f"{name} sends its events to EventBridge", "EventBridge")
        for function, grants in self.permissions.items():
            for name, p, _ in grants:
                principal = p["Principal"]
                if principal == "sns.amazonaws.com":
                    add("topic", p.get("SourceArn", "<any topic>"), f"permission {name}", function)
                elif principal == "s3.amazonaws.com":
                    add("bucket", p.get("SourceArn", "<any bucket of the account>"), f"permission {name}", function)
                elif principal == "events.amazonaws.com":
                    add("rule", p.get("SourceArn", "<any rule>"), f"permission {name}", function)
                else:
                    add("other", principal, f"permission {name}", function)
        for name in self.t.of_type("AWS::Events::Rule"):
            p = self.t.props(name)
            for target in as_list(p.get("Targets")):
                if target.get("Arn") in self.functions:
                    add("rule", self.t.arn(name), f"rule {name}", target["Arn"])
            pattern = p.get("EventPattern") or {}
            if "aws.s3" in as_list(pattern.get("source")):
                for bucket in as_list(pattern.get("detail", {}).get("bucket", {}).get("name")):
                    add("bucket", f"arn:{PARTITION}:s3:::{bucket}", f"rule {name} matches its events", name)
        return sources


# --- the principals and the cases ----------------------------------------------------------------------------------

BROAD = [{"Effect": "Allow", "Action": ["sns:Publish", "s3:*", "lambda:InvokeFunction"], "Resource": "*"}]
PUBLISHER_OWN = [{"Effect": "Allow", "Action": ["sns:Publish", "s3:PutObject*", "s3:DeleteObject*",
                                                "s3:RestoreObject", "s3:Replicate*"], "Resource": "*"}]
IMAGE_BUILDER_OWN = [{"Effect": "Allow", "Action": "sns:Publish", "Resource": "*"}]

# What makes keeper act, or rolls back what it acts on, per kind of resource.
TOPIC_ACTIONS = ["sns:Publish"]
OBJECT_ACTIONS = ["s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion", "s3:PutObjectAcl",
                  "s3:PutObjectTagging", "s3:RestoreObject", "s3:ReplicateObject"]


def principals(publishers_given):
    """(label, Request keyword arguments, allowed on a request topic or bucket, allowed on the notifications topic)."""
    return [
        ("a Publisher (its own policy allows publishing and uploading)",
         dict(principal=SAMPLE_PUBLISHER, account=ACCOUNT, identity=PUBLISHER_OWN), publishers_given, publishers_given),
        ("an admin of this account (sns:Publish, s3:* on *), not a Publisher",
         dict(principal=f"arn:aws:iam::{ACCOUNT}:role/admin", account=ACCOUNT, identity=BROAD), False, False),
        ("a role of another account (sns:Publish, s3:* on * there)",
         dict(principal=f"arn:aws:iam::{OTHER_ACCOUNT}:role/outsider", account=OTHER_ACCOUNT, identity=BROAD),
         False, False),
        ("an anonymous request", dict(), False, False),
        ("a request without TLS (a Publisher, over HTTP)",
         dict(principal=SAMPLE_PUBLISHER, account=ACCOUNT, identity=PUBLISHER_OWN, tls=False), False, False),
        ("Image Builder (its service-linked role, sns:Publish on *)",
         dict(principal=IMAGE_BUILDER_ROLE, account=ACCOUNT, identity=IMAGE_BUILDER_OWN), False, True),
    ]


def object_under(t, bucket_logical):
    """An object key of the bucket that reaches a function: its notification filter's prefix and suffix."""
    n = t.props(bucket_logical).get("NotificationConfiguration", {})
    for c in as_list(n.get("LambdaConfigurations")):
        rules = {r["Name"].lower(): r["Value"] for r in c.get("Filter", {}).get("S3Key", {}).get("Rules", [])}
        prefix, suffix = rules.get("prefix", ""), rules.get("suffix", "")
        if suffix and not prefix.endswith(suffix):
            return f"{prefix}5f1c2d3e/new{suffix}"
        return prefix or "object.json"
    return "object.json"


def evaluate(t, label):
    """Every case for one parameter set: (ok, line)."""
    p = Policies(t)
    publishers_given = any(v for v in t.parameters.get("Publishers", [""]))
    out = []
    sources = p.event_sources()

    def case(resource_label, request, expected, policy):
        allowed, why = decide(request, policy)
        ok = allowed == expected
        verdict = "allowed" if allowed else "denied"
        want = "allow" if expected else "deny"
        out.append((ok, f"{'ok  ' if ok else 'FAIL'} [{label}] {resource_label} {request.action} by {request.label}: "
                        f"{verdict} ({why}); expected {want}"))

    # The static rule: every event source is one the checks below know, and is locked.
    for (kind, arn), entry in sorted(sources.items()):
        functions = ", ".join(sorted(entry["functions"]))
        where = "; ".join(sorted(entry["detail"]))
        if kind == "topic" and arn not in p.topics:
            out.append((False, f"FAIL [{label}] {arn} ({where}) reaches {functions} and is not a topic of this stack: "
                               "name it with SourceArn"))
        elif kind == "topic" and not p.of(arn):
            out.append((False, f"FAIL [{label}] topic {p.topics[arn]} reaches {functions} ({where}) and has no "
                               "AWS::SNS::TopicPolicy"))
        elif kind == "bucket" and arn not in p.buckets:
            out.append((False, f"FAIL [{label}] {arn} ({where}) reaches {functions}: an S3 permission must name its "
                               "bucket (SourceArn), or any bucket of the account can invoke the function"))
        elif kind == "bucket" and not p.of(arn):
            out.append((False, f"FAIL [{label}] bucket {p.buckets[arn]} reaches {functions} ({where}) and has no "
                               "AWS::S3::BucketPolicy"))
        elif kind == "rule":
            rules = {t.arn(n): n for n in t.of_type("AWS::Events::Rule")}
            pattern = t.props(rules[arn]).get("EventPattern", {}) if arn in rules else {}
            aws_only = bool(pattern) and all(str(s).startswith("aws.") for s in as_list(pattern.get("source")))
            account_only = as_list(pattern.get("account")) == [ACCOUNT]
            ok = aws_only and account_only
            out.append((ok, f"{'ok  ' if ok else 'FAIL'} [{label}] rule {rules.get(arn, arn)} reaches {functions}: "
                            f"sources {as_list(pattern.get('source')) or 'any'} (only AWS can emit aws.*), accounts "
                            f"{as_list(pattern.get('account')) or 'any'} (expected only AWS sources, this account)"))
        elif kind == "other":
            out.append((False, f"FAIL [{label}] {arn} may invoke {functions} ({where}): not a known event source"))
        else:
            out.append((True, f"ok   [{label}] {kind} {p.topics.get(arn) or p.buckets.get(arn)} reaches {functions} "
                              f"({where}) and has a resource policy"))

    # The evaluation: each topic and bucket that reaches a function, each principal, each action that makes keeper
    # act (or rolls back what it acts on).
    for (kind, arn), entry in sorted(sources.items()):
        if kind == "topic" and arn in p.topics:
            name = p.topics[arn]
            notifications = name == "ImageBuildNotificationsTopic"
            for who, kwargs, on_requests, on_notifications in principals(publishers_given):
                for action in TOPIC_ACTIONS:
                    case(f"topic {name}", Request(who, action, arn, **kwargs),
                         on_notifications if notifications else on_requests, p.of(arn))
        elif kind == "bucket" and arn in p.buckets:
            name = p.buckets[arn]
            obj = f"{arn}/{object_under(t, name)}"
            for who, kwargs, on_requests, _ in principals(publishers_given):
                if who.startswith("Image Builder"):
                    continue
                for action in OBJECT_ACTIONS:
                    case(f"bucket {name} ({obj.split('/', 1)[1]})", Request(who, action, obj, **kwargs),
                         on_requests, p.of(arn))
            # The functions' own reads still pass.
            for function, (role_arn, role_statements) in p.roles().items():
                if any(glob(r, obj) for st in role_statements for r in as_list(st.get("Resource"))
                       if "s3:GetObject" in as_list(st.get("Action"))):
                    for action in ("s3:GetObject", "s3:GetObjectVersion"):
                        case(f"bucket {name} ({obj.split('/', 1)[1]})",
                             Request(f"{function}'s own role", action, obj, principal=role_arn, account=ACCOUNT,
                                     identity=role_statements), True, p.of(arn))

    # Who may invoke each function: the services only from keeper's own sources; by hand, whoever IAM lets.
    for function_arn, grants in sorted(p.permissions.items()):
        function = p.functions.get(function_arn, function_arn)
        policy = [g[2] for g in grants]
        for _, props, _ in grants:
            service = props["Principal"]
            own = props.get("SourceArn")
            if own:
                case(f"function {function}", Request(f"{service} from keeper's own source", "lambda:InvokeFunction",
                                                     function_arn, service=service, source_arn=own,
                                                     source_account=ACCOUNT), True, policy)
            stranger = {"s3.amazonaws.com": f"arn:{PARTITION}:s3:::someone-elses-bucket",
                        "sns.amazonaws.com": f"arn:{PARTITION}:sns:{REGION}:{ACCOUNT}:someone-elses-topic",
                        "events.amazonaws.com": f"arn:{PARTITION}:events:{REGION}:{ACCOUNT}:rule/someone-elses-rule",
                        }.get(service, f"arn:{PARTITION}:unknown:{REGION}:{ACCOUNT}:someone-else")
            case(f"function {function}", Request(f"{service} from another source of this account",
                                                 "lambda:InvokeFunction", function_arn, service=service,
                                                 source_arn=stranger, source_account=ACCOUNT), False, policy)
        case(f"function {function}", Request("a role of another account (lambda:InvokeFunction on * there)",
                                             "lambda:InvokeFunction", function_arn,
                                             principal=f"arn:aws:iam::{OTHER_ACCOUNT}:role/outsider",
                                             account=OTHER_ACCOUNT, identity=BROAD), False, policy)
        # By design (SECURITY.md, "by hand"): IAM decides, and the settings bound what a request can do.
        case(f"function {function}", Request("an admin of this account (lambda:InvokeFunction on *), by hand",
                                             "lambda:InvokeFunction", function_arn,
                                             principal=f"arn:aws:iam::{ACCOUNT}:role/admin", account=ACCOUNT,
                                             identity=BROAD), True, policy)
    return out


def parameter_sets(overrides):
    publishers = overrides.get("Publishers", SAMPLE_PUBLISHER)
    return ((f"Publishers={publishers}", {**overrides, "Publishers": publishers}),
            ("Publishers empty", {**overrides, "Publishers": ""}))


def unlocked(template):
    """Controls: the template with one lock broken each way; the check must fail on every one."""
    def topic(t):
        t["Resources"]["UnlockedTopic"] = {"Type": "AWS::SNS::Topic", "Properties": {}}
        t["Resources"]["UnlockedTopicSubscription"] = {
            "Type": "AWS::SNS::Subscription",
            "Properties": {"Protocol": "lambda", "TopicArn": {"Ref": "UnlockedTopic"},
                           "Endpoint": {"Fn::GetAtt": ["RotateKeyGroupFunction", "Arn"]}}}

    def bucket(t):
        t["Resources"]["UnlockedBucket"] = {"Type": "AWS::S3::Bucket", "Properties": {"NotificationConfiguration": {
            "LambdaConfigurations": [{"Event": "s3:ObjectCreated:*",
                                      "Function": {"Fn::GetAtt": ["RotateKeyGroupFunction", "Arn"]}}]}}}

    def allow_only(t):
        for r in t["Resources"].values():
            if r["Type"] in ("AWS::SNS::TopicPolicy", "AWS::S3::BucketPolicy"):
                doc = r["Properties"]["PolicyDocument"]
                doc["Statement"] = [st for st in doc["Statement"]
                                    if not (isinstance(st, dict) and str(st.get("Sid", "")).startswith("Only"))
                                    and not (isinstance(st, dict) and "Fn::If" in st
                                             and "Deny" in json.dumps(st))]

    def any_bucket(t):
        for r in t["Resources"].values():
            if r["Type"] == "AWS::Lambda::Permission" and r["Properties"].get("Principal") == "s3.amazonaws.com":
                r["Properties"].pop("SourceArn", None)

    for name, breaks in (("a topic that reaches a function without a topic policy", topic),
                         ("a bucket that reaches a function without a bucket policy", bucket),
                         ("topic and bucket policies without their Deny of non-Publishers", allow_only),
                         ("S3 permissions without SourceArn", any_bucket)):
        broken = json.loads(json.dumps(template))
        breaks(broken)
        yield name, broken


def main(argv):
    args = argv[1:]
    mode = args.pop(0) if args and args[0] in ("check", "control") else "check"
    default = os.path.join(HERE, "..", "..", "template.yaml")
    path = args[0] if args and "=" not in args[0] and args[0] else default
    overrides = dict(a.split("=", 1) for a in args if "=" in a)
    from sam_transform import transformed  # tests/lint (on sys.path above): cfn-lint's decoder, then the transform

    if mode == "control":
        missed = 0
        for label, params in parameter_sets(overrides):
            for name, broken in unlocked(transformed(path, params)):
                failures = [line for ok, line in evaluate(Template(broken, params), label) if not ok]
                example = f", e.g. {failures[0][5:]}" if failures else ""
                verdict = f"caught, {len(failures)} failed case(s)" if failures else "not caught"
                print(f"{'ok  ' if failures else 'MISSED'} [{label}] {name}: {verdict}{example[:200]}")
                missed += not failures
        print(f"{missed} broken template(s) the check did not catch", file=sys.stderr)
        return 1 if missed else 0
    failed = 0
    for label, params in parameter_sets(overrides):
        for ok, line in evaluate(Template(transformed(path, params), params), label):
            print(line)
            failed += not ok
    print(f"{failed} failed case(s) in {os.path.relpath(path)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
