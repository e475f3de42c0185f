"""How many local workers fit this machine, and how many inference threads each gets.

On AWS every worker instance has cores and memory of its own. Locally every "instance"
is a process on one machine, beside the emulator, the API and the Lambda host, so the
local fleet is sized to the machine: by default as many workers as it has room for, at
``CORES_PER_WORKER`` cores (what a c7i.large worker has on AWS) and
``MEMORY_PER_WORKER`` each, at least one. A fleet size the operator chose
(``--max-workers`` or ``SKYCLASS_MAX_WORKERS``) is kept, even above that, so the
elasticity can be watched; either way each worker gets its share of the cores as
TensorFlow threads, so the workers together never run more inference threads than the
machine has cores. The note says what was chosen and why; ``skyclass up`` prints it and
``GET /fleet`` shows it (``limits.note``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

GIB = 1024**3
CORES_PER_WORKER = 2
MEMORY_PER_WORKER = 2 * GIB  # a ResNet-50 worker's resident memory, with room to spare
RESERVED_MEMORY = 2 * GIB  # the emulator, the API, the Lambda host and the supervisor


@dataclass(frozen=True)
class LocalCapacity:
    max_workers: int
    threads_per_worker: int
    note: str

    def worker_env(self, environ: Mapping[str, str]) -> dict[str, str]:
        """TensorFlow's thread counts for each worker (a count the environment already
        sets is kept)."""
        threads = str(self.threads_per_worker)
        names = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS")
        return {name: environ.get(name) or threads for name in names}


def machine() -> tuple[int, int]:
    """This machine's usable cores and total memory in bytes."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return cores, memory


def local_capacity(cores: int, memory: int, chosen: int | None,
                   default: int) -> LocalCapacity:
    """The local fleet for a machine of ``cores`` and ``memory`` bytes: ``chosen``
    workers if the operator chose, else ``default`` capped to what fits."""
    fits = max(1, min(cores // CORES_PER_WORKER,
                      (memory - RESERVED_MEMORY) // MEMORY_PER_WORKER))
    here = f"{cores} cores and {memory / GIB:.0f} GiB here"
    if chosen is None:
        workers = min(default, fits)
        why = (f"at most {workers} worker{'s' if workers != 1 else ''}, sized to this "
               f"machine ({here}; a worker gets {CORES_PER_WORKER} cores and "
               f"{MEMORY_PER_WORKER // GIB} GiB, as a c7i.large has; --max-workers "
               "chooses another)")
        if workers < default:
            why += f", capped from {default}"
    else:
        workers = chosen
        why = f"{workers} worker{'s' if workers != 1 else ''} as chosen"
        if workers > fits:
            why += f" ({fits} fit {here}: they share its cores)"
    threads = max(1, cores // max(workers, 1))
    return LocalCapacity(workers, threads,
                         f"{why}; {threads} inference thread{'s' if threads != 1 else ''} "
                         "per worker")
