"""The embedded AWS as its own process: answers boto3, stops on SIGTERM."""

from __future__ import annotations

import socket

import pytest
from botocore.exceptions import ClientError

from skyclass.operations.local.emulator import (
    count_messages_only_when_asked,
    look_up_services_once,
    main,
    read_queue_attributes_once,
    scan_queues_only_as_far_as_needed,
)
from tests.support.processes import emulator_process


def test_emulator_serves_aws_until_sigterm():
    # GIVEN the emulator started as `python -m skyclass.operations.local.emulator`
    with emulator_process() as emulator:
        # WHEN a client creates a bucket through it
        s3 = emulator.client("s3")
        s3.create_bucket(Bucket="hello")
        # THEN the bucket is there
        assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["hello"]
    # AND SIGTERM stops it cleanly
    assert emulator.process.returncode == 0


def test_emulator_refuses_a_taken_port(capsys):
    # GIVEN a port something else listens on
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # WHEN the emulator is asked to use it
        code = main(["--port", str(port)])
    # THEN it says so and exits with an error
    assert code == 2
    assert f"port {port}" in capsys.readouterr().err


@pytest.fixture
def lean_queue_reads(monkeypatch):
    """moto's SQS with the emulator's ``read_queue_attributes_once``, undone afterwards."""
    from moto.sqs.models import SQSBackend

    for name in ("get_queue_attributes", "is_message_valid_based_on_retention_period"):
        monkeypatch.setattr(SQSBackend, name, getattr(SQSBackend, name))
    read_queue_attributes_once()


def test_queue_attribute_reads_answer_as_moto_does(aws, lean_queue_reads):
    # GIVEN a queue with two messages waiting and one in flight
    sqs = aws.sqs
    url = sqs.create_queue(QueueName="q", Attributes={"VisibilityTimeout": "30"})["QueueUrl"]
    for body in ("a", "b", "c"):
        sqs.send_message(QueueUrl=url, MessageBody=body)
    sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1)
    # WHEN counts, one setting and everything are asked for
    counts = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    everything = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    # THEN the answers are moto's
    assert counts == {"ApproximateNumberOfMessages": "2",
                      "ApproximateNumberOfMessagesNotVisible": "1"}
    assert everything["VisibilityTimeout"] == "30"
    assert everything["ApproximateNumberOfMessages"] == "2"
    # AND an unknown attribute is still refused
    with pytest.raises(ClientError, match="InvalidAttributeName"):
        sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Nonsense"])


def test_receive_does_not_rescan_the_queue_per_message(aws, lean_queue_reads, monkeypatch):
    from moto.sqs.models import Queue

    # GIVEN a backlog of 200 messages
    sqs = aws.sqs
    url = sqs.create_queue(QueueName="backlog")["QueueUrl"]
    for start in range(0, 200, 10):
        sqs.send_message_batch(QueueUrl=url, Entries=[
            {"Id": str(i), "MessageBody": str(start + i)} for i in range(10)])
    scans = []
    attributes = Queue.attributes
    monkeypatch.setattr(Queue, "attributes", property(
        lambda queue: scans.append(1) or attributes.fget(queue)))
    # WHEN a worker receives ten of them
    received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    # THEN it gets ten without the whole queue being counted once per message
    assert len(received) == 10
    assert scans == []


@pytest.fixture
def lazy_queue_attributes(monkeypatch):
    """moto's SQS with the emulator's ``count_messages_only_when_asked``, undone after."""
    from moto.sqs.models import Queue

    monkeypatch.setattr(Queue, "attributes", Queue.attributes)
    count_messages_only_when_asked()


def test_sending_does_not_count_the_queue(aws, lean_queue_reads, lazy_queue_attributes,
                                          monkeypatch):
    from moto.sqs.models import Queue

    # GIVEN a queue with a backlog, and a count of every scan of its messages
    sqs = aws.sqs
    url = sqs.create_queue(QueueName="events", Attributes={"DelaySeconds": "0"})["QueueUrl"]
    for start in range(0, 100, 10):
        sqs.send_message_batch(QueueUrl=url, Entries=[
            {"Id": str(i), "MessageBody": str(start + i)} for i in range(10)])
    scans = []
    visible = Queue.messages
    monkeypatch.setattr(Queue, "messages", property(
        lambda queue: scans.append(1) or visible.fget(queue)))
    # WHEN ten more are sent
    sqs.send_message_batch(QueueUrl=url, Entries=[
        {"Id": str(i), "MessageBody": "more"} for i in range(10)])
    # THEN the queue was not scanned, and its attributes still answer as moto's
    assert scans == []
    everything = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert everything["ApproximateNumberOfMessages"] == "110"
    assert everything["DelaySeconds"] == "0" and "RedrivePolicy" not in everything
    fifo = sqs.create_queue(QueueName="f.fifo", Attributes={
        "FifoQueue": "true", "ContentBasedDeduplication": "true"})["QueueUrl"]
    sqs.send_message(QueueUrl=fifo, MessageBody="x", MessageGroupId="g")
    sqs.send_message(QueueUrl=fifo, MessageBody="x", MessageGroupId="g")
    assert sqs.get_queue_attributes(QueueUrl=fifo, AttributeNames=["All"])["Attributes"][
        "ApproximateNumberOfMessages"] == "1"  # deduplicated by content, as moto does


