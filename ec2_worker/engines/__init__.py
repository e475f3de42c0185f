"""The engine that runs the worker's model: TensorFlow, OpenVINO or ONNX Runtime.

The Keras model stays the source of truth. TensorFlow's engine (``ec2_worker.engine``)
freezes it, with its preprocessing, into one graph; OpenVINO and ONNX Runtime run a
conversion of that very graph (``convert``), made once per model and cached next to it,
keyed by the model file's hash (``source``), at the AMI bake or at the first start.

A converted model is used only if it agrees with TensorFlow on a fixed set of inputs:
the same top-1 on every one, and softmax scores within a stated tolerance
(``agreement``). ``SKYCLASS_ENGINE=auto`` measures every engine that agrees on this
machine, at the batch sizes the worker uses, and keeps the fastest; an engine is only
chosen over TensorFlow when it is faster at every one of those batch sizes (``choice``).
The measurement is recorded per machine (``records``), so later starts load the chosen
engine without TensorFlow. Whatever fails (a missing package, a conversion error,
disagreement), the worker says so and runs TensorFlow (``build``).

    SKYCLASS_ENGINE=auto|tensorflow|openvino|onnxruntime
    python -m ec2_worker.engines      # the bake step: convert, check, measure, record
"""

from __future__ import annotations

from ec2_worker.engine import TENSORFLOW

AUTO = "auto"
OPENVINO = "openvino"
ONNXRUNTIME = "onnxruntime"
# The engines that run a converted model, in the order ``auto`` lists them.
PEERS = (OPENVINO, ONNXRUNTIME)
ENGINES = (AUTO, TENSORFLOW, *PEERS)

__all__ = ["AUTO", "ENGINES", "ONNXRUNTIME", "OPENVINO", "PEERS", "TENSORFLOW"]
