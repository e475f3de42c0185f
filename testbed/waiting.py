"""Waiting on a condition, never on the clock: the one poller of the tests and benchmarks.

A test on a busy two-core machine cannot know how long something takes, only what it
waits for. ``eventually`` asks ``check`` until it answers something truthy and returns
that answer; ``timeout`` is only how long to keep asking before giving up, with what was
awaited (and, through ``explain``, e.g. the stack's logs) in the error.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def eventually(check: Callable[[], T], timeout: float, what: str, *, period: float = 0.1,
               explain: Callable[[], str] | None = None,
               ignoring: tuple[type[BaseException], ...] = ()) -> T:
    """``check()``'s first truthy answer; ``TimeoutError`` naming ``what`` (and
    ``explain()``) if none comes within ``timeout`` seconds. Exceptions of the types in
    ``ignoring`` count as a falsy answer (e.g. AWS not yet agreeing with itself)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            answer = check()
        except ignoring:
            answer = None
        if answer:
            return answer
        if time.monotonic() > deadline:
            details = f"\n{explain()}" if explain else ""
            raise TimeoutError(f"{what}: not within {timeout:g} s{details}")
        time.sleep(period)
