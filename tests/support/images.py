"""Image bytes for tests: format stubs (enough for the API and ingest to sniff the type,
not a picture), and the tiny model's held-out pictures (testbed/tiny_model.py), which it
classifies right. The corpus of bad and awkward files is tests/support/corpus.py."""

from __future__ import annotations

from testbed.tiny_model import CLASSES, HELD_OUT_SEED, image_bytes

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
