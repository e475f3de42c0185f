"""What IAM authorizes for one API call: the action(s), on which resource ARN(s), with
which condition keys the request carries (AWS's Service Authorization Reference, and
each operation's "Permissions" section in the API references).

Most operations need the action of their own name on the resource their parameters
name (``sqs:SendMessage`` on the queue, ``lambda:GetFunction`` on the function): that
is the default here, with the resource found by ``resource_of``. The table lists the
exceptions: S3's actions, which are not named after operations (HeadObject is
``s3:GetObject``, ListObjectsV2 is ``s3:ListBucket`` with ``s3:prefix``, DeleteObjects
is one ``s3:DeleteObject`` per key); batch calls (``sqs:SendMessage`` for
SendMessageBatch); calls that need more than one action (CreateQueue with tags also
``sqs:TagQueue``; RunInstances ``ec2:RunInstances`` on each resource it touches, plus
``ec2:CreateTags`` for the tags it sets and ``iam:PassRole`` for the instance's role;
AddRoleToInstanceProfile also ``iam:PassRole``); API Gateway, whose actions are HTTP
verbs on the path (``apigateway:POST`` on ``arn:aws:apigateway:REGION::/restapis``);
and calls that need no permission at all (``sts:GetCallerIdentity``).

Condition keys: ``s3:prefix`` (ListBucket, and the 403-or-404 rule for a missing key),
``aws:ResourceTag/…`` (the resource's tags, looked up), ``aws:RequestTag/…`` and
``aws:TagKeys`` (the tags a request sets), ``ec2:CreateAction`` (CreateTags inside a
create call), ``iam:PassedToService`` and ``cloudwatch:namespace``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

# API names of services whose IAM prefix differs.
IAM_PREFIX = {"cloudwatch": "cloudwatch", "monitoring": "cloudwatch", "lambda": "lambda"}
# Which EC2 resource type an id names, by its prefix.
# What a launch creates, and so may tag (a template's other specs are not the launch's).
LAUNCHED_TYPES = ("instance", "volume", "network-interface")
EC2_TYPES = {"i": "instance", "ami": "image", "sg": "security-group", "lt": "launch-template",
             "snap": "snapshot", "vol": "volume", "vpc": "vpc", "subnet": "subnet"}


@dataclass(frozen=True)
class Need:
    """One authorization the call needs: ``action`` on ``resource`` with ``context``."""

    action: str
    resource: str
    context: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Call:
    """An API call as the SDK makes it."""

    service: str  # botocore's service name: s3, sqs, ec2, cloudwatch, ...
    operation: str  # the API operation: GetObject, StartInstances, ...
    params: Mapping[str, Any]
    region: str
    account: str
    # The operation's HTTP method and path, its URI parameters filled in (REST APIs).
    http: tuple[str, str] = ("", "")


class Lookup:
    """What authorization needs to know besides the call: the tags already on EC2
    resources (``aws:ResourceTag``), the launch template a launch uses, the role in an
    instance profile. Subclassed by the judge, which asks the emulator."""

    def ec2_tags(self, resource_type: str, resource_id: str) -> dict[str, str]:
        return {}

    def launch_template(self, template: Mapping[str, Any]) -> Mapping[str, Any]:
        return {}

    def role_of_profile(self, profile: Mapping[str, Any]) -> str | None:
        return None

    def function_of_mapping(self, uuid: str) -> str | None:
        """The ARN of the function a Lambda event source mapping feeds."""
        return None


class UnmappedCallError(LookupError):
    """The call's authorization cannot be worked out here; the message says what to add."""


def needs(call: Call, lookup: Lookup) -> list[Need]:
    """Every authorization ``call`` needs (none for a call AWS authorizes for anyone)."""
    special = _TABLE.get((call.service, call.operation))
    if special is not None:
        return special(call, lookup)
    if call.service == "apigateway":
        return _apigateway(call)
    prefix = IAM_PREFIX.get(call.service, call.service)
    return [Need(f"{prefix}:{call.operation}", resource_of(call))]


