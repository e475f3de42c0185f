"""The worker pool as the scaler's tests see it."""

from __future__ import annotations

from skyclass.runtime.fleet.pool import InstancePool


def states(pool: InstancePool) -> list[str]:
    """The pool's instance states, sorted."""
    return sorted(i.state for i in pool.instances())
