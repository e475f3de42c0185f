"""The worker's engines side by side: TensorFlow (the frozen graph), OpenVINO and ONNX
Runtime, against ``model.predict`` and a plain ``tf.function``; their start-up; and
their agreement with TensorFlow.

    python -m bench.engine [--batches 1,8,32] [--rounds 4] [--images 32]
                           [--agreement 1000] [--startup-rounds 2]

Speed: ResNet-50 built with ``weights=None`` and random values in the biases and
batch-norm statistics that it leaves constant (TIMING-ONLY: speed does not depend on
the weight values, as long as none is a constant an engine could fold away; its labels
mean nothing), the same model for every way and precision, at each batch size, in fp32
and (where the CPU has it) bf16. Every way of running it is measured in turn within
each round, so the shared machine's noise falls on all of them alike; each way's best
and median round are printed. ``plain tf.function`` is the model and its preprocessing
in a ``tf.function`` and nothing else (in bf16, under Keras' ``mixed_bfloat16``
policy); ``tensorflow`` is the worker's frozen graph (bf16: TensorFlow's oneDNN
rewrite); ``openvino`` and ``onnxruntime`` run its conversion as the worker does
(``ec2_worker.engines``), each with the top-k labelling a result needs. ONNX Runtime's
CPU provider has no bf16, so it has no bf16 row. Then what ``auto`` would choose from
these medians, and its speed over the best engine's at each batch size.

Start-up: each engine's time to ready in a fresh process, as a worker starting from a
prepared cache (the AMI bake's, or a first start's): importing its package, hashing the
model file, loading (TensorFlow: Keras model + freeze; the others: read and compile the
conversion), warming up at batch 1 and 32.

Agreement with TensorFlow fp32, by the worker's rule (same top-1 on every image, softmax
within the tolerance): on the tests' tiny CNN and on a small residual network with batch
norm (trained two epochs, so that many answers are close calls), over held-out images
they have never seen; and on ResNet-50's graph with random weights and its batch norm
recalibrated (``bench.support.recalibrate_batch_norm``), so that its softmax is spread
as a trained network's is, over the worker's fixed inputs and as many more.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from bench.support import (  # noqa: E402
    TINY_MODEL_CACHE,
    cpu_line,
    plain_function,
    randomise_constant_weights,
    recalibrate_batch_norm,
    timing_model,
)
from ec2_worker.engine import (  # noqa: E402
    BF16,
    FP32,
    InferenceEngine,
    as_mixed_bfloat16,
    bf16_unsupported_reason,
)
from ec2_worker.engines import ONNXRUNTIME, OPENVINO, PEERS, TENSORFLOW  # noqa: E402
from ec2_worker.engines.agreement import compare, fixed_inputs  # noqa: E402
from ec2_worker.engines.choice import choose  # noqa: E402
from ec2_worker.engines.convert import CONVERTERS  # noqa: E402
from ec2_worker.engines.runtimes import LOADERS, missing_package  # noqa: E402
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

BASELINES = ("model.predict", "plain tf.function")
ENGINES = (TENSORFLOW, *PEERS)


def engines_for(classifier: Classifier, precision: str, directory: Path,
                top_k: int = 5) -> dict[str, object]:
    """Each installed engine on ``classifier`` in ``precision``, the peers on a
    conversion made in ``directory`` (ONNX Runtime only in fp32, the one it has)."""
    tensorflow = InferenceEngine(classifier, top_k=top_k, precision=precision)
    engines: dict[str, object] = {TENSORFLOW: tensorflow}
    frozen = InferenceEngine(classifier, top_k=top_k, precision=FP32).frozen
    for name in PEERS:
        if missing_package(name) or (name == ONNXRUNTIME and precision == BF16):
            continue
        path = directory / name / ("model.xml" if name == OPENVINO else "model.onnx")
        if not path.exists():
            path = CONVERTERS[name](frozen, directory / name)
        engines[name] = LOADERS[name](classifier, top_k, path, precision)
    return engines


def runners(classifier: Classifier, precision: str, directory: Path
            ) -> dict[str, Callable[[np.ndarray], object]]:
    model = as_mixed_bfloat16(classifier.model) if precision == BF16 else classifier.model
    ways: dict[str, Callable[[np.ndarray], object]] = {
        "model.predict": lambda x: model.predict(
            classifier.preprocess(x), batch_size=len(x), verbose=0),
        "plain tf.function": plain_function(model, classifier.preprocess),
    }
    for name, engine in engines_for(classifier, precision, directory).items():
        ways[name] = engine.predict
    return ways


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


def speed(precisions: list[str], batches: list[int], rounds: int, images: int,
          directory: Path) -> dict[tuple[str, str, int], list[float]]:
    """Every round's images/s of each (precision, way, batch)."""
    classifier = resnet50_classifier(None)
    randomise_constant_weights(classifier.model)
    ways = {precision: runners(classifier, precision, directory) for precision in precisions}
    rates: dict[tuple[str, str, int], list[float]] = {}
    for _ in range(rounds):
        for batch in batches:
            for precision in precisions:
                for name, run in ways[precision].items():
                    rate = images_per_second(run, batch, images)
                    rates.setdefault((precision, name, batch), []).append(rate)
    return rates