# ---- resources ------------------------------------------------------------------------

def resource_of(call: Call) -> str:
    """The ARN of the one resource a call names in its parameters, or "*"."""
    p, region, account = call.params, call.region, call.account
    service = call.service
    if service == "s3":
        bucket = p.get("Bucket")
        if bucket is None:
            return "*"
        return f"arn:aws:s3:::{bucket}" + (f"/{p['Key']}" if "Key" in p else "")
    if service == "sqs":
        name = p.get("QueueName") or (p.get("QueueUrl") or "").rstrip("/").rsplit("/", 1)[-1]
        return f"arn:aws:sqs:{region}:{account}:{name}" if name else "*"
    if service == "ssm" and ("Name" in p or "ResourceId" in p):
        return _parameter(p.get("Name") or p["ResourceId"], region, account)
    if service == "iam":
        if "InstanceProfileName" in p:
            return f"arn:aws:iam::{account}:instance-profile/{p['InstanceProfileName']}"
        if "RoleName" in p:
            return f"arn:aws:iam::{account}:role/{p['RoleName']}"
        if "PolicyArn" in p:
            return p["PolicyArn"]
    if service == "logs" and "logGroupName" in p:
        return f"arn:aws:logs:{region}:{account}:log-group:{p['logGroupName']}"
    if service == "lambda":
        name = p.get("FunctionName") or p.get("Resource")
        if name:
            return name if name.startswith("arn:") else (
                f"arn:aws:lambda:{region}:{account}:function:{name}")
    if service == "events" and ("Name" in p or "Rule" in p):
        # A rule on a custom bus is named under its bus.
        bus = p.get("EventBusName")
        rule = p.get("Name") or p["Rule"]
        return f"arn:aws:events:{region}:{account}:rule/" + (
            f"{bus}/{rule}" if bus and bus != "default" else rule)
    if service == "dynamodb":
        if "ResourceArn" in p:
            return p["ResourceArn"]
        if "TableName" in p:
            table = f"arn:aws:dynamodb:{region}:{account}:table/{p['TableName']}"
            return f"{table}/index/{p['IndexName']}" if "IndexName" in p else table
    return "*"


def _parameter(name: str, region: str, account: str) -> str:
    # Public parameters (AWS's AMI ids) belong to no account.
    owner = "" if name.startswith("/aws/service/") else account
    return f"arn:aws:ssm:{region}:{owner}:parameter/{name.lstrip('/')}"


def ec2_arn(call: Call, resource_type: str, resource_id: str = "*") -> str:
    # Images and snapshots are named without an account in their ARNs.
    owner = "" if resource_type in ("image", "snapshot") else call.account
    return f"arn:aws:ec2:{call.region}:{owner}:{resource_type}/{resource_id}"


def ec2_type(resource_id: str) -> str:
    return EC2_TYPES.get(resource_id.split("-", 1)[0], "*")


# ---- S3 -------------------------------------------------------------------------------

def _object(action: str) -> Callable[[Call, Lookup], list[Need]]:
    return lambda call, lookup: [Need(action, resource_of(call))]


def _bucket(action: str) -> Callable[[Call, Lookup], list[Need]]:
    return lambda call, lookup: [
        Need(action, f"arn:aws:s3:::{call.params['Bucket']}")]


def _list_bucket(action: str) -> Callable[[Call, Lookup], list[Need]]:
    return lambda call, lookup: [Need(action, f"arn:aws:s3:::{call.params['Bucket']}",
                                      {"s3:prefix": call.params.get("Prefix", "")})]


def listing_of_key(bucket: str, key: str) -> Need:
    """The listing S3 checks before it tells a caller that ``key`` does not exist."""
    return Need("s3:ListBucket", f"arn:aws:s3:::{bucket}", {"s3:prefix": key})


