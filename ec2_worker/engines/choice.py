"""``auto``: time the engines on this machine and keep the fastest, never one slower than
TensorFlow.

``measure`` runs every engine in turn within each round, at each batch size the worker
uses, so that whatever else the machine is doing falls on all of them alike, and keeps
each engine's median round. It measures the machine as it is: on cores shared with
other busy processes, OpenVINO's and ONNX Runtime's per-layer thread hand-offs suffer
more than TensorFlow's work-stealing pool (docs/benchmarks.md), so a machine measured
while busy may keep TensorFlow. ``choose`` is pure: an engine other than TensorFlow is
chosen only if it is at least ``MARGIN`` faster than TensorFlow at every one of those
batch sizes (a worker sees lone images and full batches alike). Among those, the one
closest to the best engine at its worst batch size: where one engine wins at batch 1
and another at batch 32, the one that gives away least anywhere. Otherwise TensorFlow,
and the reason says by how much each other engine fell short.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping

import numpy as np

from ec2_worker.engine import TENSORFLOW

# The smallest lead over TensorFlow, at every batch size, for which auto leaves it: more
# than the spread between rounds of the same engine on a busy machine.
MARGIN = 0.05
ROUNDS = 3
IMAGES_PER_MEASUREMENT = 16

Rates = dict[int, float]  # batch size -> images per second


def measure(runs: Mapping[str, Callable[[np.ndarray], object]], batch_sizes: Iterable[int],
            input_size: tuple[int, int], rounds: int = ROUNDS,
            images: int = IMAGES_PER_MEASUREMENT,
            clock: Callable[[], float] = time.perf_counter) -> dict[str, Rates]:
    """Median images per second of each of ``runs`` (already warmed up at these batch
    sizes) over ``rounds`` interleaved rounds; each measurement classifies at least
    ``images`` images, in whole batches."""
    height, width = input_size
    samples: dict[str, dict[int, list[float]]] = {name: {} for name in runs}
    batches = sorted(set(batch_sizes))
    pixels = {size: np.random.default_rng(size).uniform(0, 255, (size, height, width, 3))
              .astype(np.float32) for size in batches}
    for _ in range(rounds):
        for size in batches:
            calls = max(1, -(-images // size))
            for name, run in runs.items():
                # Untimed: the first call after another engine's pays for its threads
                # still spinning down, which is no cost of this engine.
                run(pixels[size])
                start = clock()
                for _ in range(calls):
                    run(pixels[size])
                elapsed = max(clock() - start, 1e-9)
                samples[name].setdefault(size, []).append(calls * size / elapsed)
    return {name: {size: float(np.median(rates)) for size, rates in by_size.items()}
            for name, by_size in samples.items()}


def choose(rates: Mapping[str, Rates], margin: float = MARGIN) -> tuple[str, str]:
    """(engine, reason) from each engine's measured ``rates``; TensorFlow's must be
    among them."""
    reference = rates[TENSORFLOW]
    largest = max(reference)
    speedups = {name: {size: engine_rates[size] / reference[size] for size in reference}
                for name, engine_rates in rates.items() if name != TENSORFLOW}
    faster = [name for name, by_size in speedups.items()
              if all(ratio >= 1 + margin for ratio in by_size.values())]

    def described(name: str) -> str:
        ratios = [f"{speedups[name][size]:.2f}x" for size in sorted(reference, reverse=True)]
        sizes = [f"at batch {size}" for size in sorted(reference, reverse=True)]
        ratios[0] += " TensorFlow"
        return f"{name} " + ", ".join(f"{r} {s}" for r, s in zip(ratios, sizes, strict=True))

    if not faster:
        others = "; ".join(described(name) for name in speedups) or "no other engine ran"
        return TENSORFLOW, (f"no engine was {1 + margin:.2f}x TensorFlow or more at every "
                            f"batch size ({others})")
    top = {size: max(engine_rates[size] for engine_rates in rates.values())
           for size in reference}
    best = max(faster, key=lambda name: (min(rates[name][size] / top[size] for size in top),
                                         rates[name][largest]))
    runners_up = [described(name) for name in speedups if name != best]
    reason = f"the fastest: {described(best)}"
    if runners_up:
        reason += f" (also measured: {'; '.join(runners_up)})"
    return best, reason