def print_speed(rates: dict[tuple[str, str, int], list[float]], precisions: list[str],
                batches: list[int], rounds: int) -> None:
    print(f"ResNet-50, random weights (TIMING-ONLY), images/s, best / median of {rounds} "
          "interleaved rounds")
    columns = [*BASELINES, *ENGINES]
    print(f"{'precision':9} {'batch':>5} " + " ".join(f"{c:>17}" for c in columns)
          + f" {'best peer/TF':>12}")
    for precision in precisions:
        for batch in batches:
            cells, medians = [], {}
            for name in columns:
                found = rates.get((precision, name, batch))
                if found:
                    medians[name] = float(np.median(found))
                    cells.append(f"{max(found):8.1f} /{medians[name]:6.1f}")
                else:
                    cells.append(f"{'-':>17}")
            peers = [medians[name] for name in PEERS if name in medians]
            ratio = f"{max(peers) / medians[TENSORFLOW]:11.2f}x" if peers else f"{'-':>12}"
            print(f"{precision:9} {batch:5d} " + " ".join(cells) + f" {ratio}")
    for precision in precisions:
        medians = {name: {batch: float(np.median(rates[(precision, name, batch)]))
                          for batch in batches}
                   for name in ENGINES if (precision, name, batches[0]) in rates}
        chosen, reason = choose(medians)
        best = {batch: max(r[batch] for r in medians.values()) for batch in batches}
        versus = ", ".join(f"batch {batch}: {medians[chosen][batch] / best[batch]:.2f}x"
                           for batch in batches)
        print(f"auto, {precision}: {chosen} ({reason}); its median over the best engine's, "
              f"{versus}")
    if BF16 in precisions:
        for batch in batches:
            tf_fp32 = float(np.median(rates[(FP32, TENSORFLOW, batch)]))
            ratios = ", ".join(
                f"{name} {float(np.median(rates[(BF16, name, batch)])) / tf_fp32:.2f}x"
                for name in (TENSORFLOW, OPENVINO) if (BF16, name, batch) in rates)
            print(f"bf16 over tensorflow fp32 at batch {batch:2d} (medians): {ratios}")


_STARTUP_CHILD = """
import json, sys, time
started = time.perf_counter()
name, precision, model, labels = sys.argv[1:5]
__import__(name)
imported = time.perf_counter() - started
from ec2_worker.engines.build import build_engine
from skyclass.runtime.settings import Settings
settings = Settings.from_env({}, model=model, labels=labels, engine=name, precision=precision)
engine, report = build_engine(settings, gpu=False, batch_sizes={1, 32})
print(json.dumps({"engine": report.engine, "precision": report.precision, "import": imported,
                  **report.startup, "ready": time.perf_counter() - started}))
"""


