"""A small real classifier that tests train themselves, so a test can assert the label.

Images are generated: a coloured shape (disc, square or triangle) of random size and
place on a noisy, randomly tinted background. Each class has its own shape AND its own
hue, with the hue jittered and the background tinted, so the network has to look at more
than the mean colour. Two more classes are the same amber stripes running across or
down the picture: only the orientation tells them apart, so a test can show that a
picture was turned upright (EXIF) by the label it gets. Seeds below ``HELD_OUT_SEED``
train the model; tests classify seeds at or above it, which the model has never seen.

``CLASSES`` are the shapes, which tests cycle through for ordinary images; ``LABELS``
are every class the model answers, in its output order (``labels.txt``).

The model is a tiny Keras CNN at its own input size (not 224) with a ``Rescaling(1/255)``
layer inside, because skyclass feeds custom models RGB float32 in [0, 255]
(ARCHITECTURE.md, "Models and weights"). Training is seeded and takes seconds on two cores.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

CLASSES: tuple[str, ...] = ("red_disc", "green_square", "blue_triangle")
STRIPES: tuple[str, ...] = ("stripes_across", "stripes_down")
LABELS: tuple[str, ...] = CLASSES + STRIPES
HELD_OUT_SEED = 10_000
INPUT_SIZE = (40, 40)  # (height, width) of the tiny model's input

_HUES = {"red_disc": (220, 40, 40), "green_square": (40, 190, 60), "blue_triangle": (50, 70, 230),
         "stripes_across": (235, 165, 30), "stripes_down": (235, 165, 30)}
_TRAIN_PER_CLASS = 240
_EPOCHS = 20


def make_image(label: str, seed: int, size: tuple[int, int] = (96, 80)) -> Image.Image:
    """One image of class ``label`` (width x height ``size``), the same for the same seed."""
    if label not in LABELS:
        raise ValueError(f"unknown class {label!r}; choose one of {LABELS}")
    width, height = size
    rng = np.random.default_rng([seed, LABELS.index(label)])
    tint = rng.uniform(70, 190) + rng.normal(0, 20, size=3)
    background = tint + rng.normal(0, 28, size=(height, width, 3))
    image = Image.fromarray(np.clip(background, 0, 255).astype(np.uint8), "RGB")
    if label in STRIPES:
        _draw_stripes(image, rng, _jittered(rng, label), across=label == "stripes_across")
        return image

    side = int(rng.uniform(0.4, 0.75) * min(width, height))
    left = int(rng.integers(0, width - side + 1))
    top = int(rng.integers(0, height - side + 1))
    box = (left, top, left + side - 1, top + side - 1)
    colour = _jittered(rng, label)
    draw = ImageDraw.Draw(image)
    if label == "red_disc":
        draw.ellipse(box, fill=colour)
    elif label == "green_square":
        draw.rectangle(box, fill=colour)
    else:
        draw.polygon([(left + side // 2, top), (box[2], box[3]), (left, box[3])], fill=colour)
    return image


def _jittered(rng: np.random.Generator, label: str) -> tuple[int, ...]:
    return tuple(int(np.clip(v + rng.normal(0, 18), 0, 255)) for v in _HUES[label])


def _draw_stripes(image: Image.Image, rng: np.random.Generator, colour: tuple[int, ...],
                  across: bool) -> None:
    """Bands of ``colour`` over most of ``image``, running across (horizontal) or down."""
    width, height = image.size
    box_w, box_h = (int(rng.uniform(0.6, 1.0) * side) for side in (width, height))
    left = int(rng.integers(0, width - box_w + 1))
    top = int(rng.integers(0, height - box_h + 1))
    period = int(rng.integers(10, 19))
    phase = int(rng.integers(0, period))
    draw = ImageDraw.Draw(image)
    start, end = (top, top + box_h) if across else (left, left + box_w)
    for at in range(start - phase, end, period):
        first, last = max(at, start), min(at + period // 2, end) - 1
        if last < first:
            continue
        if across:
            draw.rectangle((left, first, left + box_w - 1, last), fill=colour)
        else:
            draw.rectangle((first, top, last, top + box_h - 1), fill=colour)


def image_bytes(
    label: str, seed: int, fmt: str = "JPEG", size: tuple[int, int] = (96, 80)
) -> bytes:
    """``make_image`` encoded as ``fmt`` (any format Pillow writes)."""
    buffer = io.BytesIO()
    make_image(label, seed, size).save(buffer, format=fmt)
    return buffer.getvalue()


@dataclass
class TinyModel:
    model_path: Path
    labels_path: Path
    labels: list[str]
    input_size: tuple[int, int]


def train_tiny_model(out_dir: Path) -> TinyModel:
    """Train (or reuse, if ``out_dir`` already holds one) the tiny model; save
    ``model.keras`` and ``labels.txt`` (one label per line) in ``out_dir``."""
    out_dir = Path(out_dir)
    tiny = TinyModel(
        model_path=out_dir / "model.keras",
        labels_path=out_dir / "labels.txt",
        labels=list(LABELS),
        input_size=INPUT_SIZE,
    )
    if tiny.model_path.exists() and tiny.labels_path.exists():
        return tiny
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    keras.utils.set_random_seed(1234)
    x, y = _dataset(range(_TRAIN_PER_CLASS))
    model = _build(keras)
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    model.fit(x, y, batch_size=32, epochs=_EPOCHS, shuffle=True, verbose=0)

    out_dir.mkdir(parents=True, exist_ok=True)
    tiny.labels_path.write_text("".join(f"{label}\n" for label in LABELS))
    model.save(tiny.model_path)
    return tiny


def _dataset(seeds: range) -> tuple[np.ndarray, np.ndarray]:
    height, width = INPUT_SIZE
    images, labels = [], []
    for seed in seeds:
        for index, label in enumerate(LABELS):
            image = make_image(label, seed).resize((width, height), Image.Resampling.BILINEAR)
            images.append(np.asarray(image, dtype=np.float32))
            labels.append(index)
    return np.stack(images), np.array(labels)


def _build(keras):
    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input(shape=(*INPUT_SIZE, 3)),
            layers.Rescaling(1 / 255),
            layers.Conv2D(12, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Conv2D(24, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Conv2D(32, 3, activation="relu"),
            layers.GlobalMaxPooling2D(),
            layers.Dense(len(LABELS), activation="softmax"),
        ],
        name="tiny_shapes",
    )
