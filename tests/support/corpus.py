"""A corpus of bad and awkward inputs, each with what skyclass must do with it.

Every case is one file and an expectation: through ``POST /classify`` (the HTTP status,
and for 200 the result's status) and through the drop folder (the result's status).
Refused requests store nothing; the drop folder has no one to answer, so there the same
file gets a ``failed`` result. A ``label`` means the result must carry the image's true
label; ``None`` where the conversion loses the cue the tiny model relies on (colour) and
only ``done`` is checked. docs/reliability.md is the table of these cases.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass

from PIL import Image

from testbed.tiny_model import HELD_OUT_SEED, make_image

SEED = HELD_OUT_SEED + 7000


@dataclass(frozen=True)
class Case:
    name: str
    body: bytes
    classify_status: int  # HTTP status of POST /classify (4xx: refused, nothing stored)
    result: str  # the result's status: the drop folder's, and /classify's when it is 200
    label: str | None = None  # the true label a done result must carry
    reason: str | None = None  # words the failed result's reason must contain


def _save(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _exif_rotated(seed: int) -> bytes:
    """Stripes running across, stored on their side (so the stored pixels run down) with
    EXIF orientation 6 ("rotate 90° CW to view"): only a decoder that turns the picture
    upright sees the stripes across; one that ignores the tag sees ``stripes_down``."""
    upright = make_image("stripes_across", seed)
    stored = upright.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    return _save(stored, "JPEG", exif=exif.tobytes())


def _animated_gif(label: str, seed: int) -> bytes:
    first = make_image(label, seed)
    other = make_image("green_square" if label != "green_square" else "red_disc", seed + 1)
    buffer = io.BytesIO()
    first.save(buffer, format="GIF", save_all=True, append_images=[other], duration=100, loop=0)
    return buffer.getvalue()


def _png_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """A tiny PNG whose header claims 10 gigapixels (a decompression bomb)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00" * 64)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels)
            + chunk(b"IEND", b""))


def corpus() -> list[Case]:
    red = make_image("red_disc", SEED)
    blue = make_image("blue_triangle", SEED + 1)
    green = make_image("green_square", SEED + 2)
    rgba = blue.convert("RGBA")
    rgba.putalpha(200)
    jpeg = _save(red, "JPEG")
    return [
        Case("empty.jpg", b"", 400, "failed", reason="empty"),
        Case("notes.jpg", b"these are my notes, not a picture\n" * 8, 415, "failed",
             reason="not an image"),
        Case("drawing.svg", b'<svg xmlns="http://www.w3.org/2000/svg"/>', 415, "failed",
             reason="not an image"),
        Case("truncated.jpg", jpeg[: len(jpeg) // 2], 200, "failed", reason="truncated"),
        Case("bomb.png", _png_bomb(), 200, "failed", reason="above the limit"),
        Case("rotated.jpg", _exif_rotated(SEED + 3), 200, "done", label="stripes_across"),
        Case("animated.gif", _animated_gif("blue_triangle", SEED + 4), 200, "done",
             label="blue_triangle"),
        Case("palette.png", _save(red.convert("P", palette=Image.Palette.ADAPTIVE), "PNG"),
             200, "done", label="red_disc"),
        Case("alpha.png", _save(rgba, "PNG"), 200, "done", label="blue_triangle"),
        Case("cmyk.jpg", _save(green.convert("CMYK"), "JPEG"), 200, "done",
             label="green_square"),
        Case("grey16.png", _save(red.convert("L").convert("I;16"), "PNG"), 200, "done"),
        Case("grey.jpg", _save(red.convert("L"), "JPEG"), 200, "done"),
        Case("image.webp", _save(blue, "WEBP"), 200, "done", label="blue_triangle"),
        Case("image.bmp", _save(green, "BMP"), 200, "done", label="green_square"),
        Case("image.tiff", _save(red, "TIFF"), 200, "done", label="red_disc"),
        Case("huge-canvas.png", _save(Image.new("RGB", (8000, 6000), (40, 190, 60)), "PNG"),
             200, "failed", reason="above the limit"),
    ]