def _delete_objects(call: Call, lookup: Lookup) -> list[Need]:
    bucket = call.params["Bucket"]
    return [Need("s3:DeleteObjectVersion" if o.get("VersionId") else "s3:DeleteObject",
                 f"arn:aws:s3:::{bucket}/{o['Key']}")
            for o in call.params["Delete"]["Objects"]]


def _delete_object(call: Call, lookup: Lookup) -> list[Need]:
    action = "s3:DeleteObjectVersion" if call.params.get("VersionId") else "s3:DeleteObject"
    return [Need(action, resource_of(call))]


# ---- SQS ------------------------------------------------------------------------------

def _queue(action: str) -> Callable[[Call, Lookup], list[Need]]:
    return lambda call, lookup: [Need(action, resource_of(call))]


def _create_queue(call: Call, lookup: Lookup) -> list[Need]:
    queue = resource_of(call)
    tags = call.params.get("tags") or {}
    found = [Need("sqs:CreateQueue", queue, _request_tags(tags))]
    if tags:
        found.append(Need("sqs:TagQueue", queue, _request_tags(tags)))
    return found


# ---- EC2 ------------------------------------------------------------------------------

def _request_tags(tags: Mapping[str, str] | list[Mapping[str, str]]) -> dict[str, Any]:
    pairs = tags.items() if isinstance(tags, Mapping) else (
        (t["Key"], t["Value"]) for t in tags)
    context: dict[str, Any] = {}
    for key, value in pairs:
        context[f"aws:RequestTag/{key}"] = value
        context.setdefault("aws:TagKeys", []).append(key)
    return context


def _existing(call: Call, lookup: Lookup, resource_type: str, resource_id: str
              ) -> dict[str, Any]:
    return {f"aws:ResourceTag/{k}": v
            for k, v in lookup.ec2_tags(resource_type, resource_id).items()}


def _on_each(action: str, ids_param: str) -> Callable[[Call, Lookup], list[Need]]:
    """An action on each of the resources the call names, with their current tags."""
    def found(call: Call, lookup: Lookup) -> list[Need]:
        ids = call.params[ids_param]
        ids = [ids] if isinstance(ids, str) else ids
        return [Need(action, ec2_arn(call, ec2_type(i), i),
                     _existing(call, lookup, ec2_type(i), i)) for i in ids]
    return found


def _tag_specs(specs: list[Mapping[str, Any]] | None) -> dict[str, list[Mapping[str, str]]]:
    by_type: dict[str, list[Mapping[str, str]]] = {}
    for spec in specs or []:
        by_type.setdefault(spec["ResourceType"], []).extend(spec.get("Tags", []))
    return by_type


def _tagging_on_create(call: Call, specs: Mapping[str, list[Mapping[str, str]]]
                       ) -> list[Need]:
    """Tags set by a create call need ``ec2:CreateTags`` on what is created."""
    return [Need("ec2:CreateTags", ec2_arn(call, resource_type),
                 {"ec2:CreateAction": call.operation, **_request_tags(tags)})
            for resource_type, tags in specs.items() if tags]


def _create_tagged(action: str, resource_type: str, also: tuple[str, ...] = ()
                   ) -> Callable[[Call, Lookup], list[Need]]:
    """A create call on ``resource_type`` (and the ``also`` types it needs), with the
    tags of its TagSpecifications as request tags."""
    def found(call: Call, lookup: Lookup) -> list[Need]:
        specs = _tag_specs(call.params.get("TagSpecifications"))
        tags = _request_tags(specs.get(resource_type, []))
        return [Need(action, ec2_arn(call, resource_type), tags),
                *(Need(action, ec2_arn(call, other)) for other in also),
                *_tagging_on_create(call, specs)]
    return found


def _create_tags(call: Call, lookup: Lookup) -> list[Need]:
    tags = _request_tags(call.params["Tags"])
    return [Need("ec2:CreateTags", ec2_arn(call, ec2_type(i), i),
                 {**tags, **_existing(call, lookup, ec2_type(i), i)})
            for i in call.params["Resources"]]


