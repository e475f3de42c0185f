"""Image bytes for tests: format stubs (enough for the API and ingest to sniff the type,
not a picture), and the tiny model's held-out pictures (testbed/tiny_model.py), which it
classifies right. The corpus of bad and awkward files is tests/support/corpus.py."""

from __future__ import annotations

import numpy as np

from testbed.tiny_model import CLASSES, HELD_OUT_SEED, INPUT_SIZE, image_bytes, make_image

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64


def held_out_images(per_class: int, first: int = 0) -> list[tuple[str, bytes]]:
    """``per_class`` JPEGs of each shape the model has never seen: (true label, bytes)."""
    return [
        (label, image_bytes(label, HELD_OUT_SEED + first + i))
        for label in CLASSES
        for i in range(per_class)
    ]


def named(images: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """Each image named ``{label}-{index}.jpg``: (name, bytes), as a job uploads them."""
    return [(f"{label}-{i}.jpg", body) for i, (label, body) in enumerate(images)]


def held_out_pixels(count: int, first: int) -> np.ndarray:
    """``count`` held-out pictures at the tiny model's input size, as the float32 batch
    an engine takes (the classes in turn)."""
    height, width = INPUT_SIZE
    images = [make_image(CLASSES[i % len(CLASSES)], HELD_OUT_SEED + first + i)
              .resize((width, height)) for i in range(count)]
    return np.stack([np.asarray(image, dtype=np.float32) for image in images])
