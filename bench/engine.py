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

Agreement: bf16 against fp32 top-1 on a real trained model (the tests' tiny CNN, trained
on generated shapes) over held-out images it has never seen.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

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
from tests.support.tiny_model import (  # noqa: E402
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


def agreement(count: int) -> tuple[int, int, float]:
    """(same top-1, images, fp32 accuracy) of bf16 against fp32 on held-out images."""
    tiny = train_tiny_model(TINY_MODEL_CACHE)
    classifier = custom_classifier(tiny.model_path, str(tiny.labels_path))
    height, width = INPUT_SIZE
    truth = [CLASSES[i % len(CLASSES)] for i in range(count)]
    pixels = np.stack([
        np.asarray(make_image(label, HELD_OUT_SEED + 30_000 + i).resize((width, height)),
                   dtype=np.float32)
        for i, label in enumerate(truth)])
    fp32 = [top[0].label for top in InferenceEngine(classifier, 1, FP32).predict(pixels)]
    bf16 = [top[0].label for top in InferenceEngine(classifier, 1, BF16).predict(pixels)]
    same = sum(a == b for a, b in zip(fp32, bf16, strict=True))
    right = sum(a == b for a, b in zip(fp32, truth, strict=True))
    return same, count, right / count


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
        same, count, accuracy = agreement(args.agreement)
        print(f"bf16 vs fp32 top-1 agreement, tiny trained CNN ({INPUT_SIZE[1]}x{INPUT_SIZE[0]}"
              f"), {count} held-out images: {same}/{count} = {100 * same / count:.1f}% "
              f"(fp32 accuracy {100 * accuracy:.1f}%)")


if __name__ == "__main__":
    main()
