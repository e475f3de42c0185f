"""A message that keeps failing lands in the dead-letter queue, is counted, and
``redrive`` sends it back unchanged after a fix."""

from skyclass.runtime.contracts import WorkMessage, image_id_for, job_input_key, new_job_id
from skyclass.runtime.queue import WorkQueue


def _message(bucket: str) -> WorkMessage:
    job_id = new_job_id()
    image_id = image_id_for(job_id, 0)
    return WorkMessage(bucket=bucket, key=job_input_key(job_id, image_id), job_id=job_id,
                       image_id=image_id, name="cat.jpg", size=10, etag="e")


def test_a_poison_message_is_dead_lettered_then_redriven(aws, stage, settings):
    r = stage.resources
    queue = WorkQueue(aws.sqs, r.queue_url, r.dlq_url)
    message = _message(r.input_bucket)
    queue.send([message])
    # GIVEN a worker that crashes on the message every time it receives it
    for _ in range(settings.max_receives):
        assert len(queue.receive(10, wait_seconds=0, visibility_timeout=0)) == 1
    # WHEN it would be received once more
    assert queue.receive(10, wait_seconds=0) == []
    # THEN it is in the dead-letter queue, and counted there
    assert queue.depths().dead_letter == 1
    # WHEN the operator redrives after a fix
    assert queue.redrive() == 1
    # THEN it is back in the work queue, unchanged, and the DLQ is empty
    back = queue.receive(10, wait_seconds=0)
    assert [WorkMessage.from_json(m.body) for m in back] == [message]
    assert queue.depths().dead_letter == 0


def test_redrive_respects_a_limit(aws, stage):
    r = stage.resources
    for _ in range(3):
        aws.sqs.send_message(QueueUrl=r.dlq_url, MessageBody=_message(r.input_bucket).to_json())
    queue = WorkQueue(aws.sqs, r.queue_url, r.dlq_url)
    assert queue.redrive(limit=2) == 2
    assert queue.depths().dead_letter == 1
