"""The rule a converted model must pass before it serves: on a fixed set of inputs, the
same top-1 as TensorFlow's fp32 engine on every input, and every softmax score within a
stated tolerance of TensorFlow's.

The tolerance depends on the precision the engine computes in. In fp32 a conversion
only reorders float arithmetic, so scores differ in the last digits: ``1e-4`` leaves a
hundredfold margin over what the conversions here give, and still catches a wrong
operator or layout. In bf16 every convolution rounds its inputs to 8 bits of mantissa:
``0.02`` bounds what bf16 gives on the tests' trained models, and is still far below
the distance between the top two scores of a confident answer. The top-1 rule is exact
in both, so an input whose two best classes are within the tolerance of each other
must still come out in the same order. (Measured differences: docs/benchmarks.md.)

An engine is checked as it runs: the inputs as one batch, and each alone (a batch and a
lone image may take different paths through it). The inputs are made here, the same for
every engine: half uniform noise, half smooth
random colour fields, at the model's own input size. They need no labels: the
reference is what TensorFlow answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ec2_worker.engine import BF16, FP32

FP32_TOLERANCE = 1e-4
BF16_TOLERANCE = 0.02
INPUTS = 16
_SEED = 17


def tolerance(precision: str) -> float:
    return BF16_TOLERANCE if precision == BF16 else FP32_TOLERANCE


def fixed_inputs(input_size: tuple[int, int], count: int = INPUTS) -> np.ndarray:
    """``count`` RGB float32 images in [0, 255] of (height, width) ``input_size``."""
    height, width = input_size
    rng = np.random.default_rng(_SEED)
    noise = rng.uniform(0, 255, (count - count // 2, height, width, 3))
    # Smooth fields: a few random colours per side, spread over the image, plus grain.
    coarse = rng.uniform(0, 255, (count // 2, 4, 4, 3))
    rows = np.minimum(np.arange(height) * 4 // height, 3)
    cols = np.minimum(np.arange(width) * 4 // width, 3)
    fields = coarse[:, rows][:, :, cols] + rng.normal(0, 12, (count // 2, height, width, 3))
    return np.clip(np.concatenate([noise, fields]), 0, 255).astype(np.float32)


@dataclass(frozen=True)
class Agreement:
    same_top1: int
    inputs: int
    max_difference: float  # largest |score - TensorFlow's score| over all inputs and classes
    tolerance: float

    @property
    def passed(self) -> bool:
        return self.same_top1 == self.inputs and self.max_difference <= self.tolerance

    def describe(self) -> str:
        verdict = "agrees" if self.passed else "DISAGREES"
        return (f"{verdict} with TensorFlow: top-1 {self.same_top1}/{self.inputs}, "
                f"softmax within {self.max_difference:.2g} (tolerance {self.tolerance:g})")

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Agreement:
        return cls(**data)


def compare(reference: np.ndarray, scores: np.ndarray | Sequence[np.ndarray],
            precision: str = FP32) -> Agreement:
    """How ``scores`` (n, classes) agree with TensorFlow's fp32 ``reference``. Given
    several runs over the same inputs (an engine that runs a batch one way and a lone
    image another), an input agrees only if it does in every run."""
    runs = [scores] if isinstance(scores, np.ndarray) else list(scores)
    limit = tolerance(precision)
    if any(run.shape != reference.shape for run in runs):
        return Agreement(0, len(reference), float("inf"), limit)
    expected = np.argmax(reference, axis=1)
    same = np.all([np.argmax(run, axis=1) == expected for run in runs], axis=0)
    difference = max(float(np.max(np.abs(run.astype(np.float64) - reference))) for run in runs)
    if not np.isfinite(difference):
        difference = float("inf")
    return Agreement(int(np.sum(same)), len(reference), difference, limit)
