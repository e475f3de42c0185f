"""Predict: a batch of decoded images -> the top-k predictions for each.

The middle step of the worker's pipeline. Inference runs through one compiled graph
whose batch dimension is left open, so every batch size reuses it; ``model.predict``
would rebuild its data pipeline on every call, which costs more than the inference
itself for the small batches a worker sees. The graph is the model's ``tf.function``
frozen (``ec2_worker.graph``): weights as constants, batch normalization folded into
the convolutions. In fp32 that is as fast as the plain ``tf.function`` (oneDNN already
fuses most of it); what it buys is the bf16 path below.
It is run once at start for each batch size given to ``warm_up`` (oneDNN sets up its
kernels per input shape), so the first real batch of that size is not slow.

Precision ``bf16`` on a CPU rewrites the frozen graph with TensorFlow's oneDNN
bfloat16 pass: convolutions and matmuls in bfloat16 (weights stored in bfloat16 once),
softmax and other sensitive ops in float32, so scores keep their resolution. CPUs with
AVX-512-BF16 or AMX run it natively (how much faster: docs/benchmarks.md). On a GPU
(Ampere on) the model runs under Keras' ``mixed_bfloat16`` policy instead. Hardware
without native bfloat16 would emulate it, slower than float32, so there the engine
says so in the log and runs float32; so it does if the rewrite changes nothing (e.g.
with ``TF_ENABLE_ONEDNN_OPTS=0``). ``precision`` always says what actually runs.

On a machine with a GPU, TensorFlow places the model there by itself; ``batch_size_for``
picks a batch size fit for it unless one was configured.

This is the ``tensorflow`` engine and every other engine's reference: OpenVINO and ONNX
Runtime run a conversion of this very frozen graph (``ec2_worker.engines``), and all of
them label their scores through ``top_predictions``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ec2_worker import graph
from ec2_worker.model import Classifier
from skyclass.runtime.contracts import Prediction

log = logging.getLogger(__name__)

FP32 = "fp32"
BF16 = "bf16"
TENSORFLOW = "tensorflow"
GPU_BATCH_SIZE = 128
_CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
_CPUINFO = Path("/proc/cpuinfo")
# Where the NVIDIA driver lists its GPUs; without it TensorFlow cannot see one either.
_NVIDIA_GPUS = Path("/proc/driver/nvidia/gpus")


class InferenceEngine:
    name = TENSORFLOW

    def __init__(self, classifier: Classifier, top_k: int, precision: str = FP32,
                 gpu: bool | None = None) -> None:
        import tensorflow as tf

        self.classifier = classifier
        self.top_k = min(top_k, len(classifier.labels))
        gpu = has_gpu() if gpu is None else gpu
        model = classifier.model
        if precision == BF16:
            missing = bf16_unsupported_reason()
            if missing:
                log.warning("precision bf16 asked for, but %s: running fp32", missing)
                precision = FP32
            elif gpu:
                model = as_mixed_bfloat16(model)
        height, width = classifier.input_size
        preprocess = classifier.preprocess

        @tf.function(input_signature=[tf.TensorSpec([None, height, width, 3], tf.float32)])
        def probabilities(pixels):
            return tf.cast(model(preprocess(pixels), training=False), tf.float32)

        self._probabilities = graph.freeze(probabilities.get_concrete_function())
        if precision == BF16 and not gpu:
            rewritten, bf16_ops = graph.rewrite_bfloat16(self._probabilities)
            if bf16_ops:
                self._probabilities = rewritten
            else:
                log.warning("precision bf16 asked for, but TensorFlow's oneDNN bfloat16 "
                            "rewrite changed nothing (is TF_ENABLE_ONEDNN_OPTS=0?): "
                            "running fp32")
                precision = FP32
        self.precision = precision
        self._tensor = tf.convert_to_tensor  # the graph takes tensors, not arrays

    def warm_up(self, batch_sizes: Iterable[int] = (1,)) -> None:
        height, width = self.classifier.input_size
        for size in sorted(set(batch_sizes)):
            self.predict(np.zeros((size, height, width, 3), np.float32))

    @property
    def frozen(self):
        """The frozen graph that runs (a concrete function: tensors in, [scores] out),
        what the other engines convert."""
        return self._probabilities

    def scores(self, pixels: np.ndarray) -> np.ndarray:
        """(n, classes) float32 probabilities of (n, height, width, 3) RGB [0, 255] pixels."""
        return self._probabilities(self._tensor(pixels))[0].numpy()

    def predict(self, pixels: np.ndarray) -> list[list[Prediction]]:
        """``pixels``: (n, height, width, 3) RGB float32 in [0, 255]. One list of
        ``top_k`` predictions, best first, per image, in input order."""
        if len(pixels) == 0:
            return []
        return top_predictions(self.scores(pixels), self.classifier.labels, self.top_k)


def top_predictions(scores: np.ndarray, labels: list, top_k: int) -> list[list[Prediction]]:
    """The ``top_k`` labelled predictions, best first, of each row of ``scores``; ties go
    to the lower class index, so every engine labels equal scores alike."""
    best = np.argsort(-scores, axis=1, kind="stable")[:, :top_k]
    return [
        [Prediction(label=labels[i][1], wnid=labels[i][0], score=float(row[i])) for i in top]
        for row, top in zip(scores, best, strict=True)
    ]


def as_mixed_bfloat16(model):
    """A copy of ``model`` (same weights) whose layers compute in bfloat16, except the
    input and the last layer, which stay float32."""
    import keras

    last = model.layers[-1]

    def clone(layer):
        config = layer.get_config()
        if not isinstance(layer, keras.layers.InputLayer) and layer is not last:
            config["dtype"] = keras.DTypePolicy("mixed_bfloat16")
        return layer.__class__.from_config(config)

    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy


def has_gpu(nvidia_gpus: Path = _NVIDIA_GPUS) -> bool:
    """Whether TensorFlow sees a GPU. Without the NVIDIA driver it cannot, and the
    answer comes without importing TensorFlow (which engines other than TensorFlow's
    never load)."""
    if not (nvidia_gpus.is_dir() and any(nvidia_gpus.iterdir())):
        return False
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def batch_size_for(batch_size: int, configured: bool, gpu: bool) -> int:
    """The batch size to use: ``batch_size`` (the setting), unless it was not configured
    and there is a GPU, which needs larger batches to be kept busy."""
    return GPU_BATCH_SIZE if gpu and not configured else batch_size


def bf16_unsupported_reason(cpuinfo: Path = _CPUINFO) -> str | None:
    """Why this machine cannot run bfloat16 natively, or None when it can."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        capability = tf.config.experimental.get_device_details(gpus[0]).get(
            "compute_capability", (0, 0))
        if tuple(capability) < (8, 0):
            return f"the GPU (compute capability {capability}) has no native bfloat16"
        return None
    try:
        text = cpuinfo.read_text()
    except OSError:
        return f"cannot read {cpuinfo} to check the CPU for bfloat16 support"
    return cpu_bf16_unsupported_reason(text)


def cpu_bf16_unsupported_reason(cpuinfo: str) -> str | None:
    """Why a CPU with this ``/proc/cpuinfo`` text cannot run bfloat16 natively, or None."""
    flags = next((line.split(":", 1)[1].split() for line in cpuinfo.splitlines()
                  if line.startswith("flags")), [])
    if not any(flag in flags for flag in _CPU_BF16_FLAGS):
        return "this CPU has no native bfloat16 (neither AVX-512-BF16 nor AMX)"
    return None
