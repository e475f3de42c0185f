"""The worker's inference engine against ``model.predict`` and a plain ``tf.function``.

    python -m bench.engine [--batches 1,8,32] [--rounds 2] [--images 64] [--agreement 1000]

Speed: ResNet-50 built with ``weights=None`` and random values in the biases and
batch-norm statistics that it leaves constant (TIMING-ONLY: speed does not depend on
the weight values, as long as none is a constant TensorFlow could fold away; its labels
mean nothing), the same model for every way and precision, at each batch size, in fp32
and bf16, each way
of running it measured in turn within each round, so the shared machine's noise falls on
all of them alike; the best round counts. ``plain tf.function`` is the model and its
preprocessing in a ``tf.function`` and nothing else, the arithmetic limit the worker is
held to (in bf16, under Keras' ``mixed_bfloat16`` policy); the engine is the worker's
frozen graph (bf16: rewritten by TensorFlow's oneDNN bfloat16 pass) plus the top-k
labelling a result needs.

Agreement: bf16 against fp32 top-1 on real trained models over held-out images they have
never seen: the tests' tiny CNN (trained on generated shapes, wide margins), and a small
residual network with batch normalization in every block (the structure of ResNet-50
that the bf16 rewrite folds), trained for only two epochs on the same shapes so that
many of its answers sit close to a decision boundary, where bf16 rounding would show.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from bench.support import TINY_MODEL_CACHE, randomise_constant_weights  # noqa: E402
from ec2_worker.engine import (  # noqa: E402
    BF16,
    FP32,
    InferenceEngine,
    as_mixed_bfloat16,
    bf16_unsupported_reason,
)
from ec2_worker.model import (  # noqa: E402
    Classifier,
    custom_classifier,
    resnet50_classifier,
)
from testbed.tiny_model import (  # noqa: E402
    CLASSES,
    HELD_OUT_SEED,
    INPUT_SIZE,
    make_image,
    train_tiny_model,
)

METHODS = ("model.predict", "plain tf.function", "engine")


def plain_function(model, preprocess) -> Callable[[np.ndarray], np.ndarray]:
    """The model and its preprocessing in a ``tf.function``, nothing else."""
    import tensorflow as tf

    @tf.function
    def run(pixels):
        return model(preprocess(pixels), training=False)

    return lambda pixels: run(pixels).numpy()


def runners(classifier: Classifier, precision: str) -> dict[str, Callable[[np.ndarray], object]]:
    model = as_mixed_bfloat16(classifier.model) if precision == BF16 else classifier.model
    engine = InferenceEngine(classifier, top_k=5, precision=precision)
    return {
        "model.predict": lambda x: model.predict(
            classifier.preprocess(x), batch_size=len(x), verbose=0),
        "plain tf.function": plain_function(model, classifier.preprocess),
        "engine": engine.predict,
    }


def images_per_second(run: Callable[[np.ndarray], object], batch: int, images: int) -> float:
    """Throughput over at least ``images`` images (and 3 calls), after one warm-up call."""
    pixels = np.random.default_rng(batch).uniform(0, 255, (batch, 224, 224, 3)).astype(
        np.float32)
    run(pixels)
    calls = max(3, -(-images // batch))
    start = time.perf_counter()
    for _ in range(calls):
        run(pixels)
    return calls * batch / (time.perf_counter() - start)


def speed(precisions: list[str], batches: list[int], rounds: int,
          images: int) -> dict[tuple[str, str, int], float]:
    classifier = resnet50_classifier(None)
    randomise_constant_weights(classifier.model)
    ways = {precision: runners(classifier, precision) for precision in precisions}
    best: dict[tuple[str, str, int], float] = {}
    for _ in range(rounds):
        for batch in batches:
            for precision in precisions:
                for method in METHODS:
                    rate = images_per_second(ways[precision][method], batch, images)
                    key = (precision, method, batch)
                    best[key] = max(best.get(key, 0.0), rate)
    return best


def residual_bn_model(directory: Path) -> tuple[Path, Path]:
    """A small ResNet-style CNN (conv + batch norm + ReLU, one residual block), trained
    two epochs on the tiny model's shapes, saved as ``model.keras`` and ``labels.txt``."""
    import keras

    layers = keras.layers
    keras.utils.set_random_seed(7)

    def conv_bn(x, filters, strides=1, relu=True):
        x = layers.Conv2D(filters, 3, strides=strides, padding="same")(x)
        x = layers.BatchNormalization()(x)
        return layers.ReLU()(x) if relu else x

    inputs = keras.Input(shape=(*INPUT_SIZE, 3))
    x = conv_bn(layers.Rescaling(1 / 255)(inputs), 16)
    x = conv_bn(x, 32, strides=2)
    x = layers.ReLU()(layers.Add()([x, conv_bn(conv_bn(x, 32), 32, relu=False)]))
    x = conv_bn(x, 64, strides=2)
    outputs = layers.Dense(len(CLASSES), activation="softmax")(
        layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, outputs, name="residual_bn_shapes")
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss="sparse_categorical_crossentropy")
    labels = [i % len(CLASSES) for i in range(600)]
    model.fit(shape_pixels(labels, seed=0), np.array(labels), batch_size=32, epochs=2,
              verbose=0)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "labels.txt").write_text("".join(f"{c}\n" for c in CLASSES))
    model.save(directory / "model.keras")
    return directory / "model.keras", directory / "labels.txt"


