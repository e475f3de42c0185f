"""Waiting on AWS, within stated limits, and saying so while it lasts.

AWS is eventually consistent and some of its steps are slow: an instance profile is
refused by EC2 for a minute or two after IAM created it, a new AMI or its tags may not
be found at once, a first snapshot of a TensorFlow volume takes many minutes, and a
snapshot stays in use for a while after its AMI is deregistered. Bake, bootstrap, deploy
and teardown wait for each of these through one ``Waiter``: it polls until the answer
comes, reports progress every ``report_every_s`` seconds, and gives up after the step's
limit with an error that names the step and the limit. The limits are ``Waits``' defaults
(docs/deploy.md, "Limits"); a rehearsal against the emulator's eventual-consistency mode
scales them all down at once (``Waits.scaled``).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from botocore.exceptions import ClientError

from skyclass.runtime.errors import SkyclassError

T = TypeVar("T")
Report = Callable[[str], None]


class WaitTimeoutError(SkyclassError):
    """A step did not finish within its stated limit."""

    code = "WaitTimeout"


@dataclass(frozen=True)
class Patience:
    """How long one kind of step may take, and how often to look."""

    limit_s: float
    poll_s: float


@dataclass(frozen=True)
class Waits:
    """The stated limit of every wait (docs/deploy.md, "Limits")."""

    # EC2 refuses a new instance profile for a while (one to two minutes seen on AWS).
    iam_propagation: Patience = Patience(limit_s=300.0, poll_s=5.0)
    # A new AMI, its tags, a new image id at RunInstances: usually seconds.
    new_resource: Patience = Patience(limit_s=300.0, poll_s=3.0)
    # The builder installs TensorFlow and downloads the weights.
    builder: Patience = Patience(limit_s=3600.0, poll_s=10.0)
    # CreateImage snapshots the builder's volume; a first snapshot of it takes long.
    image_available: Patience = Patience(limit_s=5400.0, poll_s=15.0)
    # A snapshot stays in use for a while after its AMI is deregistered.
    snapshot_release: Patience = Patience(limit_s=900.0, poll_s=10.0)
    # A security group stays in use while terminated instances' interfaces go.
    group_release: Patience = Patience(limit_s=600.0, poll_s=5.0)
    # An instance reaching running, stopped or terminated.
    instance_state: Patience = Patience(limit_s=900.0, poll_s=5.0)
    report_every_s: float = 30.0

    def scaled(self, factor: float) -> Waits:
        """Every limit, poll and report interval times ``factor`` (rehearsals: < 1)."""
        changes = {
            f.name: (Patience(value.limit_s * factor, value.poll_s * factor)
                     if isinstance(value, Patience) else value * factor)
            for f in dataclasses.fields(self)
            for value in [getattr(self, f.name)]
        }
        return Waits(**changes)


class Waiter:
    """Polls until a step is done, reporting progress; clock and sleep are injectable."""

    def __init__(self, report: Report, waits: Waits | None = None, *,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.report = report
        self.waits = waits or Waits()
        self._clock = clock
        self._sleep = sleep

    def now(self) -> float:
        return self._clock()

    def until(self, what: str, check: Callable[[], T | None], patience: Patience) -> T:
        """Call ``check`` until it answers something other than None, and return that.
        Raises WaitTimeoutError after ``patience.limit_s``."""
        started = self._clock()
        reported = started
        while True:
            answer = check()
            if answer is not None:
                return answer
            now = self._clock()
            waited = now - started
            if waited >= patience.limit_s:
                raise WaitTimeoutError(
                    f"gave up waiting for {what} after {_duration(waited)} "
                    f"(the limit is {_duration(patience.limit_s)})")
            if now - reported >= self.waits.report_every_s:
                reported = now
                self.report(f"still waiting for {what}: {_duration(waited)} so far, "
                            f"at most {_duration(patience.limit_s)}")
            self._sleep(min(patience.poll_s, max(patience.limit_s - waited, 0.0)))

    def retry(self, what: str, call: Callable[[], T], retryable: Callable[[ClientError], bool],
              patience: Patience) -> T:
        """Call ``call`` until it stops raising a ClientError that ``retryable`` accepts;
        any other error is raised at once. Raises WaitTimeoutError (with the last
        error's message) after ``patience.limit_s``."""
        last: list[ClientError] = []

        def attempt() -> tuple[T] | None:
            try:
                return (call(),)
            except ClientError as exc:
                if not retryable(exc):
                    raise
                if not last:
                    self.report(f"waiting for {what} ({error_code(exc)})")
                last[:] = [exc]
                return None

        try:
            return self.until(what, attempt, patience)[0]
        except WaitTimeoutError as exc:
            raise WaitTimeoutError(f"{exc.message}; AWS still answers: {last[0]}") from last[0]


def error_code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
    return f"{seconds / 60:.0f} min"
