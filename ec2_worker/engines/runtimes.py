"""OpenVINO and ONNX Runtime engines: a converted model, loaded without TensorFlow, with
the same ``warm_up``/``scores``/``predict`` as the TensorFlow engine.

Precision, per engine (``precision`` always says what actually runs):

- OpenVINO compiles for the CPU with its inference precision hint set explicitly: f32
  for fp32, bf16 for bf16. Explicitly, because on a CPU with AVX-512-BF16 or AMX its
  CPU plugin computes in bf16 by default, so a worker asked for fp32 would silently get
  bf16. On a CPU without native bfloat16 it is never asked for bf16: the engine says so
  and compiles f32 (as the TensorFlow engine does).
- ONNX Runtime's CPU provider has no bfloat16 convolution kernels, so it runs fp32
  whatever is asked, and says so when bf16 was.

Threads: a small batch (a lone image) runs as one inference on all the cores
(OpenVINO's LATENCY hint; ONNX Runtime's default thread count), which answers it
soonest. A larger batch is split into one part per stream, run at once: OpenVINO's
THROUGHPUT hint decides the streams, ONNX Runtime gets one single-threaded run per
core. Each stream then works through its images without waiting at every layer for
the other threads, which on few cores shared with the worker's decode threads gives
more images per second (docs/benchmarks.md). Both parts are checked for agreement.
ONNX Runtime's threads do not spin while waiting for work: on a worker, the cores they
would burn are the ones decoding the next batch.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ec2_worker.engine import BF16, FP32, cpu_bf16_unsupported_reason, top_predictions
from ec2_worker.engines import ONNXRUNTIME, OPENVINO
from ec2_worker.model import Classifier
from skyclass.runtime.contracts import Prediction

log = logging.getLogger(__name__)

Scores = Callable[[np.ndarray], np.ndarray]  # (n, h, w, 3) float32 -> (n, classes) float32
_CPUINFO = Path("/proc/cpuinfo")


class ConvertedEngine:
    """A converted model behind the worker's engine interface."""

    def __init__(self, name: str, classifier: Classifier, top_k: int, precision: str,
                 run: Scores) -> None:
        self.name = name
        self.classifier = classifier
        self.top_k = min(top_k, len(classifier.labels))
        self.precision = precision
        self._run = run

    def warm_up(self, batch_sizes: Iterable[int] = (1,)) -> None:
        height, width = self.classifier.input_size
        for size in sorted(set(batch_sizes)):
            self.scores(np.zeros((size, height, width, 3), np.float32))

    def scores(self, pixels: np.ndarray) -> np.ndarray:
        return self._run(np.ascontiguousarray(pixels, dtype=np.float32))

    def predict(self, pixels: np.ndarray) -> list[list[Prediction]]:
        if len(pixels) == 0:
            return []
        return top_predictions(self.scores(pixels), self.classifier.labels, self.top_k)


def missing_package(engine: str) -> str | None:
    """Why ``engine`` cannot run here (its package is not installed), or None."""
    package = {OPENVINO: "openvino", ONNXRUNTIME: "onnxruntime"}[engine]
    if importlib.util.find_spec(package) is None:
        return f"{package} is not installed"
    return None


def cpu_bf16_reason(cpuinfo: Path = _CPUINFO) -> str | None:
    """Why this CPU cannot compute bfloat16 natively, or None; reads no TensorFlow."""
    try:
        return cpu_bf16_unsupported_reason(cpuinfo.read_text())
    except OSError:
        return f"cannot read {cpuinfo} to check the CPU for bfloat16 support"


def openvino_engine(classifier: Classifier, top_k: int, path: Path, precision: str,
                    bf16_missing: str | None = None) -> ConvertedEngine:
    import openvino as ov

    if precision == BF16 and bf16_missing:
        log.warning("openvino: precision bf16 asked for, but %s: running fp32", bf16_missing)
        precision = FP32
    core = ov.Core()
    model = core.read_model(str(path))
    config = {
        "INFERENCE_PRECISION_HINT": "bf16" if precision == BF16 else "f32",
        # The worker's decode threads share these cores: a thread pinned to a core
        # another thread holds waits for it, and the whole layer waits for that thread.
        "ENABLE_CPU_PINNING": False,
    }
    one = core.compile_model(model, "CPU", {**config, "PERFORMANCE_HINT": "LATENCY"})
    whole_request = one.create_infer_request()

    def whole(pixels: np.ndarray) -> np.ndarray:
        # The request's output buffer is reused by the next call: copy it out.
        return np.array(whole_request.infer([pixels])[0], dtype=np.float32)

    if _cpus() < 2:
        return ConvertedEngine(OPENVINO, classifier, top_k, precision, whole)
    many = core.compile_model(model, "CPU", {**config, "PERFORMANCE_HINT": "THROUGHPUT"})
    requests = [many.create_infer_request()
                for _ in range(many.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))]

    def parts(pieces: list[np.ndarray]) -> list[np.ndarray]:
        for request, piece in zip(requests, pieces, strict=True):
            request.start_async([piece])
        for request in requests:
            request.wait()
        return [np.array(request.get_output_tensor(0).data, dtype=np.float32)
                for request in requests]

    return ConvertedEngine(OPENVINO, classifier, top_k, precision,
                           shared_out(whole, parts, len(requests)))


def onnxruntime_engine(classifier: Classifier, top_k: int, path: Path, precision: str,
                       bf16_missing: str | None = None) -> ConvertedEngine:
    import onnxruntime as ort

    if precision == BF16:
        log.warning("onnxruntime: precision bf16 asked for, but its CPU provider has no "
                    "bfloat16 convolutions: running fp32")
        precision = FP32

    def session(threads: int):
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    streams = _cpus()
    one = session(0)  # 0: one thread per core
    name = one.get_inputs()[0].name

    def whole(pixels: np.ndarray) -> np.ndarray:
        return one.run(None, {name: pixels})[0]

    if streams < 2:
        return ConvertedEngine(ONNXRUNTIME, classifier, top_k, precision, whole)
    single = session(1)  # a session runs concurrent calls: one per stream
    pool = ThreadPoolExecutor(streams, thread_name_prefix="onnxruntime-stream")

    def parts(pieces: list[np.ndarray]) -> list[np.ndarray]:
        return list(pool.map(lambda piece: single.run(None, {name: piece})[0], pieces))

    return ConvertedEngine(ONNXRUNTIME, classifier, top_k, precision,
                           shared_out(whole, parts, streams))


def shared_out(whole: Scores, parts: Callable[[list[np.ndarray]], list[np.ndarray]],
               streams: int) -> Scores:
    """Run a batch with ``whole`` when it is too small to share out (fewer than two
    images per stream), else split in ``streams`` runs of ``parts`` at once."""
    def run(pixels: np.ndarray) -> np.ndarray:
        if len(pixels) < 2 * streams:
            return whole(pixels)
        return np.concatenate(parts(np.array_split(pixels, streams)))
    return run


def _cpus() -> int:
    return len(os.sched_getaffinity(0))


LOADERS: dict[str, Callable[..., ConvertedEngine]] = {
    OPENVINO: openvino_engine,
    ONNXRUNTIME: onnxruntime_engine,
}
