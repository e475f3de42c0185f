"""Decode: image bytes -> an RGB float32 array at the model's input size.

The first step of the worker's pipeline (decode -> predict -> encode). The bytes come
from anyone who can upload, so everything here assumes hostile input: only the formats
we name are opened, the pixel count is read from the header and checked before a single
pixel is decoded (decompression bombs), and every way Pillow can fail becomes an
``InvalidImageError`` whose message a person understands; the worker turns that into a
``failed`` result.

Then the image is made to look like a photo the model expects: EXIF orientation
applied, any colour mode (grey, palette, CMYK, 16-bit, alpha composited on white) made
RGB, the first frame of an animation taken, and the whole picture resized to the model's
input size. Resizing squashes rather than crops, so nothing at the edges is lost, and
uses BILINEAR, which Pillow applies with an antialiasing filter sized to the reduction,
so large downscales do not alias; big JPEGs are first decoded at 1/2, 1/4 or 1/8 scale
(``draft``), which is far cheaper and still at least the size we need, and other large
pictures are first shrunk by a whole factor with a box filter (``reducing_gap``), which
is four times faster and differs from a direct resize by a fraction of a grey level.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from skyclass.runtime.errors import InvalidImageError

FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF")
_FORMAT_NAMES = "JPEG, PNG, GIF, WebP, BMP or TIFF"

# Our own limit (the configured ``max_image_pixels``), checked from the header, replaces
# Pillow's process-wide guard, which would refuse large images with its own wording (or
# only warn) before we could name the size and the limit.
Image.MAX_IMAGE_PIXELS = None

_HEIF_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"mif1", b"msf1")
_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")
_WIDE_GREY_MODES = ("I", "I;16", "I;16L", "I;16B", "I;16N", "F")


def decode_image(data: bytes, size: tuple[int, int], max_pixels: int) -> np.ndarray:
    """``data`` as a (height, width, 3) float32 array of RGB values in [0, 255], where
    ``size`` is the model's (height, width). Raises InvalidImageError with the reason."""
    if not data:
        raise InvalidImageError("not an image (the file is empty)")
    image = _open(data)
    width, height = image.size
    fmt = image.format
    if width * height > max_pixels:
        raise InvalidImageError(
            f"image is {width}x{height} pixels, above the limit of {max_pixels}"
        )
    if fmt == "JPEG":
        # Decode at the smallest 1/2^n scale still covering the target either way round
        # (EXIF may turn the picture by 90 degrees afterwards).
        side = max(size)
        image.draft("RGB", (side, side))
    try:
        image.load()
        image = _upright(image)
        rgb = _to_rgb(image)
        resized = rgb.resize((size[1], size[0]), Image.Resampling.BILINEAR, reducing_gap=3.0)
    except InvalidImageError:
        raise
    except OSError as exc:
        if "truncated" in str(exc):
            raise InvalidImageError(
                "truncated image (the file ends before the picture does)"
            ) from exc
        raise InvalidImageError(f"corrupt {fmt} image ({exc})") from exc
    except Exception as exc:  # any decoder failure on untrusted bytes is the image's fault
        raise InvalidImageError(f"corrupt {fmt} image ({exc})") from exc
    return np.asarray(resized, dtype=np.float32)


def _open(data: bytes) -> Image.Image:
    """Read the header only (Pillow decodes lazily), and only for the formats we accept."""
    try:
        return Image.open(io.BytesIO(data), formats=FORMATS)
    except UnidentifiedImageError as exc:
        other = _other_format(data)
        if other:
            raise InvalidImageError(
                f"unsupported image format {other} (send {_FORMAT_NAMES})"
            ) from exc
        raise InvalidImageError(f"not an image (no {_FORMAT_NAMES} header found)") from exc
    except Exception as exc:  # a broken header is the file's fault
        raise InvalidImageError(f"not a readable image (corrupt or truncated: {exc})") from exc


def _other_format(data: bytes) -> str | None:
    """The name of an image format we do not accept, so the refusal can say "that is a
    HEIC photo" rather than "not an image". Only the header is read."""
    if data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS:
        return "HEIC"  # iPhone photos; Pillow has no decoder for them
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.format
    except Exception:  # not an image in any format Pillow knows
        return None


def _upright(image: Image.Image) -> Image.Image:
    """Apply the EXIF orientation, as cameras and phones expect viewers to."""
    try:
        return ImageOps.exif_transpose(image)
    except (ValueError, OSError, SyntaxError, KeyError, TypeError):
        # EXIF is advisory: a broken tag costs the rotation, not the result.
        return image


def _to_rgb(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode in _WIDE_GREY_MODES:
        return Image.fromarray(_grey_to_8bit(image), "L").convert("RGB")
    if mode == "P" and "transparency" in image.info:
        image, mode = image.convert("RGBA"), "RGBA"
    elif mode == "L" and "transparency" in image.info:
        image, mode = image.convert("LA"), "LA"
    if mode in _ALPHA_MODES:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if mode == "RGB":
        return image
    try:
        return image.convert("RGB")
    except ValueError as exc:
        raise InvalidImageError(f"unsupported colour mode {mode} ({exc})") from exc


def _grey_to_8bit(image: Image.Image) -> np.ndarray:
    """16-bit and 32-bit grey to 0..255. Pillow's own conversion clips instead of
    scaling, which turns most 16-bit pictures white."""
    values = np.asarray(image, dtype=np.float64)
    if image.mode == "F" and values.size and values.max() <= 1.0:
        values = values * 255.0  # floating-point images are usually 0..1
    elif image.mode != "F" and (image.mode.startswith("I;16") or values.max(initial=0) > 255):
        values = values / 257.0  # 0..65535 -> 0..255
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)