@pytest.fixture
def short_queue_scans(monkeypatch):
    """moto's SQS with the emulator's ``scan_queues_only_as_far_as_needed``, undone after."""
    from moto.sqs.models import Queue

    for name in ("messages", "delete_message"):
        monkeypatch.setattr(Queue, name, getattr(Queue, name))
    scan_queues_only_as_far_as_needed()


def test_receive_and_delete_answer_as_moto_does_without_scanning_the_queue(
        aws, lean_queue_reads, short_queue_scans, monkeypatch):
    from moto.sqs.models import Message

    # GIVEN 300 messages, the last one delayed
    sqs = aws.sqs
    url = sqs.create_queue(QueueName="work", Attributes={"VisibilityTimeout": "60"})[
        "QueueUrl"]
    for start in range(0, 299, 10):
        sqs.send_message_batch(QueueUrl=url, Entries=[
            {"Id": str(i), "MessageBody": str(start + i)} for i in range(min(10, 299 - start))])
    sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=600)
    looked_at = []
    visible_at = Message.visible
    monkeypatch.setattr(Message, "visible", property(
        lambda m: looked_at.append(1) or visible_at.fget(m)))
    # WHEN a worker receives ten, and ten more
    first = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    second = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    # THEN it gets them in order, the first ten in flight skipped, without a full scan
    assert [m["Body"] for m in first + second] == [str(n) for n in range(20)]
    assert len(looked_at) < 100
    # WHEN it deletes the first ten, once and then again, and a stale handle is used
    entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(first)]
    assert len(sqs.delete_message_batch(QueueUrl=url, Entries=entries)["Successful"]) == 10
    assert len(sqs.delete_message_batch(QueueUrl=url, Entries=entries)["Successful"]) == 10
    with pytest.raises(ClientError, match="ReceiptHandleIsInvalid"):
        sqs.delete_message(QueueUrl=url, ReceiptHandle="not-a-handle")
    # THEN the counts are moto's: ten gone, ten in flight, one delayed
    counts = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert (counts["ApproximateNumberOfMessages"],
            counts["ApproximateNumberOfMessagesNotVisible"],
            counts["ApproximateNumberOfMessagesDelayed"]) == ("279", "10", "1")


def test_receive_still_drops_messages_past_their_retention(aws, lean_queue_reads):
    from moto.sqs.models import sqs_backends

    # GIVEN a message older than the queue's retention period
    sqs = aws.sqs
    url = sqs.create_queue(QueueName="old", Attributes={"MessageRetentionPeriod": "60"})[
        "QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="stale")
    queue = sqs_backends["123456789012"]["us-east-1"].queues["old"]
    queue._messages[0].sent_timestamp -= 120_000
    # WHEN it is received THEN it is not handed out
    assert "Messages" not in sqs.receive_message(QueueUrl=url)


def test_service_lookups_answer_as_moto_does_without_listing_files(monkeypatch):
    import os

    from moto import backends
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    monkeypatch.setattr(backends, "list_of_moto_modules", backends.list_of_moto_modules)
    monkeypatch.setattr(DomainDispatcherApplication, "get_backend_for_host",
                        DomainDispatcherApplication.get_backend_for_host)
    hosts = ["s3", "sqs", "s3.amazonaws.com", "sqs.us-east-1.amazonaws.com",
             "ec2.us-east-1.amazonaws.com", "127.0.0.1:4566", "localhost"]
    # GIVEN moto's own answers for some hosts
    expected = [DomainDispatcherApplication(create_backend_app).get_backend_for_host(h)
                for h in hosts]
    # WHEN the emulator's lookups are in place
    look_up_services_once()
    listed = []
    monkeypatch.setattr(os, "listdir", lambda path: listed.append(path) or [])
    app = DomainDispatcherApplication(create_backend_app)
    # THEN they give the same answers, twice, without reading moto's directory
    assert [app.get_backend_for_host(h) for h in hosts] == expected
    assert [app.get_backend_for_host(h) for h in hosts] == expected
    assert listed == []
