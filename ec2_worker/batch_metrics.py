"""The worker's figures for the scaling policy: each settled batch's images answered,
errors, and busy time, handed to the metrics publisher (``skyclass.runtime.metrics``).

Batches overlap in the pipeline (one is classified while the one before is settled), so
busy time runs from a batch's receipt, or from the moment the batch before it was
settled if that is later, to its own settlement: each moment counts once. Figures are
worth less than the images, so trouble publishing them is logged and the work goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ec2_worker.outcome import Tally
from skyclass.runtime.metrics import MetricsPublisher

log = logging.getLogger(__name__)


class BatchMetrics:
    def __init__(self, publisher: MetricsPublisher | None,
                 clock: Callable[[], float]) -> None:
        self._publisher = publisher
        self._clock = clock
        self._last_settled = 0.0

    def record(self, received_at: float, tally: Tally) -> None:
        """A batch received at ``received_at`` has just been settled, ending as ``tally``."""
        settled = self._clock()
        if self._publisher is not None:
            busy = settled - max(received_at, self._last_settled)
            try:
                self._publisher.record_batch(images=tally.answered, errors=tally.errors,
                                             seconds=max(busy, 0.0))
            except Exception:
                log.exception("could not publish the worker's metrics")
        self._last_settled = settled

    def flush(self) -> None:
        if self._publisher is None:
            return
        try:
            self._publisher.flush()
        except Exception:
            log.exception("could not publish the worker's last metrics")
