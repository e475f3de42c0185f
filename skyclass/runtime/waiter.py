"""ResultWaiter: one per API process, it waits for the results of every ``POST /classify``
the process is serving, so that waiting requests do not each poll the store.

Behind API Gateway each Lambda container serves one request at a time and the waiter
polls for one result: every ``FIRST_POLL_S`` at first (a warm worker answers in well
under a second), backing off to ``MAX_INTERVAL_S``, so a request polls a bounded number
of times however long it waits. A threaded server (the local stack's API, one process
for every request) shares one waiter among all its waiting requests, and then the
waiter also bounds what they cost together: it polls at most ``polls_per_s`` times a
second for results that are not there yet, whatever the number of requests. Work is
taken from the queue roughly in the order it came, so half of those polls go to the
images waiting longest and, when one is done, to the images that came right after it
(likely its batch-mates); the other half sweep the rest, for images another worker
finished out of order. A burst of N images then costs about one GET per image plus
``polls_per_s`` per second of the burst: requests per image that do not grow with N.

A thread polls while anything is waited for, and ends when nothing is.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from skyclass.runtime.store import JsonStore

log = logging.getLogger(__name__)

FIRST_POLL_S = 0.2
BACKOFF = 1.5
MAX_INTERVAL_S = 1.0
# Polls a second that find nothing, for all of a process's waiting requests together.
POLLS_PER_S = 10.0
# When an image is done, how many of those that came right after it to look at at once.
NEIGHBOURS = 8


@dataclass
class _Waiting:
    key: str
    order: int
    due: float
    interval: float = FIRST_POLL_S
    polled_at: float = 0.0
    result: dict[str, Any] | None = None
    done: threading.Event = field(default_factory=threading.Event)


class ResultWaiter:
    def __init__(self, store: JsonStore, *, polls_per_s: float = POLLS_PER_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._polls_per_s = polls_per_s
        self._clock = clock
        self._lock = threading.Condition()
        self._waiting: dict[str, _Waiting] = {}
        self._order = itertools.count()
        self._poller: threading.Thread | None = None
        self._tokens = polls_per_s
        self._refilled = clock()
        self.polls = 0  # GETs sent, found or not: what waiting costs the store

    def wait(self, key: str, timeout: float) -> dict[str, Any] | None:
        """The JSON document at ``key`` once it exists, or None after ``timeout``
        seconds. Thread-safe; any number of requests may wait at once."""
        with self._lock:
            entry = self._waiting.get(key)
            if entry is None:
                now = self._clock()
                entry = _Waiting(key, next(self._order), now + FIRST_POLL_S, polled_at=now)
                self._waiting[key] = entry
            if self._poller is None:
                self._poller = threading.Thread(target=self._poll, name="result-waiter",
                                                daemon=True)
                self._poller.start()
            self._lock.notify_all()
        entry.done.wait(timeout)
        with self._lock:
            if not entry.done.is_set() and self._waiting.get(key) is entry:
                del self._waiting[key]
            return entry.result

    # ---- the poller ----------------------------------------------------------------

    def _poll(self) -> None:
        while True:
            try:
                if not self._round():
                    return
            except Exception:  # the waiter outlives any one round; requests keep deadlines
                log.exception("the result waiter's round failed; going on")
                time.sleep(MAX_INTERVAL_S)

    def _round(self) -> bool:
        """Poll what is due within the budget, or wait until something is; False once
        nothing is waited for (the poller then ends)."""
        with self._lock:
            if not self._waiting:
                self._poller = None
                return False
            due, idle = self._due()
            if not due:
                self._lock.wait(idle)
                return True
        for entry in due:
            try:
                found = self._store.get(entry.key)
            except Exception:  # S3 trouble: a miss; the request's deadline still holds
                log.warning("could not poll for %s", entry.key, exc_info=True)
                found = None
            self.polls += 1
            self._settle(entry, found)
        return True

    def _due(self) -> tuple[list[_Waiting], float]:
        """The entries to poll now, within the budget: those due, longest waiting first
        (work is taken roughly in order, so the oldest is the likeliest to be done); and
        if there are none, how long until there may be."""
        now = self._clock()
        self._tokens = min(self._polls_per_s,
                           self._tokens + (now - self._refilled) * self._polls_per_s)
        self._refilled = now
        due = sorted((e for e in self._waiting.values() if e.due <= now),
                     key=lambda e: e.order)
        if not due:
            return [], max(0.0, min(e.due for e in self._waiting.values()) - now)
        budget = int(self._tokens)
        if budget < 1:
            return [], (1 - self._tokens) / self._polls_per_s
        # Half to the oldest; half sweeps the others, least lately polled first, to find
        # images done out of order (another worker's batch).
        take = due[: (budget + 1) // 2]
        take += sorted(due[len(take):], key=lambda e: e.polled_at)[: budget - len(take)]
        self._tokens -= len(take)
        return take, 0.0

    def _settle(self, entry: _Waiting, found: dict[str, Any] | None) -> None:
        with self._lock:
            now = self._clock()
            entry.polled_at = now
            if found is None:
                entry.interval = min(entry.interval * BACKOFF, MAX_INTERVAL_S)
                entry.due = now + entry.interval
                return
            self._tokens += 1
            entry.result = found
            entry.done.set()
            self._waiting.pop(entry.key, None)
            after = sorted((e for e in self._waiting.values() if e.order > entry.order),
                           key=lambda e: e.order)[:NEIGHBOURS]
            for neighbour in after:
                neighbour.due = min(neighbour.due, now)
                neighbour.interval = FIRST_POLL_S
