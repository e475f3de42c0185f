"""Turn the engine's inference function into one constant graph, optionally rewritten to
bfloat16 by TensorFlow's own oneDNN pass.

A ``tf.function`` over a Keras model reads every weight from a variable on every call,
so TensorFlow cannot fold anything into the weights. Frozen (variables turned into
constants), Grappler folds each batch normalization into the convolution before it;
in fp32 that runs as fast as the plain function (oneDNN fuses most of the work anyway)
with the same results to float rounding.

For bfloat16 on a CPU, the frozen graph goes through Grappler's
``auto_mixed_precision_onednn_bfloat16`` rewrite (the bfloat16 pass of TensorFlow's
oneDNN build). It casts convolutions, matmuls and their element-wise
neighbours to bfloat16 and leaves the numerically sensitive ops in float32. oneDNN's
lists let a softmax follow its input into bfloat16, which would leave the scores three
significant digits; the softmax is kept in float32 here (through the variables
TensorFlow's lists read, for this call only). Because the weights are constants,
TensorFlow folds their casts when the
graph first runs, so the weights are stored once in bfloat16 instead of being cast on
every call as Keras' ``mixed_bfloat16`` policy does. The rewrite is run once here, on this
graph only, not switched on for the whole process.

These use TensorFlow's graph utilities (``convert_variables_to_constants_v2``, Grappler's
``OptimizeGraph``, ``wrap_function``), the same ones TF-TRT and tf2onnx use; the
engine's tests exercise them on the pinned TensorFlow.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any

log = logging.getLogger(__name__)

_BF16_PASS = "auto_mixed_precision_onednn_bfloat16"
# Ops the pass must leave in float32 that its oneDNN lists would convert.
_KEEP_FLOAT32 = "Softmax"
_LISTS = "TF_AUTO_MIXED_PRECISION_GRAPH_REWRITE_"


def freeze(function: Any) -> Any:
    """The concrete function ``function`` with its variables turned into constants; it
    takes tensors and returns the list of its outputs."""
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    return convert_variables_to_constants_v2(function)


def rewrite_bfloat16(frozen: Any) -> tuple[Any, int]:
    """``frozen`` rewritten by Grappler's oneDNN bfloat16 pass, and how many of its
    operations compute in bfloat16 (0 means the pass did nothing, e.g. with
    ``TF_ENABLE_ONEDNN_OPTS=0``)."""
    import tensorflow as tf
    from tensorflow.core.protobuf import config_pb2, meta_graph_pb2
    from tensorflow.python.grappler import tf_optimizer

    graph = frozen.graph
    meta = tf.compat.v1.train.export_meta_graph(graph_def=graph.as_graph_def(), graph=graph)
    fetch = meta_graph_pb2.CollectionDef()
    fetch.node_list.value.extend(tensor.name for tensor in frozen.outputs)
    meta.collection_def["train_op"].CopyFrom(fetch)  # what Grappler must keep
    config = config_pb2.ConfigProto()
    rewrite = config.graph_options.rewrite_options
    # Only the cast to bfloat16: TensorFlow's own optimizer folds the weights' casts into
    # constants when the function first runs (folding here as well made that first run
    # 3.5x slower, for no gain in speed).
    rewrite.optimizers.append(_BF16_PASS)
    rewrite.min_graph_nodes = -1
    with _environment({f"{_LISTS}INFERLIST_REMOVE": _KEEP_FLOAT32,
                       f"{_LISTS}DENYLIST_ADD": _KEEP_FLOAT32}):
        optimized = tf_optimizer.OptimizeGraph(config, meta)
    return (wrap(optimized, [t.name for t in frozen.inputs], frozen.outputs[0].name),
            bfloat16_ops(optimized))


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """``values`` in the environment (which TensorFlow's C++ reads) for the block only."""
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def wrap(graph_def: Any, inputs: list[str], output: str) -> Any:
    """A function running ``graph_def`` from the tensors named ``inputs`` to ``output``;
    like a frozen function, it takes tensors and returns a list (of the one output)."""
    import tensorflow as tf

    def load() -> None:
        tf.compat.v1.import_graph_def(graph_def, name="")

    loaded = tf.compat.v1.wrap_function(load, [])
    find = loaded.graph.as_graph_element
    return loaded.prune([find(name) for name in inputs], [find(output)])


def bfloat16_ops(graph_def: Any) -> int:
    """How many compute operations (not constants) of ``graph_def`` output bfloat16."""
    from tensorflow.core.framework import types_pb2

    return sum(1 for node in graph_def.node
               if node.op not in ("Const", "Identity")
               and "T" in node.attr and node.attr["T"].type == types_pb2.DT_BFLOAT16)
