"""The inference engine without a trained model: precision choice, bf16 detection, the
batch size for the device, and that a bf16 copy of a model keeps its weights."""

from __future__ import annotations

import numpy as np
import pytest

from ec2_worker.engine import (
    GPU_BATCH_SIZE,
    as_mixed_bfloat16,
    batch_size_for,
    cpu_bf16_unsupported_reason,
)

BF16_CPU = "processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_bf16 amx_tile\n"
OLD_CPU = "processor\t: 0\nflags\t\t: fpu sse avx2 avx512f\n"


def test_a_cpu_with_avx512_bf16_runs_bf16():
    assert cpu_bf16_unsupported_reason(BF16_CPU) is None


def test_a_cpu_without_bf16_says_why():
    assert cpu_bf16_unsupported_reason(OLD_CPU) == (
        "this CPU has no native bfloat16 (neither AVX-512-BF16 nor AMX)")


@pytest.mark.parametrize(("configured", "gpu", "expected"), [
    (False, False, 32), (True, False, 32), (False, True, GPU_BATCH_SIZE), (True, True, 32),
])
def test_a_gpu_gets_large_batches_unless_a_batch_size_is_configured(configured, gpu, expected):
    assert batch_size_for(32, configured=configured, gpu=gpu) == expected


def test_a_bf16_copy_computes_in_bf16_with_the_same_weights_and_float32_scores():
    import keras

    # GIVEN a small float32 model
    keras.utils.set_random_seed(7)
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3),
                              keras.layers.Flatten(), keras.layers.Dense(3, activation="softmax")])
    # WHEN it is copied for bf16
    copy = as_mixed_bfloat16(model)
    # THEN the hidden layers compute in bfloat16, the last in float32, on the same weights
    assert [layer.compute_dtype for layer in copy.layers] == ["bfloat16", "bfloat16", "float32"]
    for mine, theirs in zip(copy.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, theirs)
    # AND it gives nearly the same scores
    pixels = np.random.default_rng(1).uniform(0, 1, (5, 8, 8, 3)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(copy(pixels)), np.asarray(model(pixels)), atol=0.05)