def shape_pixels(labels: list[int], seed: int) -> np.ndarray:
    """The tiny model's generated shapes, one per label in ``labels`` (a class index),
    seeds from ``seed`` on: below ``HELD_OUT_SEED`` to train, above it to test."""
    height, width = INPUT_SIZE
    return np.stack([
        np.asarray(make_image(CLASSES[label], seed + i).resize((width, height)),
                   dtype=np.float32)
        for i, label in enumerate(labels)])


def agreement(classifier: Classifier, count: int) -> tuple[int, int, float, float]:
    """(same top-1, images, fp32 accuracy, share of images whose fp32 top two scores are
    within 0.1) of bf16 against fp32 on held-out images."""
    truth = [i % len(CLASSES) for i in range(count)]
    pixels = shape_pixels(truth, HELD_OUT_SEED + 30_000)
    exact = InferenceEngine(classifier, 2, FP32).predict(pixels)
    fast = InferenceEngine(classifier, 1, BF16).predict(pixels)
    same = sum(a[0].label == b[0].label for a, b in zip(exact, fast, strict=True))
    right = sum(a[0].label == CLASSES[t] for a, t in zip(exact, truth, strict=True))
    close = sum(a[0].score - a[1].score < 0.1 for a in exact)
    return same, count, right / count, close / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", default="1,8,32")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--images", type=int, default=32, help="images per measurement")
    parser.add_argument("--agreement", type=int, default=1000, help="held-out images")
    args = parser.parse_args()
    batches = [int(b) for b in args.batches.split(",")]

    missing = bf16_unsupported_reason()
    precisions = [FP32] if missing else [FP32, BF16]
    if missing:
        print(f"bf16 not measured: {missing}")
    rates = speed(precisions, batches, args.rounds, args.images)

    print("ResNet-50, random weights (TIMING-ONLY), images/s, best of "
          f"{args.rounds} interleaved rounds")
    print(f"{'precision':9} {'batch':>5} " + " ".join(f"{m:>17}" for m in METHODS)
          + f" {'engine/plain':>12}")
    for precision in precisions:
        for batch in batches:
            row = [rates[(precision, m, batch)] for m in METHODS]
            print(f"{precision:9} {batch:5d} " + " ".join(f"{r:17.1f}" for r in row)
                  + f" {row[2] / row[1]:11.2f}x")
    if BF16 in precisions:
        for batch in batches:
            ratio = rates[(BF16, "engine", batch)] / rates[(FP32, "engine", batch)]
            print(f"engine bf16 / engine fp32 at batch {batch:2d}: {ratio:.2f}x")
        tiny = train_tiny_model(TINY_MODEL_CACHE)
        with tempfile.TemporaryDirectory() as tmp:
            models = {
                "tiny trained CNN": (tiny.model_path, tiny.labels_path),
                "residual CNN with batch norm, 2 epochs": residual_bn_model(Path(tmp)),
            }
            for name, (model_path, labels_path) in models.items():
                classifier = custom_classifier(model_path, str(labels_path))
                same, count, accuracy, close = agreement(classifier, args.agreement)
                print(f"bf16 vs fp32 top-1 agreement, {name} ({INPUT_SIZE[1]}x"
                      f"{INPUT_SIZE[0]}), {count} held-out images: {same}/{count} = "
                      f"{100 * same / count:.1f}% (fp32 accuracy {100 * accuracy:.1f}%; "
                      f"top two within 0.1 on {100 * close:.1f}%)")


if __name__ == "__main__":
    main()
