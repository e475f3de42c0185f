"""Convert the TensorFlow engine's frozen graph (model and preprocessing, batch dimension
open) into what OpenVINO and ONNX Runtime load, once per model. Needs TensorFlow; the
engines that run the results do not.

Both start from the frozen ``GraphDef`` rather than from the Keras model or a
SavedModel: it is exactly what the TensorFlow engine runs (so agreement compares like
with like), it holds no variables, and both converters take it as it is
(OpenVINO's ``convert_model`` with a ``GraphDef``, tf2onnx's ``from_graph_def``; with
TensorFlow 2.21 neither accepts the frozen function itself).

OpenVINO's IR is saved with its weights in fp32 (``save_model`` would compress them to
fp16 by default); the precision it computes in is chosen when it is compiled.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ec2_worker.engines import ONNXRUNTIME, OPENVINO

ONNX_OPSET = 17
OPENVINO_FILE = "model.xml"  # beside it, model.bin holds the weights
ONNX_FILE = "model.onnx"


def to_openvino(frozen: Any, directory: Path) -> Path:
    import openvino as ov

    model = ov.convert_model(frozen.graph.as_graph_def())
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / OPENVINO_FILE
    ov.save_model(model, str(path), compress_to_fp16=False)
    return path


def to_onnx(frozen: Any, directory: Path) -> Path:
    import tf2onnx

    # It logs every optimizer pass at INFO; the worker's log needs only the outcome.
    logging.getLogger("tf2onnx").setLevel(logging.WARNING)

    proto, _ = tf2onnx.convert.from_graph_def(
        frozen.graph.as_graph_def(),
        input_names=[tensor.name for tensor in frozen.inputs],
        output_names=[tensor.name for tensor in frozen.outputs],
        opset=ONNX_OPSET,
    )
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / ONNX_FILE
    path.write_bytes(proto.SerializeToString())
    return path


CONVERTERS: dict[str, Callable[[Any, Path], Path]] = {
    OPENVINO: to_openvino,
    ONNXRUNTIME: to_onnx,
}
