"""Keep the messages a worker holds invisible to other workers for as long as it holds them.

A message is held from the moment it is received until its fate is settled (deleted,
backed off or released). With prefetching a message may wait behind a batch or two
before its own inference starts, and a batch on a slow machine may run long, so no fixed
visibility timeout fits: every third of the timeout the heartbeat extends every held
message to a full timeout again. A worker that dies stops beating, and its messages
come back to the queue within one timeout.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

from skyclass.runtime.queue import Received, WorkQueue

log = logging.getLogger(__name__)


class Heartbeat:
    def __init__(self, queue: WorkQueue, visibility_timeout: int) -> None:
        self._queue = queue
        self._timeout = visibility_timeout
        self._held: dict[str, Received] = {}
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def interval(self) -> float:
        return max(self._timeout / 3, 1.0)

    def hold(self, received: Iterable[Received]) -> None:
        with self._lock:
            self._held.update((r.receipt_handle, r) for r in received)

    def let_go(self, received: Iterable[Received]) -> None:
        with self._lock:
            for r in received:
                self._held.pop(r.receipt_handle, None)

    def held(self) -> list[Received]:
        with self._lock:
            return list(self._held.values())

    def beat(self) -> None:
        """Extend every held message to a full visibility timeout from now."""
        held = self.held()
        if not held:
            return
        try:
            self._queue.change_visibility(held, self._timeout)
        except Exception:  # the next beat tries again; SQS keeps them hidden meanwhile
            log.exception("could not extend the visibility of %d messages", len(held))

    def start(self) -> None:
        self._stopped.clear()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while not self._stopped.wait(self.interval):
            self.beat()
