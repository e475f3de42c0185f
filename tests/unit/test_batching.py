"""Adaptive batches: what one receive brings when the queue is shallow, full batches under
load. Against an in-memory queue with SQS's receive limits (10 per call)."""

from __future__ import annotations

from ec2_worker.batch import receive_batch
from skyclass.runtime.queue import Received


class FakeQueue:
    """Visible messages in a list; ``receive`` gives at most 10, like SQS."""

    def __init__(self, count: int) -> None:
        self.visible = [Received(str(i), "{}", f"handle-{i}", 1) for i in range(count)]
        self.waits: list[int] = []

    def receive(self, max_messages: int, wait_seconds: int) -> list[Received]:
        self.waits.append(wait_seconds)
        taken = self.visible[: min(max_messages, 10)]
        del self.visible[: len(taken)]
        return taken


def test_a_shallow_queue_gives_a_small_batch_at_once():
    # GIVEN three queued messages and a batch size of 32
    queue = FakeQueue(3)
    # WHEN a batch is received
    batch = receive_batch(queue.receive, batch_size=32, wait_seconds=5)
    # THEN the batch is the three, without waiting for more than the first long poll
    assert len(batch) == 3
    assert queue.waits == [5, 0]


def test_a_deep_queue_gives_full_batches():
    # GIVEN a backlog of 100 messages
    queue = FakeQueue(100)
    # WHEN batches of up to 32 are received
    sizes = [len(receive_batch(queue.receive, batch_size=32, wait_seconds=5)) for _ in range(4)]
    # THEN they are full until the backlog runs out
    assert sizes == [32, 32, 32, 4]


def test_an_empty_queue_gives_no_batch_after_one_long_poll():
    queue = FakeQueue(0)
    assert receive_batch(queue.receive, batch_size=32, wait_seconds=5) == []
    assert queue.waits == [5]


def test_a_batch_never_holds_more_than_the_batch_size():
    queue = FakeQueue(30)
    assert len(receive_batch(queue.receive, batch_size=4, wait_seconds=0)) == 4
    assert len(queue.visible) == 26
