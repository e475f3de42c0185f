"""The embedded AWS: moto's server on one port, for every service skyclass calls (S3,
SQS, EC2, CloudWatch, IAM, STS, SSM, CloudWatch Logs; API Gateway and Lambda when
``chalice deploy`` is rehearsed).

Runs in the foreground until SIGINT or SIGTERM. Everything else reaches it through
``AWS_ENDPOINT_URL``; its state lives in memory, so each start is a fresh account.
Known emulator gaps are worked around by callers as ARCHITECTURE.md lists them
(lower-case S3 filter rule names, the ``s3:TestEvent`` message, S3 → Lambda through
the local bridge). Six gaps are closed here, by five patches, so that ``skyclass
deploy`` and the fleet can be rehearsed against the emulator unchanged: API Gateway's
import of the API Chalice writes, which moto refuses without a description and as
Swagger 2.0 (``ApiImportCompat``, two gaps); bucket policies that refuse plain HTTP
(``count_requests_as_tls``); instance profiles on multi-instance launches
(``profile_every_launched_instance``); the launch time of a restarted instance
(``start_sets_launch_time``); and tags for an image's snapshots at ``CreateImage``
(``tag_image_snapshots``). It counts the requests it serves (``RequestCounter``).
Costs that grew with a queue's depth are cut: SQS receives that rescanned the whole
queue for every message (``read_queue_attributes_once``), SQS sends that did the same
(``count_messages_only_when_asked``), receives that listed every visible message to
hand out ten and deletes that rebuilt the queue (``scan_queues_only_as_far_as_needed``);
and so is the lookup of the service a request is for, redone from the file system on
every request (``look_up_services_once``), and DynamoDB transactions that copied whole
tables (``snapshot_transaction_items``). Concurrent requests are made as safe as AWS
makes them: DynamoDB's item writes are atomic (``serialize_item_writes``), and an SQS
delete removes the one message it names, whatever other threads do to the queue.

On request (``--eventual-consistency SECONDS``, or ``SKYCLASS_EMULATOR_LAG``) it is as
slow to agree with itself as AWS is (``EventualConsistency``), so that bake, bootstrap,
deploy and teardown can be rehearsed against it.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import json
import logging
import os
import re
import signal
import socket
import sys
import threading
import time
import types
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import FrameType
from typing import Any

from skyclass.runtime.errors import SkyclassError

DEFAULT_PORT = 4566
# Seconds for which new things are not found and released snapshots stay in use.
LAG_VARIABLE = "SKYCLASS_EMULATOR_LAG"


class PortInUseError(SkyclassError):
    """The emulator's port is taken, most likely by another running stack."""

    code = "PortInUse"


def serve(port: int = DEFAULT_PORT, host: str = "127.0.0.1", lag: float = 0.0) -> None:
    """Serve the emulator on ``host:port`` until SIGINT or SIGTERM; with ``lag`` > 0,
    eventually consistent for that many seconds (``EventualConsistency``)."""
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    # Checked here because werkzeug answers a taken port with sys.exit(1).
    if not port_is_free(host, port):
        raise PortInUseError(f"port {port} on {host} is already in use; pick another with --port")
    count_requests_as_tls()
    profile_every_launched_instance()
    tag_image_snapshots()
    if lag > 0:
        EventualConsistency(lag).install()
    start_sets_launch_time()
    read_queue_attributes_once()
    count_messages_only_when_asked()
    scan_queues_only_as_far_as_needed()
    snapshot_transaction_items()
    serialize_item_writes()
    look_up_services_once()
    app = RequestCounter(ApiImportCompat(DomainDispatcherApplication(create_backend_app)))
    server = make_server(host, port, app, threaded=True, request_handler=MotoRequestHandler)
    # One line per request (the runner alone polls EC2 three times a second) would
    # bury anything worth reading in the emulator's log.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    print(f"AWS emulator (moto) listening on http://{host}:{port}"
          + (f", eventually consistent for {lag:g} s" if lag > 0 else ""), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


