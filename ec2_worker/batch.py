"""What travels through the worker: a batch of received messages, one ``Item`` each.

A batch is what one long poll brings, topped up without waiting while more is
immediately there (``receive_batch``): a shallow queue gives small batches, answered at
once; a deep one gives full batches.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np

from ec2_worker.outcome import Outcome, Released
from skyclass.runtime.contracts import WorkMessage
from skyclass.runtime.queue import Received

SQS_MAX_RECEIVE = 10  # SQS gives at most this many messages per receive
IO_THREADS = 8  # concurrent S3 calls per batch (downloads, result writes)

T = TypeVar("T")


@dataclass
class Item:
    """One received message on its way through a batch: its work message (None when the
    body names no image), its pixels once decoded, the time each step took, and its
    outcome once a step has decided it."""

    received: Received
    message: WorkMessage | None = None
    pixels: np.ndarray | None = None
    timings: dict[str, float] = field(default_factory=dict)
    outcome: Outcome | None = None

    @property
    def pending(self) -> bool:
        return self.outcome is None


@dataclass
class Batch:
    """The items of one receive (topped up), and when they arrived."""

    items: list[Item]
    received_at: float

    def pending(self) -> list[Item]:
        return [item for item in self.items if item.pending]

    def release_pending(self) -> None:
        """Every item still on its way will not be classified here: ``Released``."""
        for item in self.pending():
            item.outcome = Released()


def receive_batch(receive: Callable[[int, int], list[Received]], batch_size: int,
                  wait_seconds: int) -> list[Received]:
    """Up to ``batch_size`` messages: what one long poll brings, topped up without waiting
    only while more is immediately there. ``receive(max_messages, wait_seconds)``."""
    received = receive(min(batch_size, SQS_MAX_RECEIVE), wait_seconds)
    while received and len(received) < batch_size:
        more = receive(min(batch_size - len(received), SQS_MAX_RECEIVE), 0)
        if not more:
            break
        received += more
    return received


def for_each(items: Iterable[T], step: Callable[[T], None]) -> None:
    """``step`` on every item, up to ``IO_THREADS`` at a time (S3 calls wait, not work)."""
    items = list(items)
    if items:
        with ThreadPoolExecutor(max_workers=min(IO_THREADS, len(items))) as pool:
            list(pool.map(step, items))
