"""One home for every name a stage gives its AWS resources, its tags and the filters that
find them (ARCHITECTURE.md, "Resource names"): ``skyclass-{stage}-…`` and
``skyclass:stage={stage}``.

Provisioning creates resources under these names, the runtime finds them by them, and
teardown iterates ``StageNames`` to know what to delete, so no other module spells a
resource name or a tag. Explicit settings (``SKYCLASS_INPUT_BUCKET``…) still win over the
derived names (``StageResources.resolve``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from skyclass.runtime import constants as c
from skyclass.runtime.aws import AwsClients
from skyclass.runtime.settings import Settings

PREFIX = "skyclass"
APP_NAME = PREFIX  # Chalice's app_name (.chalice/config.json)

# Values of the ``skyclass:role`` tag.
ROLE_WORKER = c.ROLE_WORKER
ROLE_WORKER_AMI = "worker-ami"
ROLE_BUILDER = "ami-builder"

# Chalice's names for the app's Lambda functions: the API handler and the blueprints'
# handlers (chalice_app/events.py, chalice_app/scaling.py).
API_FUNCTION = "api_handler"
EVENTS_FUNCTION = "on_s3_event"
SCALE_FUNCTION = "scale"
# Bulk jobs (chalice_app/tasks.py): the lister and the finisher, fed by their task queues.
LIST_FUNCTION = "on_list_task"
FINISH_FUNCTION = "on_finish_task"
LAMBDA_FUNCTIONS = (API_FUNCTION, EVENTS_FUNCTION, SCALE_FUNCTION, LIST_FUNCTION,
                    FINISH_FUNCTION)

# Instance states in which a pool member still exists (terminated ones are history).
LIVE_INSTANCE_STATES = ("pending", "running", "stopping", "stopped")


# ---- names -------------------------------------------------------------------------

def bucket_name(stage: str, kind: str, account_id: str) -> str:
    """``kind``: ``input`` or ``output``."""
    return f"{PREFIX}-{stage}-{kind}-{account_id}"


def queue_name(stage: str) -> str:
    return f"{PREFIX}-{stage}-work"


def dlq_name(stage: str) -> str:
    return f"{PREFIX}-{stage}-work-dlq"


def s3_events_queue_name(stage: str) -> str:
    """The queue the input bucket's notifications go to in local mode (the bridge reads
    it; on AWS S3 invokes the Lambda directly)."""
    return f"{PREFIX}-{stage}-s3-events"


def ingest_failures_queue_name(stage: str) -> str:
    """Where S3-event invocations that failed every try go (the S3-event Lambda's
    on-failure destination; locally the bridge sends the same records), until the
    scaling tick retries them or fails their images (skyclass.runtime.ingest_failures)."""
    return f"{PREFIX}-{stage}-ingest-failures"


def queue_url_beside(queue_url: str, name: str) -> str:
    """The URL of queue ``name`` in the same account and region as ``queue_url``."""
    return f"{queue_url.rstrip('/').rsplit('/', 1)[0]}/{name}"


def worker_ami_name(stage: str) -> str:
    """Baked images are named ``{this}-{timestamp}``; a local stand-in is named this."""
    return f"{PREFIX}-{stage}-worker"


def builder_name(stage: str) -> str:
    return f"{PREFIX}-{stage}-ami-builder"


def worker_instance_name(stage: str) -> str:
    return f"{PREFIX}-{stage}-worker"


def worker_role_name(stage: str) -> str:
    """The worker role's and instance profile's name (one name for both)."""
    return f"{PREFIX}-{stage}-worker"


def security_group_name(stage: str) -> str:
    return f"{PREFIX}-{stage}-worker"


def launch_template_name(stage: str) -> str:
    return f"{PREFIX}-{stage}-worker"


def api_key_parameter_name(stage: str) -> str:
    """The SSM SecureString that holds a deployed stage's API key."""
    return f"/{PREFIX}/{stage}/api-key"


# ---- bulk jobs: the job store, the task queues, the event bus, the callback secret ----

def jobs_table_name(stage: str) -> str:
    """The DynamoDB table of jobs and their per-image ledger."""
    return f"{PREFIX}-{stage}-jobs"


def list_queue_name(stage: str) -> str:
    """Listing tasks of source jobs (the lister Lambda's event source)."""
    return f"{PREFIX}-{stage}-list"


def finish_queue_name(stage: str) -> str:
    """Completion tasks: export, event, callback (the finisher Lambda's event source)."""
    return f"{PREFIX}-{stage}-finish"


def tasks_dlq_name(stage: str) -> str:
    """Where listing and completion tasks go after their last failed try."""
    return f"{PREFIX}-{stage}-tasks-dlq"


def event_bus_name(stage: str) -> str:
    """The stage's EventBridge bus, where ``skyclass Job Completed`` events go."""
    return f"{PREFIX}-{stage}"


def callback_secret_parameter_name(stage: str) -> str:
    """The SSM SecureString whose value signs job callbacks (HMAC-SHA256)."""
    return f"/{PREFIX}/{stage}/callback-secret"


def lambda_function_name(stage: str, function: str) -> str:
    """The deployed name Chalice gives a function (the API handler's is the app's)."""
    if function == API_FUNCTION:
        return f"{APP_NAME}-{stage}"
    return f"{APP_NAME}-{stage}-{function}"


