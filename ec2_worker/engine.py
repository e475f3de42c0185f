"""Predict: a batch of decoded images -> the top-k predictions for each.

The middle step of the worker's pipeline. Inference runs through one compiled
``tf.function`` whose batch dimension is left open, so every batch size reuses a single
trace; ``model.predict`` would rebuild its data pipeline on every call, which costs more
than the inference itself for the small batches a worker sees. The function is traced
and run once at start (``warm_up``), so the first real batch is not slow.
"""

from __future__ import annotations

import numpy as np

from ec2_worker.model import Classifier
from skyclass.contracts import Prediction


class InferenceEngine:
    def __init__(self, classifier: Classifier, top_k: int) -> None:
        import tensorflow as tf

        self.classifier = classifier
        self.top_k = min(top_k, len(classifier.labels))
        height, width = classifier.input_size
        model, preprocess = classifier.model, classifier.preprocess

        @tf.function(input_signature=[tf.TensorSpec([None, height, width, 3], tf.float32)])
        def probabilities(pixels):
            return model(preprocess(pixels), training=False)

        self._probabilities = probabilities

    def warm_up(self) -> None:
        height, width = self.classifier.input_size
        self.predict(np.zeros((1, height, width, 3), np.float32))

    def predict(self, pixels: np.ndarray) -> list[list[Prediction]]:
        """``pixels``: (n, height, width, 3) RGB float32 in [0, 255]. One list of
        ``top_k`` predictions, best first, per image, in input order."""
        if len(pixels) == 0:
            return []
        scores = self._probabilities(pixels).numpy()
        best = np.argsort(-scores, axis=1, kind="stable")[:, : self.top_k]
        labels = self.classifier.labels
        return [
            [Prediction(label=labels[i][1], wnid=labels[i][0], score=float(row[i])) for i in top]
            for row, top in zip(scores, best, strict=True)
        ]