class ApiImportCompat:
    """WSGI middleware that lets moto import the API definition ``chalice deploy`` sends.

    moto 5's API Gateway import (``POST /restapis?mode=import``, and the
    ``PUT /restapis/{id}`` of a redeploy) has two gaps that AWS does not: it requires
    ``info.description`` (Chalice writes none) and it refuses Swagger 2.0 (what Chalice
    writes) in favour of OpenAPI 3. moto reads only ``paths``, their responses and the
    ``x-amazon-apigateway-integration`` blocks, which both versions spell alike, so this
    adds an empty description where it is missing and relabels a Swagger 2.0 document
    as OpenAPI 3.0. Every other request passes through untouched.
    """

    _PATH = re.compile(r"^/restapis(/[^/]+)?/?$")

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self._app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]
                 ) -> Iterable[bytes]:
        if self._is_api_import(environ):
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(length)
            body = patch_api_definition(body)
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
        return self._app(environ, start_response)

    def _is_api_import(self, environ: dict[str, Any]) -> bool:
        # The credential scope names the service; a path-style S3 request for a
        # bucket called "restapis" must pass through.
        return (environ.get("REQUEST_METHOD") in ("POST", "PUT")
                and "/apigateway/" in environ.get("HTTP_AUTHORIZATION", "")
                and bool(self._PATH.match(environ.get("PATH_INFO", ""))))


class RequestCounter:
    """WSGI middleware that counts the requests the emulator serves, by AWS service, and
    answers ``GET /_skyclass/requests`` with the counts so far (a path no AWS API has:
    no bucket name starts with ``_``). The benchmarks read it to report what each image
    costs the emulator."""

    PATH = "/_skyclass/requests"
    _SCOPE = re.compile(r"Credential=[^/]+/[^/]+/[^/]+/([^/]+)/")

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self._app = app
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]
                 ) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == self.PATH and environ.get("REQUEST_METHOD") == "GET":
            with self._lock:
                body = json.dumps({"total": sum(self._counts.values()),
                                   "by_service": dict(self._counts)}).encode()
            start_response("200 OK", [("Content-Type", "application/json"),
                                      ("Content-Length", str(len(body)))])
            return [body]
        # A presigned POST carries its credential in the form, not a header: S3's.
        scope = self._SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
        service = scope.group(1) if scope else "s3"
        with self._lock:
            self._counts[service] = self._counts.get(service, 0) + 1
        return self._app(environ, start_response)


def patch_api_definition(body: bytes) -> bytes:
    """The API definition with what moto's import needs (see ``ApiImportCompat``);
    anything that is not a JSON API definition comes back unchanged."""
    try:
        doc = json.loads(body)
    except ValueError:
        return body
    if not isinstance(doc, dict) or not isinstance(doc.get("info"), dict):
        return body
    doc["info"].setdefault("description", "")
    if "swagger" in doc:
        del doc["swagger"]
        doc["openapi"] = "3.0.1"
    return json.dumps(doc).encode()


def count_requests_as_tls() -> None:
    """Let requests to the emulator pass a bucket policy's TLS-only rule.

    A deployed stage's buckets deny requests without TLS (``aws:SecureTransport`` false).
    moto evaluates no ``Bool`` condition, so it applies such a Deny to every request,
    and the emulator only speaks plain HTTP on loopback anyway. It stands in for AWS's
    HTTPS endpoints, so its requests count as TLS: that Deny is left out when moto
    decides an object request. Every other statement is evaluated as moto does.
    """
    from moto.iam.access_control import IAMPolicy, PermissionResult
    from moto.s3.models import FakeBucket

    def get_permission(bucket: FakeBucket, action: str, resource: str) -> Any:
        if bucket.policy is None:
            return PermissionResult.NEUTRAL
        policy = json.loads(bucket.policy)
        statements = policy.get("Statement", [])
        if isinstance(statements, dict):
            statements = [statements]
        policy["Statement"] = [s for s in statements if not _denies_plain_http(s)]
        return IAMPolicy(json.dumps(policy)).is_action_permitted(action, resource)

    FakeBucket.get_permission = get_permission


def profile_every_launched_instance() -> None:
    """Give every instance of a ``RunInstances`` call its ``IamInstanceProfile``.

    moto associates the profile with the first instance of the launch only; AWS with
    each of them, and the worker pool is launched ``max_workers`` at a time.
    """
    from moto.ec2.responses.instances import InstanceResponse

    launch = InstanceResponse.run_instances

    def run_instances(response: InstanceResponse) -> Any:
        result = launch(response)
        arn = response._get_param("IamInstanceProfile.Arn")
        name = response._get_param("IamInstanceProfile.Name")
        if arn or name:
            for instance in result.result.instances[1:]:
                response.ec2_backend.associate_iam_instance_profile(
                    instance_id=instance.id, iam_instance_profile_name=name,
                    iam_instance_profile_arn=arn)
        return result

    InstanceResponse.run_instances = run_instances