def _run_instances(call: Call, lookup: Lookup) -> list[Need]:
    p = call.params
    template = lookup.launch_template(p["LaunchTemplate"]) if "LaunchTemplate" in p else {}
    specs: dict[str, list[Mapping[str, str]]] = {}
    for given in (template.get("TagSpecifications"), p.get("TagSpecifications")):
        for resource_type, tags in _tag_specs(given).items():
            if resource_type in LAUNCHED_TYPES:
                specs.setdefault(resource_type, []).extend(tags)
    image = p.get("ImageId") or template.get("ImageId")
    found = [
        Need("ec2:RunInstances", ec2_arn(call, "instance"),
             _request_tags(specs.get("instance", []))),
        Need("ec2:RunInstances", ec2_arn(call, "volume"),
             _request_tags(specs.get("volume", []))),
        Need("ec2:RunInstances", ec2_arn(call, "image", image or "*")),
        Need("ec2:RunInstances", ec2_arn(call, "network-interface")),
        Need("ec2:RunInstances", ec2_arn(call, "security-group")),
        Need("ec2:RunInstances", ec2_arn(call, "subnet")),
        *_tagging_on_create(call, specs),
    ]
    if "LaunchTemplate" in p:
        template_id = p["LaunchTemplate"].get("LaunchTemplateId", "*")
        found.append(Need("ec2:RunInstances", ec2_arn(call, "launch-template", template_id),
                          _existing(call, lookup, "launch-template", template_id)))
    profile = p.get("IamInstanceProfile") or template.get("IamInstanceProfile")
    role = lookup.role_of_profile(profile) if profile else None
    if role:
        found.append(Need("iam:PassRole", f"arn:aws:iam::{call.account}:role/{role}",
                          {"iam:PassedToService": "ec2.amazonaws.com"}))
    return found


def _create_image(call: Call, lookup: Lookup) -> list[Need]:
    instance = call.params["InstanceId"]
    specs = _tag_specs(call.params.get("TagSpecifications"))
    return [Need("ec2:CreateImage", ec2_arn(call, "instance", instance),
                 _existing(call, lookup, "instance", instance)),
            Need("ec2:CreateImage", ec2_arn(call, "image"),
                 _request_tags(specs.get("image", []))),
            Need("ec2:CreateImage", ec2_arn(call, "snapshot"),
                 _request_tags(specs.get("snapshot", []))),
            *_tagging_on_create(call, specs)]


def _launch_template(action: str) -> Callable[[Call, Lookup], list[Need]]:
    def found(call: Call, lookup: Lookup) -> list[Need]:
        template_id = call.params.get("LaunchTemplateId", "*")
        return [Need(action, ec2_arn(call, "launch-template", template_id),
                     _existing(call, lookup, "launch-template", template_id))]
    return found


def _security_group(action: str) -> Callable[[Call, Lookup], list[Need]]:
    def found(call: Call, lookup: Lookup) -> list[Need]:
        group = call.params["GroupId"]
        return [Need(action, ec2_arn(call, "security-group", group),
                     _existing(call, lookup, "security-group", group))]
    return found


# ---- IAM, SSM, CloudWatch, STS ---------------------------------------------------------

def _with_tags(action: str, tag_action: str, tags_param: str = "Tags"
               ) -> Callable[[Call, Lookup], list[Need]]:
    """A create call that may tag what it creates: the tag action too, if it does."""
    def found(call: Call, lookup: Lookup) -> list[Need]:
        resource = resource_of(call)
        tags = call.params.get(tags_param) or []
        context = _request_tags(tags)
        return [Need(action, resource, context),
                *([Need(tag_action, resource, context)] if tags else [])]
    return found


def _add_role_to_profile(call: Call, lookup: Lookup) -> list[Need]:
    return [Need("iam:AddRoleToInstanceProfile", resource_of(call)),
            Need("iam:PassRole", f"arn:aws:iam::{call.account}:role/{call.params['RoleName']}",
                 {"iam:PassedToService": "ec2.amazonaws.com"})]


