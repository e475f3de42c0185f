"""``auto``'s choice and the agreement rule, with a fake timing source and made-up scores:
an engine replaces TensorFlow only when it is faster at every batch size, and a converted
model serves only when it answers as TensorFlow does."""

from __future__ import annotations

import numpy as np
import pytest

from ec2_worker.engines import ONNXRUNTIME, OPENVINO, TENSORFLOW
from ec2_worker.engines.agreement import (
    BF16_TOLERANCE,
    FP32_TOLERANCE,
    compare,
    fixed_inputs,
)
from ec2_worker.engines.choice import MARGIN, choose, measure
from ec2_worker.engines.records import cpu_description, machine_key


class FakeClock:
    """A timing source that only moves when an engine 'computes'."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def engine(self, seconds_per_image: dict[int, float]):
        """A run function costing ``seconds_per_image[batch]`` per image it is given."""
        def run(pixels: np.ndarray) -> None:
            self.now += seconds_per_image[len(pixels)] * len(pixels)
        return run


def test_measure_reports_each_engines_images_per_second_from_the_timing_source():
    # GIVEN engines whose cost per image is known, at batch 1 and 32
    clock = FakeClock()
    runs = {TENSORFLOW: clock.engine({1: 0.04, 32: 0.02}),
            OPENVINO: clock.engine({1: 0.025, 32: 0.0125})}
    # WHEN they are measured side by side
    rates = measure(runs, [32, 1], (8, 8), rounds=3, images=4, clock=clock)
    # THEN each rate is images over the time the timing source saw
    assert rates[TENSORFLOW] == pytest.approx({1: 25.0, 32: 50.0})
    assert rates[OPENVINO] == pytest.approx({1: 40.0, 32: 80.0})


def test_auto_picks_the_engine_faster_than_tensorflow_at_every_batch_size():
    # GIVEN OpenVINO 1.6x TensorFlow at both batch sizes, ONNX Runtime 1.3x
    clock = FakeClock()
    runs = {TENSORFLOW: clock.engine({1: 0.08, 32: 0.04}),
            OPENVINO: clock.engine({1: 0.05, 32: 0.025}),
            ONNXRUNTIME: clock.engine({1: 0.06, 32: 0.03})}
    # WHEN auto measures and chooses
    engine, reason = choose(measure(runs, [1, 32], (8, 8), clock=clock))
    # THEN OpenVINO, and the reason gives its lead and the others'
    assert engine == OPENVINO
    assert reason == ("the fastest: openvino 1.60x TensorFlow at batch 32, 1.60x at batch 1 "
                      "(also measured: onnxruntime 1.33x TensorFlow at batch 32, "
                      "1.33x at batch 1)")


def test_an_engine_faster_at_full_batches_but_slower_alone_is_not_chosen():
    # GIVEN an engine 2x TensorFlow at batch 32 but slower at batch 1
    rates = {TENSORFLOW: {1: 20.0, 32: 40.0}, ONNXRUNTIME: {1: 18.0, 32: 80.0}}
    # WHEN auto chooses
    engine, reason = choose(rates)
    # THEN TensorFlow, saying why
    assert engine == TENSORFLOW
    assert "onnxruntime 2.00x TensorFlow at batch 32, 0.90x at batch 1" in reason


def test_a_lead_within_the_margin_is_not_enough_to_leave_tensorflow():
    rates = {TENSORFLOW: {1: 20.0, 32: 40.0},
             OPENVINO: {1: 20.0 * (1 + MARGIN / 2), 32: 40.0 * (1 + MARGIN / 2)}}
    assert choose(rates)[0] == TENSORFLOW


def test_with_no_other_engine_tensorflow_runs():
    engine, reason = choose({TENSORFLOW: {1: 20.0, 32: 40.0}})
    assert engine == TENSORFLOW
    assert reason.endswith("(no other engine ran)")


def test_auto_never_picks_an_engine_slower_than_tensorflow_anywhere():
    # GIVEN many machines, each with random engine speeds, timed by the fake source
    rng = np.random.default_rng(3)
    for _ in range(200):
        clock = FakeClock()
        costs = {name: {size: float(rng.uniform(0.005, 0.05)) for size in (1, 8, 32)}
                 for name in (TENSORFLOW, OPENVINO, ONNXRUNTIME)}
        rates = measure({name: clock.engine(cost) for name, cost in costs.items()},
                        [1, 8, 32], (4, 4), rounds=1, images=8, clock=clock)
        # WHEN auto chooses
        engine, _ = choose(rates)
        # THEN what it picks is at least as fast as TensorFlow at every batch size, and
        # the fastest at full batches among those that are
        assert all(rates[engine][size] >= rates[TENSORFLOW][size] for size in (1, 8, 32))
        eligible = [name for name in rates
                    if all(rates[name][s] >= (1 + MARGIN) * rates[TENSORFLOW][s]
                           for s in (1, 8, 32))]
        if eligible:
            assert engine in eligible
        else:
            assert engine == TENSORFLOW


def test_where_engines_win_at_different_batch_sizes_auto_takes_the_one_closest_everywhere():
    # GIVEN ONNX Runtime fastest at batch 32 by a little, OpenVINO fastest alone by a lot
    rates = {TENSORFLOW: {1: 10.0, 32: 10.0},
             OPENVINO: {1: 16.0, 32: 18.0},
             ONNXRUNTIME: {1: 12.0, 32: 19.0}}
    # WHEN auto chooses
    engine, _ = choose(rates)
    # THEN OpenVINO: 0.95x the best at batch 32, where ONNX Runtime is 0.75x at batch 1
    assert engine == OPENVINO


def scores(rows: list[list[float]]) -> np.ndarray:
    return np.array(rows, dtype=np.float32)


REFERENCE = scores([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])


def test_scores_equal_to_tensorflows_within_tolerance_agree():
    found = compare(REFERENCE, REFERENCE + 5e-5)
    assert found.passed
    assert found.describe() == ("agrees with TensorFlow: top-1 2/2, softmax within 5e-05 "
                                "(tolerance 0.0001)")


def test_one_different_top_label_is_a_disagreement_even_within_tolerance():
    # GIVEN an image TensorFlow finds a near tie, which the engine orders the other way
    reference = scores([[0.50002, 0.49998], [0.9, 0.1]])
    found = compare(reference, scores([[0.49998, 0.50002], [0.9, 0.1]]))
    # THEN it does not pass, though every score is within the tolerance
    assert found.max_difference <= FP32_TOLERANCE
    assert (found.same_top1, found.passed) == (1, False)


def test_scores_beyond_the_tolerance_disagree_and_bf16_has_its_own_tolerance():
    shifted = REFERENCE + scores([[-0.01, 0.01, 0.0], [0.0, 0.0, 0.0]])
    assert not compare(REFERENCE, shifted).passed
    assert compare(REFERENCE, shifted, "bf16").passed
    assert compare(REFERENCE, shifted, "bf16").tolerance == BF16_TOLERANCE
    assert not compare(REFERENCE, REFERENCE + 0.03, "bf16").passed


def test_a_wrong_shape_or_nan_never_agrees():
    assert not compare(REFERENCE, REFERENCE[:, :2]).passed
    assert not compare(REFERENCE, REFERENCE * np.nan).passed


def test_the_fixed_inputs_are_the_same_every_time_and_are_pixels():
    first, again = fixed_inputs((24, 32)), fixed_inputs((24, 32))
    assert first.shape == (16, 24, 32, 3) and first.dtype == np.float32
    np.testing.assert_array_equal(first, again)
    assert first.min() >= 0 and first.max() <= 255
    # smooth fields and noise both: neighbouring pixels differ far less in the former
    steps = np.abs(np.diff(first, axis=2)).mean(axis=(1, 2, 3))
    assert steps[-1] < steps[0] / 3


CPU = "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu avx2 avx512f avx512_bf16\n"


def test_a_machine_record_is_per_cpu_precision_and_batch_sizes():
    cpu = cpu_description(CPU)
    assert cpu == {"model": "AMD EPYC", "flags": ["avx2", "avx512f", "avx512_bf16"], "cpus": 1}
    key = machine_key(cpu, "fp32", [1, 32])
    assert machine_key(cpu, "fp32", {32, 1}) == key
    assert machine_key(cpu, "bf16", [1, 32]) != key
    assert machine_key(cpu, "fp32", [1, 64]) != key
    assert machine_key(cpu_description(CPU.replace(" avx512_bf16", "")), "fp32", [1, 32]) != key


def test_the_engine_setting_defaults_to_auto_and_refuses_unknown_engines():
    from skyclass.runtime.errors import ConfigurationError
    from skyclass.runtime.settings import Settings

    assert Settings.from_env({}).engine == "auto"
    assert Settings.from_env({"SKYCLASS_ENGINE": "openvino"}).engine == OPENVINO
    with pytest.raises(ConfigurationError, match="SKYCLASS_ENGINE must be auto, tensorflow, "
                                                 "openvino or onnxruntime, not 'tensorrt'"):
        Settings.from_env({"SKYCLASS_ENGINE": "tensorrt"})


def test_an_input_agrees_only_if_it_does_in_every_way_the_engine_runs_it():
    # GIVEN an engine that agrees on a batch but flips the first image run alone
    alone = scores([[0.2, 0.7, 0.1], [0.1, 0.3, 0.6]])
    found = compare(REFERENCE, [REFERENCE, alone])
    # THEN that input does not agree, and the largest difference counts
    assert (found.same_top1, found.passed) == (1, False)
    assert found.max_difference == pytest.approx(0.5)
    assert compare(REFERENCE, [REFERENCE, REFERENCE + 1e-5]).passed
