"""Precision: what TensorFlow's oneDNN bfloat16 rewrite does to the engine's graph, checked
on any CPU (it is a graph transformation); the bf16 engine itself, run where the CPU has
native bfloat16 (AVX-512-BF16 or AMX), answering as fp32 does; and where the hardware or
TensorFlow cannot, the engine saying so and running fp32."""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest

from ec2_worker.engine import BF16, FP32, InferenceEngine, bf16_unsupported_reason
from ec2_worker.model import custom_classifier
from testbed.tiny_model import INPUT_SIZE
from tests.support.images import held_out_pixels

HELD_OUT = 300


def _onednn_missing() -> str | None:
    """Why this TensorFlow has no oneDNN bfloat16 pass, or None."""
    from tensorflow.python.util import _pywrap_util_port

    if os.environ.get("TF_ENABLE_ONEDNN_OPTS") == "0":
        return "TF_ENABLE_ONEDNN_OPTS=0 turns oneDNN, and its bfloat16 pass, off"
    if not _pywrap_util_port.IsMklEnabled():
        return "this TensorFlow build has no oneDNN"
    return None


NO_NATIVE_BF16 = bf16_unsupported_reason()
NO_REWRITE = _onednn_missing()


@pytest.fixture(scope="module")
def held_out():
    return held_out_pixels(HELD_OUT, first=1000)


def _frozen_model(tiny_model):
    """The tiny model's inference function, frozen as the engine freezes it."""
    import tensorflow as tf

    from ec2_worker import graph

    classifier = custom_classifier(tiny_model.model_path, str(tiny_model.labels_path))
    height, width = classifier.input_size

    @tf.function(input_signature=[tf.TensorSpec([None, height, width, 3], tf.float32)])
    def probabilities(pixels):
        return tf.cast(classifier.model(classifier.preprocess(pixels), training=False),
                       tf.float32)

    return graph.freeze(probabilities.get_concrete_function())


@pytest.mark.skipif(NO_REWRITE is not None, reason=f"no bfloat16 rewrite: {NO_REWRITE}")
def test_the_rewrite_puts_convolutions_and_matmuls_in_bfloat16_and_keeps_softmax_float32(
        tiny_model):
    from tensorflow.core.framework import types_pb2

    from ec2_worker import graph

    # GIVEN the tiny model's inference function, frozen (its weights constants)
    frozen = _frozen_model(tiny_model)
    assert not {"ReadVariableOp", "VarHandleOp"} & {
        op.type for op in frozen.graph.get_operations()}
    # WHEN TensorFlow's oneDNN bfloat16 pass rewrites it (a graph transformation: this
    # runs on any CPU, with or without native bfloat16)
    rewritten, bf16_ops = graph.rewrite_bfloat16(frozen)
    nodes = rewritten.graph.as_graph_def().node

    def dtype(node):
        return types_pb2.DataType.Name(node.attr["T"].type)

    # THEN every convolution and matmul computes in bfloat16, on weights cast from
    # constants, and the count the engine relies on says so
    computing = [n for n in nodes if n.op in ("Conv2D", "MatMul")]
    assert len(computing) == 4 and {dtype(n) for n in computing} == {"DT_BFLOAT16"}
    assert bf16_ops == sum(1 for n in nodes if n.op not in ("Const", "Identity")
                           and "T" in n.attr and dtype(n) == "DT_BFLOAT16")
    assert not {"ReadVariableOp", "VarHandleOp"} & {n.op for n in nodes}
    # AND the softmax, and so the scores, stay float32
    [softmax] = [n for n in nodes if n.op == "Softmax"]
    assert dtype(softmax) == "DT_FLOAT"
    assert rewritten.outputs[0].dtype.name == "float32"


@pytest.mark.skipif(NO_NATIVE_BF16 is not None or NO_REWRITE is not None,
                    reason=f"no native bfloat16 here: {NO_NATIVE_BF16 or NO_REWRITE}")
def test_bf16_runs_in_bfloat16_and_gives_the_same_top_label_as_fp32(tiny_model, held_out):
    # GIVEN the trained tiny model in fp32 and in bf16, on a CPU with native bfloat16
    classifier = custom_classifier(tiny_model.model_path, str(tiny_model.labels_path))
    fp32 = InferenceEngine(classifier, top_k=len(tiny_model.labels), precision=FP32)
    bf16 = InferenceEngine(classifier, top_k=len(tiny_model.labels), precision=BF16,
                           gpu=False)
    assert bf16.precision == BF16

    # WHEN both classify the same held-out images
    exact, fast = fp32.predict(held_out), bf16.predict(held_out)

    # THEN the bf16 engine really computed in bfloat16 (its scores are not fp32's) ...
    def scores(answers):
        return np.array([sorted((p.label, p.score) for p in top) for top in answers])[..., 1]

    differences = np.abs(scores(exact).astype(float) - scores(fast).astype(float))
    assert differences.max() > 1e-4
    # ... its scores are float32 probabilities (softmax in float32: they sum to 1) ...
    np.testing.assert_allclose(scores(fast).astype(float).sum(axis=1), 1.0, atol=1e-5)
    # ... and it agrees with fp32 on the label of (at least) 99% of the images
    agree = sum(a[0].label == b[0].label for a, b in zip(exact, fast, strict=True))
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