def _create_function(call: Call, lookup: Lookup) -> list[Need]:
    found = _with_tags("lambda:CreateFunction", "lambda:TagResource")(call, lookup)
    return [*found, Need("iam:PassRole", call.params["Role"],
                         {"iam:PassedToService": "lambda.amazonaws.com"})]


def _put_metric_data(call: Call, lookup: Lookup) -> list[Need]:
    return [Need("cloudwatch:PutMetricData", "*",
                 {"cloudwatch:namespace": call.params["Namespace"]})]


def _no_permission(call: Call, lookup: Lookup) -> list[Need]:
    return []


# ---- DynamoDB, EventBridge buses, Lambda event sources ---------------------------------

def _table(call: Call, name: str) -> str:
    return f"arn:aws:dynamodb:{call.region}:{call.account}:table/{name}"


def _per_table(action: str) -> Callable[[Call, Lookup], list[Need]]:
    """A batch call: ``action`` on each table it names (BatchGetItem, BatchWriteItem)."""
    return lambda call, lookup: [Need(action, _table(call, name))
                                 for name in call.params["RequestItems"]]


_TRANSACT_ACTIONS = {"Put": "dynamodb:PutItem", "Update": "dynamodb:UpdateItem",
                     "Delete": "dynamodb:DeleteItem",
                     "ConditionCheck": "dynamodb:ConditionCheckItem"}


def _transact_write(call: Call, lookup: Lookup) -> list[Need]:
    """Each item of a transaction needs its own single-item action on its table."""
    return [Need(_TRANSACT_ACTIONS[kind], _table(call, spec["TableName"]))
            for item in call.params["TransactItems"] for kind, spec in item.items()]


def _event_bus_arn(call: Call, name: str | None) -> str:
    name = name or "default"
    if name.startswith("arn:"):
        return name
    return f"arn:aws:events:{call.region}:{call.account}:event-bus/{name}"


def _event_bus(action: str, tag_action: str | None = None
               ) -> Callable[[Call, Lookup], list[Need]]:
    def found(call: Call, lookup: Lookup) -> list[Need]:
        bus = _event_bus_arn(call, call.params.get("Name"))
        tags = call.params.get("Tags") or []
        context = _request_tags(tags)
        return [Need(action, bus, context),
                *([Need(tag_action, bus, context)] if tag_action and tags else [])]
    return found


def _put_events(call: Call, lookup: Lookup) -> list[Need]:
    return [Need("events:PutEvents", _event_bus_arn(call, entry.get("EventBusName")))
            for entry in call.params["Entries"]]


def _event_source_mapping(action: str) -> Callable[[Call, Lookup], list[Need]]:
    """Lambda authorizes creating and listing event source mappings on no resource
    ("*"); the mapping's function is the ``lambda:FunctionArn`` condition key."""
    def found(call: Call, lookup: Lookup) -> list[Need]:
        function = call.params.get("FunctionName")
        context = {}
        if function:
            context["lambda:FunctionArn"] = function if function.startswith("arn:") else (
                f"arn:aws:lambda:{call.region}:{call.account}:function:{function}")
        return [Need(action, "*", context)]
    return found


def _mapping(action: str) -> Callable[[Call, Lookup], list[Need]]:
    """An existing mapping, with its function as the ``lambda:FunctionArn`` key."""
    def found(call: Call, lookup: Lookup) -> list[Need]:
        uuid = call.params["UUID"]
        function = lookup.function_of_mapping(uuid)
        return [Need(action, f"arn:aws:lambda:{call.region}:{call.account}:"
                             f"event-source-mapping:{uuid}",
                     {"lambda:FunctionArn": function} if function else {})]
    return found


# ---- API Gateway ----------------------------------------------------------------------