def tag_image_snapshots(patch: Callable[[Any, str, Any], None] = setattr) -> None:
    """Apply ``CreateImage``'s tags for ``snapshot`` to the image's snapshot.

    AWS tags an image and its snapshots in the one call that creates them, so nothing is
    ever untagged; moto 5 raises NotImplementedError for snapshot tag specifications.
    """
    from moto.ec2.models import EC2Backend

    create = EC2Backend.create_image

    def create_image(backend: EC2Backend, instance_id: str, name: str, description: str,
                     tag_specifications: list[dict[str, Any]]) -> Any:
        for_snapshots = [s for s in tag_specifications if s["ResourceType"] == "snapshot"]
        others = [s for s in tag_specifications if s["ResourceType"] != "snapshot"]
        image = create(backend, instance_id, name, description, others)
        for spec in for_snapshots:
            backend.create_tags([image.ebs_snapshot.id],
                                {t["Key"]: t["Value"] for t in spec["Tags"]})
        return image

    patch(EC2Backend, "create_image", create_image)


class EventualConsistency:
    """The emulator as slow to agree with itself as AWS, for ``lag`` seconds:

    * EC2 refuses an instance profile younger than that at ``RunInstances``
      (``InvalidParameterValue``: Invalid IAM Instance Profile), as it does on AWS while
      IAM propagates;
    * a young image is not found: ``DescribeImages`` by id and ``RunInstances`` answer
      ``InvalidAMIID.NotFound``, listings leave it out;
    * tags cannot be set on a young image or instance (``Invalid…ID.NotFound``);
    * a deregistered image's snapshot stays ``InvalidSnapshot.InUse`` for that long.

    Each is a patch on moto's API layer (its models stay consistent); ``patch`` is
    ``setattr`` in the emulator and a test's ``monkeypatch.setattr`` in process, and
    ``clock`` may be a test's fake clock.
    """

    def __init__(self, lag: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.lag = lag
        self._clock = clock
        self._born: dict[str, float] = {}  # id (or profile name/ARN) -> when created
        self._in_use_until: dict[str, tuple[float, str]] = {}  # snapshot -> (until, image)
        self._lock = threading.Lock()

    def install(self, patch: Callable[[Any, str, Any], None] = setattr) -> None:
        self._remember_births(patch)
        self._late_instance_profiles_and_images_at_launch(patch)
        self._late_images(patch)
        self._late_tags(patch)
        self._snapshots_in_use_after_deregistration(patch)

    def young(self, resource: str) -> bool:
        with self._lock:
            born = self._born.get(resource)
        return born is not None and self._clock() - born < self.lag

    def _born_now(self, *resources: str) -> None:
        with self._lock:
            for resource in resources:
                self._born[resource] = self._clock()

    def _remember_births(self, patch: Callable[[Any, str, Any], None]) -> None:
        from moto.ec2.models import EC2Backend
        from moto.iam.models import IAMBackend

        create_profile = IAMBackend.create_instance_profile
        create_image = EC2Backend.create_image
        register_image = EC2Backend.register_image
        run_instances = EC2Backend.run_instances

        def create_instance_profile(backend: IAMBackend, *args: Any, **kwargs: Any) -> Any:
            profile = create_profile(backend, *args, **kwargs)
            self._born_now(profile.name, profile.arn)
            return profile

        def new_image(original: Callable[..., Any]) -> Callable[..., Any]:
            def wrapped(backend: EC2Backend, *args: Any, **kwargs: Any) -> Any:
                image = original(backend, *args, **kwargs)
                self._born_now(image.id)
                return image
            return wrapped

        def launch(backend: EC2Backend, *args: Any, **kwargs: Any) -> Any:
            reservation = run_instances(backend, *args, **kwargs)
            self._born_now(*(i.id for i in reservation.instances))
            return reservation

        patch(IAMBackend, "create_instance_profile", create_instance_profile)
        patch(EC2Backend, "create_image", new_image(create_image))
        patch(EC2Backend, "register_image", new_image(register_image))
        patch(EC2Backend, "run_instances", launch)

    def _late_instance_profiles_and_images_at_launch(
            self, patch: Callable[[Any, str, Any], None]) -> None:
        from moto.ec2.exceptions import EC2ClientError, InvalidAMIIdError
        from moto.ec2.responses.instances import InstanceResponse

        launch = InstanceResponse.run_instances

        def run_instances(response: InstanceResponse) -> Any:
            for kind in ("Arn", "Name"):
                profile = response._get_param(f"IamInstanceProfile.{kind}")
                if profile and self.young(profile):
                    raise EC2ClientError(
                        "InvalidParameterValue",
                        f"Value ({profile}) for parameter iamInstanceProfile.{kind.lower()} "
                        f"is invalid. Invalid IAM Instance Profile {kind.lower()}")
            image = response._get_param("ImageId")
            if image and self.young(image):
                raise InvalidAMIIdError(image)
            return launch(response)

        patch(InstanceResponse, "run_instances", run_instances)

    def _late_images(self, patch: Callable[[Any, str, Any], None]) -> None:
        from moto.ec2.exceptions import InvalidAMIIdError
        from moto.ec2.responses.amis import AmisResponse

        describe = AmisResponse.describe_images

        def describe_images(response: AmisResponse) -> Any:
            asked = response._get_param("ImageIds", [])
            young = [i for i in asked if self.young(i)]
            if young:
                raise InvalidAMIIdError(young)
            answer = describe(response)
            answer.result["Images"] = [i for i in answer.result["Images"]
                                       if not self.young(i.id)]
            return answer

        patch(AmisResponse, "describe_images", describe_images)

    def _late_tags(self, patch: Callable[[Any, str, Any], None]) -> None:
        from moto.ec2.exceptions import InvalidAMIIdError, InvalidInstanceIdError
        from moto.ec2.responses.tags import TagResponse

        tag = TagResponse.create_tags

        def create_tags(response: TagResponse) -> Any:
            for resource in response._get_param("Resources", []):
                if self.young(resource):
                    if resource.startswith("ami-"):
                        raise InvalidAMIIdError(resource)
                    raise InvalidInstanceIdError(resource)
            return tag(response)

        patch(TagResponse, "create_tags", create_tags)

    def _snapshots_in_use_after_deregistration(
            self, patch: Callable[[Any, str, Any], None]) -> None:
        from moto.ec2.exceptions import InvalidSnapshotInUse
        from moto.ec2.responses.amis import AmisResponse
        from moto.ec2.responses.elastic_block_store import ElasticBlockStore

        deregister = AmisResponse.deregister_image
        delete = ElasticBlockStore.delete_snapshot

        def deregister_image(response: AmisResponse) -> Any:
            image_id = response._get_param("ImageId")
            image = response.ec2_backend.amis.get(image_id)
            answer = deregister(response)
            if image is not None:
                with self._lock:
                    self._in_use_until[image.ebs_snapshot.id] = (
                        self._clock() + self.lag, image_id)
            return answer

        def delete_snapshot(response: ElasticBlockStore) -> Any:
            snapshot = response._get_param("SnapshotId")
            with self._lock:
                until, image_id = self._in_use_until.get(snapshot, (0.0, ""))
            if self._clock() < until:
                raise InvalidSnapshotInUse(snapshot, image_id)
            return delete(response)

        patch(AmisResponse, "deregister_image", deregister_image)
        patch(ElasticBlockStore, "delete_snapshot", delete_snapshot)


def _denies_plain_http(statement: dict[str, Any]) -> bool:
    condition = statement.get("Condition", {})
    return (statement.get("Effect") == "Deny"
            and condition == {"Bool": {"aws:SecureTransport": "false"}})


def start_sets_launch_time() -> None:
    """EC2 sets an instance's ``LaunchTime`` each time it starts; moto 5 keeps the first.
    The scaler's grace and boot time and ``GET /fleet``'s uptime count from it, so a
    start from stopped sets it, as on AWS."""
    from moto.core.utils import utcnow
    from moto.ec2.models.instances import Instance

    start = Instance.start

    def start_now(self: Instance) -> Any:
        previous = start(self)
        if previous.name != "running":
            self.launch_time = utcnow()
        return previous

    Instance.start = start_now


def read_queue_attributes_once() -> None:
    """Make moto's SQS receive cost O(backlog), not O(backlog²).

    moto builds a queue's whole attribute dict, which counts the visible, in-flight
    and delayed messages by scanning the queue three times, for every attribute asked
    for (three times over in ``GetQueueAttributes``) and, through its retention check,
    for every message a ``ReceiveMessage`` hands out. With a few hundred messages queued
    that made receives the emulator's largest cost, taking CPU from the worker it
    serves. Here ``GetQueueAttributes`` builds the dict once, and the retention check
    reads the one attribute it needs; answers are the same as moto's.
    """
    from moto.core.utils import unix_time
    from moto.sqs.exceptions import InvalidAttributeName
    from moto.sqs.models import Message, SQSBackend

    def get_queue_attributes(self: SQSBackend, queue_name: str,
                             attribute_names: list[str]) -> dict[str, Any]:
        queue = self.get_queue(queue_name)
        if not attribute_names:
            return {}
        valid = {"All", *queue.BASE_ATTRIBUTES, *queue.FIFO_ATTRIBUTES,
                 *queue.KMS_ATTRIBUTES}
        invalid = next((name for name in attribute_names if name not in valid), None)
        if invalid is not None:
            raise InvalidAttributeName(invalid)
        attributes = queue.attributes
        if "All" in attribute_names:
            return dict(attributes)
        return {name: attributes[name] for name in attribute_names
                if attributes.get(name) is not None}

    def retained(self: SQSBackend, queue_name: str, message: Message) -> bool:
        retention = int(self.get_queue(queue_name).message_retention_period)
        return retention + message.sent_timestamp / 1000 > unix_time()

    SQSBackend.get_queue_attributes = get_queue_attributes
    SQSBackend.is_message_valid_based_on_retention_period = retained


def count_messages_only_when_asked() -> None:
    """Make moto's SQS send cost O(1), not O(queue depth).

    moto reads one setting (content-based deduplication) for every message sent by
    building the queue's whole attribute dict, whose message counts scan the queue three
    times. With two thousand S3 events waiting for the bridge, each upload's notification
    then cost the emulator tens of milliseconds, and ingest fell ever further behind.
    Here a queue's attributes are a read-only mapping that works out each attribute
    when it is read; answers are the same as moto's.
    """
    from moto.core.utils import camelcase_to_underscores
    from moto.sqs.models import Queue

    class LazyAttributes(Mapping):
        def __init__(self, queue: Queue) -> None:
            self._queue = queue
            names = list(queue.BASE_ATTRIBUTES)
            if queue.fifo_queue:
                names += queue.FIFO_ATTRIBUTES
            if queue.kms_master_key_id:
                names += queue.KMS_ATTRIBUTES
            self._names = names

        def __getitem__(self, name: str) -> Any:
            if name not in self._names:
                raise KeyError(name)
            if name == "RedrivePolicy" and self._queue.redrive_policy:
                return json.dumps(self._queue.redrive_policy)
            value = getattr(self._queue, camelcase_to_underscores(name))
            return str(value).lower() if isinstance(value, bool) else value

        def __iter__(self) -> Iterator[str]:
            return iter(self._names)

        def __len__(self) -> int:
            return len(self._names)

    Queue.attributes = property(LazyAttributes)


def scan_queues_only_as_far_as_needed() -> None:
    """Make moto's SQS receive and delete cost what they hand out, not the queue's depth.

    moto lists every visible message of a queue (reading the clock twice for each) to
    hand out the first ten, and scans the whole queue twice, rebuilding it, for every
    message deleted. With a few thousand S3 events waiting for the bridge, or a few
    thousand images for a worker, each receive and delete took tens of milliseconds of
    the emulator, which every other request waited for. Here the visible messages are
    listed lazily, in the same order, against one reading of the clock, so a receive
    stops at the tenth; and a delete stops at the message it deletes (work is received
    from the front of the queue, so it is near the front). Answers are moto's.
    """
    from moto.core.utils import unix_time_millis
    from moto.sqs.exceptions import ReceiptHandleIsInvalid
    from moto.sqs.models import Queue

    class VisibleMessages:
        def __init__(self, queue: Queue) -> None:
            self._queue = queue

        def __iter__(self) -> Iterator[Any]:
            now = unix_time_millis()
            return (m for m in list(self._queue._messages)
                    if now > m.visible_at and not now < m.delayed_until)

        def __len__(self) -> int:
            return sum(1 for _ in self)

        def __bool__(self) -> bool:
            return any(True for _ in self)

    def delete_message(self: Queue, receipt_handle: str) -> None:
        if receipt_handle in self.deleted_messages:
            return  # deleted already: as moto, gracefully
        for message in self._messages:
            if message.had_receipt_handle(receipt_handle):
                # By the message itself, not its index: another thread's send or delete
                # may have moved it since (a removal by index took the wrong message).
                with contextlib.suppress(ValueError):
                    self._messages.remove(message)
                self.pending_messages.discard(message)
                self.deleted_messages.update(message.all_receipt_handles)
                return
        raise ReceiptHandleIsInvalid()

    Queue.messages = property(VisibleMessages)
    Queue.delete_message = delete_message


def snapshot_transaction_items(patch: Callable[[Any, str, Any], None] = setattr) -> None:
    """Make moto's DynamoDB transaction cost O(items it writes), not O(table).

    Before a ``TransactWriteItems`` moto deep-copies every table the transaction names,
    once for each of its items, to roll back to on failure. A bulk job's ledger holds an
    item per image, so with a few thousand images each worker's count of a batch cost the
    emulator seconds, and the whole stack stalled behind it. Here the copy is of the
    items the transaction names, and on failure exactly those are put back: the same
    all-or-nothing, as DynamoDB gives it.
    """
    import copy as real_copy

    from moto.dynamodb import models
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import Table

    class _TablesAsThey(types.ModuleType):
        """``copy`` for moto's module, minus the deep copy of whole tables."""

        def __getattr__(self, name: str) -> Any:
            return getattr(real_copy, name)

        @staticmethod
        def deepcopy(value: Any, memo: Any = None) -> Any:
            return value if isinstance(value, Table) else real_copy.deepcopy(value, memo)

    transact = DynamoDBBackend.transact_write_items

    def transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]
                             ) -> None:
        saved = []
        for entry in transact_items:
            _, op = next(iter(entry.items()))
            table = self.tables.get(op.get("TableName"))
            if table is None:
                continue
            attrs = op.get("Item") or op.get("Key") or {}
            key = {table.hash_key_attr: attrs.get(table.hash_key_attr)}
            if table.range_key_attr is not None:
                key[table.range_key_attr] = attrs.get(table.range_key_attr)
            if None in key.values():
                continue
            current = self.get_item(table.name, key)
            saved.append((table.name, key, current.to_json()["Attributes"] if current else None))
        try:
            return transact(self, transact_items)
        except Exception:
            for table_name, key, attributes in reversed(saved):
                if attributes is None:
                    if self.get_item(table_name, key) is not None:
                        self.delete_item(table_name, key)
                else:
                    self.put_item(table_name, attributes)
            raise

    patch(models, "copy", _TablesAsThey("copy"))
    patch(DynamoDBBackend, "transact_write_items", transact_write_items)