def lambda_log_group(stage: str, function: str) -> str:
    return f"/aws/lambda/{lambda_function_name(stage, function)}"


def lambda_role_name(stage: str, function: str) -> str:
    """The role Chalice creates for a function with its own policy file."""
    return f"{APP_NAME}-{stage}-{function}"


def schedule_rule_name(stage: str) -> str:
    """The EventBridge rule Chalice creates for the scaling Lambda's schedule."""
    return f"{APP_NAME}-{stage}-{SCALE_FUNCTION}-event"


def worker_log_group(stage: str) -> str:
    """The workers' log group: one stream per instance, named by its instance id."""
    return f"/{PREFIX}/{stage}/workers"


def queue_name_of(queue_url: str) -> str:
    return queue_url.rstrip("/").rsplit("/", 1)[-1]


# ---- tags and filters ---------------------------------------------------------------

def stage_tags(stage: str, **extra: str) -> dict[str, str]:
    return {c.TAG_STAGE: stage, **extra}


def worker_tags(stage: str) -> dict[str, str]:
    return stage_tags(stage, **{c.TAG_ROLE: ROLE_WORKER})


def tag_list(tags: dict[str, str]) -> list[dict[str, str]]:
    """Tags as EC2, S3 and IAM take them: ``[{"Key", "Value"}, …]``."""
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def is_tagged(tags: list[dict[str, str]], stage: str) -> bool:
    """Whether a resource's tag list carries ``skyclass:stage={stage}``."""
    return {"Key": c.TAG_STAGE, "Value": stage} in tags


def stage_filter(stage: str) -> dict[str, Any]:
    return {"Name": f"tag:{c.TAG_STAGE}", "Values": [stage]}


def pool_filters(stage: str) -> list[dict[str, Any]]:
    """DescribeInstances filters for the stage's worker pool."""
    return [
        {"Name": f"tag:{key}", "Values": [value]} for key, value in worker_tags(stage).items()
    ] + [{"Name": "instance-state-name", "Values": list(LIVE_INSTANCE_STATES)}]


# ---- a stage's names, together -----------------------------------------------------

@dataclass(frozen=True)
class StageNames:
    """Every name a stage's resources carry, derived from the stage and the account;
    what teardown iterates (explicit bucket settings are passed in as overrides)."""

    stage: str
    account: str
    input_bucket: str
    output_bucket: str

    @classmethod
    def of(cls, stage: str, account: str, input_bucket: str | None = None,
           output_bucket: str | None = None) -> StageNames:
        return cls(stage, account,
                   input_bucket or bucket_name(stage, "input", account),
                   output_bucket or bucket_name(stage, "output", account))

    @property
    def buckets(self) -> tuple[str, str]:
        return (self.input_bucket, self.output_bucket)

    @property
    def queues(self) -> tuple[str, ...]:
        return (queue_name(self.stage), dlq_name(self.stage),
                s3_events_queue_name(self.stage), ingest_failures_queue_name(self.stage),
                list_queue_name(self.stage),
                finish_queue_name(self.stage), tasks_dlq_name(self.stage))

    @property
    def jobs_table(self) -> str:
        return jobs_table_name(self.stage)

    @property
    def event_bus(self) -> str:
        return event_bus_name(self.stage)

    @property
    def callback_secret_parameter(self) -> str:
        return callback_secret_parameter_name(self.stage)

    @property
    def worker_role(self) -> str:
        return worker_role_name(self.stage)

    @property
    def security_group(self) -> str:
        return security_group_name(self.stage)

    @property
    def launch_template(self) -> str:
        return launch_template_name(self.stage)

    @property
    def api_key_parameter(self) -> str:
        return api_key_parameter_name(self.stage)

    @property
    def log_groups(self) -> tuple[str, ...]:
        return (*(lambda_log_group(self.stage, f) for f in LAMBDA_FUNCTIONS),
                worker_log_group(self.stage))


@dataclass(frozen=True)
class StageResources:
    """The names of the resources a running component uses."""

    stage: str
    input_bucket: str
    output_bucket: str
    queue_url: str
    dlq_url: str
    # Buckets the stage classifies in place (SKYCLASS_SOURCE_BUCKETS): bulk jobs read
    # them, and IAM grants read-only access to exactly these.
    source_buckets: tuple[str, ...] = ()

    @property
    def jobs_table(self) -> str:
        return jobs_table_name(self.stage)

    @property
    def event_bus(self) -> str:
        return event_bus_name(self.stage)

    @classmethod
    def resolve(cls, settings: Settings, aws: AwsClients) -> StageResources:
        """Names from settings where given; otherwise derived (one STS call, and an SQS
        lookup per queue). Call once per process and keep the answer."""
        account_id = None
        if not (settings.input_bucket and settings.output_bucket):
            account_id = aws.sts.get_caller_identity()["Account"]
        return cls(
            stage=settings.stage,
            input_bucket=settings.input_bucket
            or bucket_name(settings.stage, "input", account_id),
            output_bucket=settings.output_bucket
            or bucket_name(settings.stage, "output", account_id),
            queue_url=settings.queue_url
            or aws.sqs.get_queue_url(QueueName=queue_name(settings.stage))["QueueUrl"],
            dlq_url=settings.dlq_url
            or aws.sqs.get_queue_url(QueueName=dlq_name(settings.stage))["QueueUrl"],
            source_buckets=settings.source_bucket_names,
        )