def startup(precisions: list[str], rounds: int) -> None:
    """Each engine's time to ready in a fresh process, from a prepared cache."""
    from ec2_worker.engines.build import build_engine
    from skyclass.runtime.settings import Settings

    model, labels = timing_model()
    pairs = [(name, precision) for precision in precisions for name in ENGINES
             if not (name == ONNXRUNTIME and precision == BF16) and
             (name == TENSORFLOW or not missing_package(name))]
    for name, precision in pairs:  # the cache a bake or a first start leaves
        if name != TENSORFLOW:
            build_engine(Settings.from_env({}, model=str(model), labels=str(labels),
                                           engine=name, precision=precision),
                         gpu=False, batch_sizes={1, 32})
    found: dict[tuple[str, str], list[dict[str, float]]] = {}
    for _ in range(rounds):
        for name, precision in pairs:
            done = subprocess.run(
                [sys.executable, "-c", _STARTUP_CHILD, name, precision, str(model), str(labels)],
                capture_output=True, text=True, timeout=600,
                env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
            if done.returncode != 0:
                raise RuntimeError(f"start-up of {name} failed:\n{done.stderr[-2000:]}")
            found.setdefault((name, precision), []).append(
                json.loads(done.stdout.strip().splitlines()[-1]))
    steps = ("import", "hash", "load", "warm_up", "ready")
    print(f"Start-up, ResNet-50 (timing model, .keras), fresh process, cache prepared, "
          f"seconds, median of {rounds} interleaved rounds")
    print(f"{'engine':12} {'precision':9} " + " ".join(f"{s:>8}" for s in steps)
          + f" {'ready/TF':>9}")
    for name, precision in pairs:
        runs = found[(name, precision)]
        assert all(run["engine"] == name for run in runs), runs
        median = {step: float(np.median([run.get(step, 0.0) for run in runs]))
                  for step in steps}
        reference = float(np.median([run["ready"] for run in found[(TENSORFLOW, precision)]]))
        print(f"{name:12} {runs[0]['precision']:9} "
              + " ".join(f"{median[s]:8.2f}" for s in steps)
              + f" {median['ready'] / reference:8.2f}x")


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


def agreement(name: str, classifier: Classifier, pixels: np.ndarray, precisions: list[str],
              directory: Path, truth: list[int] | None = None) -> None:
    """One line per engine and precision: how it agrees with TensorFlow fp32."""
    reference = InferenceEngine(classifier, 2, FP32).scores(pixels)
    top_two = np.sort(reference, axis=1)[:, -2:]
    close = float(np.mean(top_two[:, 1] - top_two[:, 0] < 0.1))
    about = f"top two within 0.1 on {100 * close:.1f}%"
    if truth is not None:
        accuracy = float(np.mean(np.argmax(reference, axis=1) == np.array(truth)))
        about = f"fp32 accuracy {100 * accuracy:.1f}%, " + about
    print(f"{name}, {len(pixels)} images ({about}):")
    for precision in precisions:
        for engine_name, engine in engines_for(classifier, precision, directory, 2).items():
            if engine_name == TENSORFLOW and precision == FP32:
                continue  # the reference itself
            found = compare(reference, engine.scores(pixels), engine.precision)
            print(f"  {engine_name:12} {engine.precision:5} top-1 {found.same_top1}/"
                  f"{found.inputs} = {100 * found.same_top1 / found.inputs:5.1f}%, softmax "
                  f"within {found.max_difference:.2g} (tolerance {found.tolerance:g}): "
                  f"{'passes' if found.passed else 'FAILS'}")


def agreements(precisions: list[str], count: int, directory: Path) -> None:
    truth = [i % len(CLASSES) for i in range(count)]
    held_out = shape_pixels(truth, HELD_OUT_SEED + 30_000)
    tiny = train_tiny_model(TINY_MODEL_CACHE)
    models = {
        "tiny trained CNN": (tiny.model_path, tiny.labels_path),
        "residual CNN with batch norm, 2 epochs": residual_bn_model(directory / "residual"),
    }
    for index, (name, (model_path, labels_path)) in enumerate(models.items()):
        classifier = custom_classifier(model_path, str(labels_path))
        agreement(name, classifier, held_out, precisions, directory / f"model{index}", truth)
    resnet = resnet50_classifier(None)
    randomise_constant_weights(resnet.model)
    inputs = fixed_inputs((224, 224))
    recalibrate_batch_norm(resnet.model, inputs, resnet.preprocess)
    more = fixed_inputs((224, 224), 64)[16:]  # the same kinds of input, not the same ones
    agreement("ResNet-50 graph, random weights, batch norm recalibrated", resnet,
              np.concatenate([inputs, more]), precisions, directory / "resnet50")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", default="1,8,32")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--images", type=int, default=32, help="images per measurement")
    parser.add_argument("--agreement", type=int, default=1000, help="held-out images")
    parser.add_argument("--startup-rounds", type=int, default=2)
    args = parser.parse_args()
    batches = [int(b) for b in args.batches.split(",")]

    print(cpu_line())
    missing = bf16_unsupported_reason()
    precisions = [FP32] if missing else [FP32, BF16]
    if missing:
        print(f"bf16 not measured: {missing}")
    for name in PEERS:
        if missing_package(name):
            print(f"{name} not measured: {missing_package(name)}")
    with tempfile.TemporaryDirectory(prefix="bench-engine-") as tmp:
        rates = speed(precisions, batches, args.rounds, args.images, Path(tmp) / "timing")
        print_speed(rates, precisions, batches, args.rounds)
        startup(precisions, args.startup_rounds)
        agreements(precisions, args.agreement, Path(tmp))


if __name__ == "__main__":
    main()
