"""Settling a batch: each outcome decides what happens to its message, and a message is
deleted only once its result is stored. Against an in-memory queue and store."""

from __future__ import annotations

from ec2_worker.batch import Item
from ec2_worker.outcome import Answered, Released, Retry, Tally, Unanswerable
from ec2_worker.settle import Settler
from skyclass.runtime.contracts import FAILED, WorkMessage, failed_result
from skyclass.runtime.queue import Received


class FakeQueue:
    def __init__(self) -> None:
        self.deleted: list[str] = []
        self.visibility: dict[str, int] = {}

    def delete(self, received) -> None:
        self.deleted += [r.message_id for r in received]

    def change_visibility(self, received, timeout: int) -> None:
        self.visibility.update((r.message_id, timeout) for r in received)


class FakeStore:
    """Results by key; keys in ``refuse`` fail as S3 would when the bucket is gone."""

    def __init__(self, refuse: set[str] = frozenset()) -> None:
        self.documents: dict[str, dict] = {}
        self.refuse = refuse

    def put(self, key: str, document: dict) -> None:
        if key in self.refuse:
            raise OSError("NoSuchBucket")
        self.documents[key] = document


def message(name: str) -> WorkMessage:
    return WorkMessage(bucket="in", key=f"incoming/{name}", job_id=None, image_id=name,
                       name=name, size=1, etag="")


def item(name: str, outcome) -> Item:
    return Item(Received(name, message(name).to_json(), f"handle-{name}", 1), message(name),
                outcome=outcome)


def answer(name: str) -> Answered:
    return Answered(failed_result(message(name), "not an image", model="m", worker="w"))


def test_each_outcome_settles_its_message_its_own_way():
    # GIVEN a batch with one message ending each way
    items = [item("a.jpg", answer("a.jpg")), item("b.jpg", Retry("S3 trouble", 20)),
             item("c.jpg", Released()), item("d.jpg", Unanswerable("not JSON"))]
    queue, store = FakeQueue(), FakeStore()

    # WHEN it is settled
    tally = Settler(queue, store).settle(items)

    # THEN the answer is stored and its message deleted; the retry is hidden for its
    # back-off, the released one visible at once, the unanswerable one left alone
    assert store.documents["results/incoming/a.jpg.json"]["status"] == FAILED
    assert queue.deleted == ["a.jpg"]
    assert queue.visibility == {"b.jpg": 20, "c.jpg": 0}
    assert tally == Tally(failed=1, retried=1, released=1, unanswerable=1)


def test_an_answer_that_cannot_be_stored_is_retried_not_deleted():
    # GIVEN two answers, one of which the output bucket refuses
    items = [item("a.jpg", answer("a.jpg")), item("b.jpg", answer("b.jpg"))]
    queue, store = FakeQueue(), FakeStore(refuse={"results/incoming/b.jpg.json"})

    # WHEN the batch is settled
    tally = Settler(queue, store).settle(items)

    # THEN only the stored one's message is deleted; the other comes back after a back-off
    assert queue.deleted == ["a.jpg"]
    assert queue.visibility == {"b.jpg": 5}
    assert isinstance(items[1].outcome, Retry)
    assert (tally.answered, tally.errors) == (1, 2)
