"""How each received message ends: one explicit outcome per image.

An image has no outcome while it is on its way; the step that decides its fate gives it
one (``steps.py``), and settling acts on it (``settle.py``):

- ``Answered(result)``: a ``done`` result, or a ``failed`` one with a reason a person
  understands. The result is stored at its key, then the message deleted. An answer
  that cannot be stored becomes a ``Retry``: a message is never deleted before its
  result is in the output bucket.
- ``Retry(reason, delay)``: a transient failure (S3, SQS, the model). The message is
  hidden for ``delay`` seconds and then delivered again.
- ``Released``: received, but not to be classified by this worker (it is stopping). The
  message is visible again at once, for another worker.
- ``Unanswerable(reason)``: a body that is no work message and names no input key, so
  there is no result key to write to. The message is left to reach the dead-letter queue.
- ``Dropped(reason)``: a message its job no longer wants answered (the job was
  cancelled, or the image is answered already: ec2_worker/tracking.py). It is deleted
  without inference and without writing a result.

A new way for a message to end is a new class here and a branch where ``settle.py``
acts on the outcomes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from skyclass.runtime.contracts import DONE, FAILED


@dataclass(frozen=True)
class Answered:
    result: dict[str, Any]


@dataclass(frozen=True)
class Retry:
    reason: str
    delay: int


@dataclass(frozen=True)
class Released:
    pass


@dataclass(frozen=True)
class Unanswerable:
    reason: str


@dataclass(frozen=True)
class Dropped:
    reason: str


Outcome = Answered | Retry | Released | Unanswerable | Dropped


def retry_delay(receive_count: int) -> int:
    """Seconds before a message that failed transiently is seen again: 5, 10, 20, ...
    up to 5 minutes, so a short S3 hiccup costs seconds and a long one costs few tries."""
    return min(5 * 2 ** max(receive_count - 1, 0), 300)


@dataclass(frozen=True)
class Tally:
    """How many messages of a batch ended which way."""

    done: int = 0
    failed: int = 0
    retried: int = 0
    released: int = 0
    unanswerable: int = 0
    dropped: int = 0

    @classmethod
    def of(cls, outcomes: Iterable[Outcome | None]) -> Tally:
        outcomes = list(outcomes)
        answered = [o.result["status"] for o in outcomes if isinstance(o, Answered)]
        return cls(
            done=answered.count(DONE),
            failed=answered.count(FAILED),
            retried=sum(1 for o in outcomes if isinstance(o, Retry)),
            released=sum(1 for o in outcomes if isinstance(o, Released)),
            unanswerable=sum(1 for o in outcomes if isinstance(o, Unanswerable)),
            dropped=sum(1 for o in outcomes if isinstance(o, Dropped)),
        )

    @property
    def answered(self) -> int:
        return self.done + self.failed

    @property
    def errors(self) -> int:
        """Images answered as failed, or left for another try."""
        return self.failed + self.retried
