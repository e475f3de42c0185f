"""A stage's SQS queues are made one way, whichever part of provisioning needs one:
created with their attributes and tags, or found and brought to those attributes."""

from __future__ import annotations

from botocore.exceptions import ClientError

from skyclass.runtime.aws import AwsClients


def ensure_queue(
    aws: AwsClients, name: str, attributes: dict[str, str], tags: dict[str, str]
) -> str:
    sqs = aws.sqs
    try:
        url = sqs.create_queue(QueueName=name, Attributes=attributes, tags=tags)["QueueUrl"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in ("QueueAlreadyExists", "QueueNameExists"):
            raise
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        if attributes:
            sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)
    return url


def queue_arn(aws: AwsClients, url: str) -> str:
    return aws.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
