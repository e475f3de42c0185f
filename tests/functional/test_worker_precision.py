"""Precision: a bf16 engine answers as the fp32 one does, on a trained model's held-out
images; where the hardware has no native bfloat16 it says so and runs fp32."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from ec2_worker.engine import BF16, FP32, InferenceEngine, bf16_unsupported_reason
from ec2_worker.model import custom_classifier
from testbed.tiny_model import CLASSES, HELD_OUT_SEED, INPUT_SIZE, make_image

HELD_OUT = 300


@pytest.fixture(scope="module")
def held_out():
    height, width = INPUT_SIZE
    images = [make_image(CLASSES[i % len(CLASSES)], HELD_OUT_SEED + 1000 + i)
              .resize((width, height)) for i in range(HELD_OUT)]
    return np.stack([np.asarray(image, dtype=np.float32) for image in images])


@pytest.mark.skipif(bf16_unsupported_reason() is not None,
                    reason=f"no native bfloat16 here: {bf16_unsupported_reason()}")
def test_bf16_gives_the_same_top_label_as_fp32(tiny_model, held_out):
    # GIVEN the trained tiny model in fp32 and in bf16
    classifier = custom_classifier(tiny_model.model_path, str(tiny_model.labels_path))
    fp32 = InferenceEngine(classifier, top_k=3, precision=FP32)
    bf16 = InferenceEngine(classifier, top_k=3, precision=BF16)
    assert bf16.precision == BF16

    # WHEN both classify the same held-out images
    exact = [top[0].label for top in fp32.predict(held_out)]
    fast = [top[0].label for top in bf16.predict(held_out)]

    # THEN they agree on the label of (at least) 99% of them
    agree = sum(a == b for a, b in zip(exact, fast, strict=True))
    assert agree >= 0.99 * HELD_OUT, f"{agree}/{HELD_OUT}"


def test_without_native_bf16_the_engine_says_so_and_runs_fp32(
    tiny_model, monkeypatch, caplog
):
    import ec2_worker.engine as engine_module

    # GIVEN a machine whose CPU has no bfloat16 instructions
    monkeypatch.setattr(engine_module, "bf16_unsupported_reason",
                        lambda: "this CPU has no native bfloat16 (neither AVX-512-BF16 nor AMX)")
    classifier = custom_classifier(tiny_model.model_path, str(tiny_model.labels_path))
    # WHEN an engine is asked for bf16
    with caplog.at_level(logging.WARNING):
        engine = InferenceEngine(classifier, top_k=3, precision=BF16)
    # THEN it runs fp32 and the log says why
    assert engine.precision == FP32
    assert "precision bf16 asked for, but this CPU has no native bfloat16" in caplog.text


@pytest.mark.skipif(bf16_unsupported_reason() is not None,
                    reason=f"no native bfloat16 here: {bf16_unsupported_reason()}")
def test_bf16_keeps_the_weights_in_bfloat16_in_one_frozen_graph(tiny_model):
    from ec2_worker import graph

    # GIVEN the trained tiny model's inference function, frozen
    classifier = custom_classifier(tiny_model.model_path, str(tiny_model.labels_path))
    engine = InferenceEngine(classifier, top_k=3, precision=FP32)
    frozen = engine._probabilities
    # WHEN TensorFlow's oneDNN bfloat16 pass rewrites it
    rewritten, bf16_ops = graph.rewrite_bfloat16(frozen)
    # THEN its convolutions and matmuls compute in bfloat16, the graph holds no variables,
    # and its scores stay float32 probabilities
    assert bf16_ops > 0
    assert "ReadVariableOp" not in {op.type for op in frozen.graph.get_operations()}
    pixels = np.zeros((2, *INPUT_SIZE, 3), np.float32)
    scores = rewritten(engine._tensor(pixels))[0].numpy()
    assert scores.dtype == np.float32
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, atol=1e-3)


def test_when_the_bf16_rewrite_changes_nothing_the_engine_says_so_and_runs_fp32(
    tiny_model, monkeypatch, caplog
):
    from ec2_worker import graph

    # GIVEN a TensorFlow whose oneDNN bfloat16 pass rewrites nothing (oneDNN turned off)
    monkeypatch.setattr(graph, "rewrite_bfloat16", lambda frozen: (frozen, 0))
    monkeypatch.setattr("ec2_worker.engine.bf16_unsupported_reason", lambda: None)
    classifier = custom_classifier(tiny_model.model_path, str(tiny_model.labels_path))
    # WHEN an engine is asked for bf16 on the CPU
    with caplog.at_level(logging.WARNING):
        engine = InferenceEngine(classifier, top_k=3, precision=BF16, gpu=False)
    # THEN it runs fp32, says why, and still classifies
    assert engine.precision == FP32
    assert "oneDNN bfloat16 rewrite changed nothing" in caplog.text
    assert len(engine.predict(np.zeros((1, *INPUT_SIZE, 3), np.float32))[0]) == 3