def _apigateway(call: Call) -> list[Need]:
    """API Gateway authorizes the HTTP verb on the path the call requests."""
    method, path = call.http
    if not method:
        raise UnmappedCallError(f"apigateway {call.operation}: its HTTP route is unknown")
    return [Need(f"apigateway:{method}", f"arn:aws:apigateway:{call.region}::{path}")]


_TABLE: dict[tuple[str, str], Callable[[Call, Lookup], list[Need]]] = {
    # S3: actions are not named after operations.
    ("s3", "GetObject"): _object("s3:GetObject"),
    ("s3", "HeadObject"): _object("s3:GetObject"),
    ("s3", "PutObject"): _object("s3:PutObject"),
    ("s3", "CreateMultipartUpload"): _object("s3:PutObject"),
    ("s3", "UploadPart"): _object("s3:PutObject"),
    ("s3", "CompleteMultipartUpload"): _object("s3:PutObject"),
    ("s3", "AbortMultipartUpload"): _object("s3:AbortMultipartUpload"),
    ("s3", "DeleteObject"): _delete_object,
    ("s3", "DeleteObjects"): _delete_objects,
    ("s3", "ListObjectsV2"): _list_bucket("s3:ListBucket"),
    ("s3", "ListObjects"): _list_bucket("s3:ListBucket"),
    ("s3", "ListObjectVersions"): _list_bucket("s3:ListBucketVersions"),
    ("s3", "ListBuckets"): lambda call, lookup: [Need("s3:ListAllMyBuckets", "*")],
    ("s3", "CreateBucket"): _bucket("s3:CreateBucket"),
    ("s3", "DeleteBucket"): _bucket("s3:DeleteBucket"),
    ("s3", "HeadBucket"): _bucket("s3:ListBucket"),
    ("s3", "GetBucketLocation"): _bucket("s3:GetBucketLocation"),
    ("s3", "PutPublicAccessBlock"): _bucket("s3:PutBucketPublicAccessBlock"),
    ("s3", "PutBucketEncryption"): _bucket("s3:PutEncryptionConfiguration"),
    ("s3", "PutBucketPolicy"): _bucket("s3:PutBucketPolicy"),
    ("s3", "GetBucketPolicy"): _bucket("s3:GetBucketPolicy"),
    ("s3", "PutBucketTagging"): _bucket("s3:PutBucketTagging"),
    ("s3", "GetBucketTagging"): _bucket("s3:GetBucketTagging"),
    ("s3", "PutBucketCors"): _bucket("s3:PutBucketCORS"),
    ("s3", "PutBucketLifecycleConfiguration"): _bucket("s3:PutLifecycleConfiguration"),
    ("s3", "PutBucketNotificationConfiguration"): _bucket("s3:PutBucketNotification"),
    ("s3", "GetBucketNotificationConfiguration"): _bucket("s3:GetBucketNotification"),
    # SQS: batch calls need their single call's action.
    ("sqs", "SendMessageBatch"): _queue("sqs:SendMessage"),
    ("sqs", "DeleteMessageBatch"): _queue("sqs:DeleteMessage"),
    ("sqs", "ChangeMessageVisibilityBatch"): _queue("sqs:ChangeMessageVisibility"),
    ("sqs", "CreateQueue"): _create_queue,
    ("sqs", "ListQueues"): lambda call, lookup: [
        Need("sqs:ListQueues", f"arn:aws:sqs:{call.region}:{call.account}:*")],
    # EC2: resource types, tags and the actions a launch needs.
    ("ec2", "StartInstances"): _on_each("ec2:StartInstances", "InstanceIds"),
    ("ec2", "StopInstances"): _on_each("ec2:StopInstances", "InstanceIds"),
    ("ec2", "TerminateInstances"): _on_each("ec2:TerminateInstances", "InstanceIds"),
    ("ec2", "RunInstances"): _run_instances,
    ("ec2", "CreateTags"): _create_tags,
    ("ec2", "CreateImage"): _create_image,
    ("ec2", "RegisterImage"): _create_tagged("ec2:RegisterImage", "image"),
    ("ec2", "DeregisterImage"): _on_each("ec2:DeregisterImage", "ImageId"),
    ("ec2", "DeleteSnapshot"): _on_each("ec2:DeleteSnapshot", "SnapshotId"),
    ("ec2", "CreateSecurityGroup"): _create_tagged("ec2:CreateSecurityGroup",
                                                   "security-group", also=("vpc",)),
    ("ec2", "RevokeSecurityGroupIngress"): _security_group("ec2:RevokeSecurityGroupIngress"),
    ("ec2", "DeleteSecurityGroup"): _security_group("ec2:DeleteSecurityGroup"),
    ("ec2", "CreateLaunchTemplate"): _create_tagged("ec2:CreateLaunchTemplate",
                                                    "launch-template"),
    ("ec2", "CreateLaunchTemplateVersion"): _launch_template(
        "ec2:CreateLaunchTemplateVersion"),
    ("ec2", "ModifyLaunchTemplate"): _launch_template("ec2:ModifyLaunchTemplate"),
    ("ec2", "DeleteLaunchTemplate"): _launch_template("ec2:DeleteLaunchTemplate"),
    # IAM: tagging on create, and handing a role to a service.
    ("iam", "CreateRole"): _with_tags("iam:CreateRole", "iam:TagRole"),
    ("iam", "CreateInstanceProfile"): _with_tags("iam:CreateInstanceProfile",
                                                 "iam:TagInstanceProfile"),
    ("iam", "AddRoleToInstanceProfile"): _add_role_to_profile,
    ("ssm", "PutParameter"): _with_tags("ssm:PutParameter", "ssm:AddTagsToResource"),
    ("logs", "CreateLogGroup"): _with_tags("logs:CreateLogGroup", "logs:TagResource", "tags"),
    ("logs", "ListTagsForResource"): lambda call, lookup: [
        Need("logs:ListTagsForResource", call.params["resourceArn"])],
    ("lambda", "CreateFunction"): _create_function,
    ("cloudwatch", "PutMetricData"): _put_metric_data,
    # DynamoDB: batches and transactions need their single-item actions, per table.
    ("dynamodb", "BatchGetItem"): _per_table("dynamodb:BatchGetItem"),
    ("dynamodb", "BatchWriteItem"): _per_table("dynamodb:BatchWriteItem"),
    ("dynamodb", "TransactWriteItems"): _transact_write,
    ("dynamodb", "CreateTable"): _with_tags("dynamodb:CreateTable", "dynamodb:TagResource"),
    # EventBridge: a custom bus is its own resource; PutEvents names the bus per entry.
    ("events", "CreateEventBus"): _event_bus("events:CreateEventBus", "events:TagResource"),
    ("events", "DescribeEventBus"): _event_bus("events:DescribeEventBus"),
    ("events", "DeleteEventBus"): _event_bus("events:DeleteEventBus"),
    ("events", "PutEvents"): _put_events,
    ("events", "ListRules"): lambda call, lookup: [Need("events:ListRules", "*")],
    ("events", "ListTagsForResource"): lambda call, lookup: [
        Need("events:ListTagsForResource", call.params["ResourceARN"])],
    # Lambda: event source mappings (chalice deploy's, for the bulk jobs' task queues).
    ("lambda", "CreateEventSourceMapping"): _event_source_mapping(
        "lambda:CreateEventSourceMapping"),
    ("lambda", "ListEventSourceMappings"): _event_source_mapping(
        "lambda:ListEventSourceMappings"),
    ("lambda", "GetEventSourceMapping"): _mapping("lambda:GetEventSourceMapping"),
    ("lambda", "UpdateEventSourceMapping"): _mapping("lambda:UpdateEventSourceMapping"),
    ("lambda", "DeleteEventSourceMapping"): _mapping("lambda:DeleteEventSourceMapping"),
    # AWS answers these for any authenticated caller.
    ("sts", "GetCallerIdentity"): _no_permission,
}
