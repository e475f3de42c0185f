"""The stage's AWS resource names: explicit settings first, else derived from
ARCHITECTURE.md's naming rule (``skyclass-{stage}-input-{account_id}`` and so on)."""

from __future__ import annotations

from dataclasses import dataclass

from skyclass import constants as c
from skyclass.aws import AwsClients
from skyclass.settings import Settings


def bucket_name(stage: str, kind: str, account_id: str) -> str:
    return f"skyclass-{stage}-{kind}-{account_id}"


def queue_name(stage: str) -> str:
    return f"skyclass-{stage}-work"


def dlq_name(stage: str) -> str:
    return f"skyclass-{stage}-work-dlq"


def stage_tags(stage: str, **extra: str) -> dict[str, str]:
    return {c.TAG_STAGE: stage, **extra}


def worker_tags(stage: str) -> dict[str, str]:
    return stage_tags(stage, **{c.TAG_ROLE: c.ROLE_WORKER})


@dataclass(frozen=True)
class StageResources:
    stage: str
    input_bucket: str
    output_bucket: str
    queue_url: str
    dlq_url: str

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
        )