def serialize_item_writes(patch: Callable[[Any, str, Any], None] = setattr) -> None:
    """Make the emulator's DynamoDB item writes atomic, as DynamoDB's are.

    moto's server answers requests on many threads, and its ``UpdateItem`` reads an
    item, changes it and stores it back with no lock: two updates of one item at once
    (a lister moving a job's cursor while a worker adds to the job's ``done``) can lose
    one of them, which DynamoDB never does. Here item writes (puts, updates, deletes,
    transactions) take one lock, so each happens whole.
    """
    from moto.dynamodb.models import DynamoDBBackend

    lock = threading.RLock()

    def locked(method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def write(*args: Any, **kwargs: Any) -> Any:
            with lock:
                return method(*args, **kwargs)
        return write

    for name in ("put_item", "update_item", "delete_item", "transact_write_items"):
        patch(DynamoDBBackend, name, locked(getattr(DynamoDBBackend, name)))


def look_up_services_once() -> None:
    """Work out once, not on every request, which moto service a host name means.

    For each request moto lists its own package directory (some 150 ``listdir`` and
    ``isdir`` calls) and then tries every service's URL patterns on the host: 15% of
    the emulator's CPU while a worker drains a backlog. Both depend only on the
    installed moto and the host name, so the list is read once and each host's answer
    kept.
    """
    from moto import backends
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    modules = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: modules
    DomainDispatcherApplication.get_backend_for_host = functools.lru_cache(maxsize=1024)(
        DomainDispatcherApplication.get_backend_for_host)


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the embedded AWS emulator (moto).")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--eventual-consistency", type=float, metavar="SECONDS",
                        default=float(os.environ.get(LAG_VARIABLE) or 0),
                        help="new instance profiles, images and tags are not found, and "
                             "released snapshots stay in use, for this long (a rehearsal "
                             f"of AWS's eventual consistency; env {LAG_VARIABLE})")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    try:
        serve(args.port, args.host, lag=args.eventual_consistency)
    except PortInUseError as exc:
        print(exc, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
