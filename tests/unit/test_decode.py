"""Decoding uploads: every format and colour mode people send becomes the RGB picture the
model expects, and anything else is refused with a reason a person understands."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from ec2_worker.decode import decode_image
from skyclass.runtime.errors import InvalidImageError

SIZE = (32, 48)  # (height, width) of a model input
LIMIT = 40_000_000
RED = (220, 30, 30)


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def mean_rgb(pixels: np.ndarray) -> np.ndarray:
    return pixels.reshape(-1, 3).mean(axis=0)


def assert_colour(pixels: np.ndarray, rgb: tuple[int, int, int], tolerance: float = 8) -> None:
    assert np.allclose(mean_rgb(pixels), rgb, atol=tolerance), mean_rgb(pixels)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF"])
def test_every_accepted_format_decodes_to_rgb_float32_at_the_model_size(fmt):
    # GIVEN a red picture of another size, in one of the accepted formats
    data = encode(Image.new("RGB", (120, 90), RED), fmt)
    # WHEN it is decoded
    pixels = decode_image(data, SIZE, LIMIT)
    # THEN it is a (height, width, 3) float32 array of the same red, in [0, 255]
    assert pixels.shape == (*SIZE, 3)
    assert pixels.dtype == np.float32
    assert_colour(pixels, RED)


@pytest.mark.parametrize(
    ("image", "fmt", "expected"),
    [
        (Image.new("L", (40, 40), 100), "PNG", (100, 100, 100)),
        (Image.new("1", (40, 40), 1), "PNG", (255, 255, 255)),
        (Image.new("RGB", (40, 40), RED).quantize(16), "PNG", RED),
        (Image.new("CMYK", (40, 40), (0, 255, 255, 0)), "JPEG", (255, 0, 0)),
        (Image.new("CMYK", (40, 40), (0, 255, 255, 0)), "TIFF", (255, 0, 0)),
        (Image.new("YCbCr", (40, 40), (76, 85, 255)), "JPEG", (254, 0, 0)),
        (Image.new("F", (40, 40), 0.5), "TIFF", (128, 128, 128)),
    ],
    ids=["grey", "bilevel", "palette", "cmyk-jpeg", "cmyk-tiff", "ycbcr-jpeg", "float-tiff"],
)
def test_any_colour_mode_becomes_the_same_rgb_picture(image, fmt, expected):
    # GIVEN a picture stored in a colour mode other than RGB
    data = encode(image, fmt)
    # WHEN it is decoded
    pixels = decode_image(data, SIZE, LIMIT)
    # THEN the model sees the colour a viewer would see
    assert_colour(pixels, expected, tolerance=10)


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_16_bit_grey_is_scaled_not_clipped_to_white(fmt):
    # GIVEN a 16-bit grey picture at about 60% brightness
    image = Image.fromarray(np.full((30, 30), 40_000, dtype=np.uint16))
    assert image.mode.startswith("I;16")
    # WHEN it is decoded
    pixels = decode_image(encode(image, fmt), SIZE, LIMIT)
    # THEN it is the same 60% grey in 8-bit terms
    assert_colour(pixels, (156, 156, 156), tolerance=1)


@pytest.mark.parametrize(
    "image",
    [
        Image.new("RGBA", (40, 40), (255, 0, 0, 0)),
        Image.new("LA", (40, 40), (0, 0)),
    ],
    ids=["rgba", "grey-alpha"],
)
def test_transparent_pixels_are_composited_on_white(image):
    # GIVEN a fully transparent picture (whatever colour its hidden pixels have)
    data = encode(image, "PNG")
    # WHEN it is decoded
    pixels = decode_image(data, SIZE, LIMIT)
    # THEN it looks as a browser shows it: white
    assert_colour(pixels, (255, 255, 255), tolerance=0.5)


def test_half_transparent_red_is_blended_with_white():
    data = encode(Image.new("RGBA", (40, 40), (255, 0, 0, 128)), "PNG")
    assert_colour(decode_image(data, SIZE, LIMIT), (255, 127, 127), tolerance=2)


def test_palette_transparency_shows_white():
    # GIVEN a GIF whose only colour is marked transparent
    image = Image.new("P", (40, 40), 0)
    image.putpalette([0, 0, 0] * 256)
    data = encode(image, "GIF", transparency=0)
    # WHEN decoded, THEN the transparent area is white, not the palette's black
    assert_colour(decode_image(data, SIZE, LIMIT), (255, 255, 255), tolerance=0.5)


def test_an_animated_gif_is_classified_by_its_first_frame():
    # GIVEN an animation: a red frame, then a blue one
    frames = [Image.new("RGB", (40, 40), RED), Image.new("RGB", (40, 40), (30, 30, 220))]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    # WHEN decoded, THEN the model sees the first frame
    assert_colour(decode_image(data, SIZE, LIMIT), RED, tolerance=10)


def test_exif_orientation_turns_the_picture_upright():
    # GIVEN a photo stored sideways (left half red, right half blue) with EXIF saying
    # "rotate 90 degrees clockwise to view" (orientation 6), as phones write them
    stored = Image.new("RGB", (80, 40), RED)
    stored.paste((30, 30, 220), (40, 0, 80, 40))
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encode(stored, "JPEG", exif=exif.tobytes(), quality=95)
    # WHEN it is decoded to a square
    pixels = decode_image(data, (40, 40), LIMIT)
    # THEN the model sees it upright: red on top, blue below
    assert_colour(pixels[:15], RED, tolerance=15)
    assert_colour(pixels[-15:], (30, 30, 220), tolerance=15)


def test_a_big_jpeg_is_decoded_at_reduced_scale_to_the_same_picture():
    # GIVEN a large photo-like JPEG (smooth gradient)
    ramp = np.linspace(0, 255, 2400, dtype=np.float32)
    array = np.stack([np.tile(ramp, (1600, 1)), np.full((1600, 2400), 80.0),
                      np.tile(ramp[::-1], (1600, 1))], axis=-1).astype(np.uint8)
    data = encode(Image.fromarray(array), "JPEG", quality=95)
    # WHEN decoded to the model size
    pixels = decode_image(data, SIZE, LIMIT)
    # THEN it matches a full-resolution decode resized the same way
    full = Image.open(io.BytesIO(data)).convert("RGB").resize((SIZE[1], SIZE[0]),
                                                               Image.Resampling.BILINEAR)
    assert np.abs(pixels - np.asarray(full, dtype=np.float32)).mean() < 3


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "not an image (the file is empty)"),
        (b"hello, this is a text file\n", "not an image"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", "not an image"),
        (b"\x00" * 1000, "not an image"),
    ],
    ids=["empty", "text", "pdf", "zeros"],
)
def test_non_images_are_refused_with_a_reason(data, reason):
    with pytest.raises(InvalidImageError) as error:
        decode_image(data, SIZE, LIMIT)
    assert error.value.message.startswith(reason)


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (encode(Image.new("RGB", (32, 32), RED), "ICO"), "ICO"),
        (encode(Image.new("RGB", (32, 32), RED), "JPEG2000"), "JPEG2000"),
        (b"\0\0\0\x18ftypheic\0\0\0\0mif1heic" + bytes(64), "HEIC"),
    ],
    ids=["ico", "jpeg2000", "heic"],
)
def test_images_in_other_formats_are_refused_naming_their_format(data, name):
    # GIVEN a picture in a format outside the accepted list
    # WHEN decoded, THEN it is refused, and the reason names its format and what to send
    with pytest.raises(InvalidImageError) as error:
        decode_image(data, SIZE, LIMIT)
    assert error.value.message == (
        f"unsupported image format {name} (send JPEG, PNG, GIF, WebP, BMP or TIFF)"
    )


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "BMP", "TIFF"])
def test_a_truncated_upload_is_refused_as_truncated(fmt):
    # GIVEN the first 2 kB of a noisy 200x200 picture (an upload cut short)
    noise = Image.effect_noise((200, 200), 60).convert("RGB")
    data = encode(noise, fmt)[:2000]
    # WHEN decoded, THEN it is refused, and the reason says it is truncated
    with pytest.raises(InvalidImageError, match="truncated"):
        decode_image(data, SIZE, LIMIT)


def test_a_truncated_webp_is_refused():
    data = encode(Image.effect_noise((200, 200), 60).convert("RGB"), "WEBP")[:2000]
    with pytest.raises(InvalidImageError, match="corrupt or truncated"):
        decode_image(data, SIZE, LIMIT)


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` but holds one pixel's data: a
    decompression bomb's shape, without its payload."""
    data = bytearray(encode(Image.new("RGB", (1, 1)), "PNG"))
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)


def test_too_many_pixels_are_refused_from_the_header_before_decoding():
    # GIVEN a PNG whose header claims 30000x30000 pixels (it could never decode: the data
    # is one pixel, so only a header check can give this answer)
    data = png_claiming(30_000, 30_000)
    # WHEN decoded with the default limit
    with pytest.raises(InvalidImageError) as error:
        decode_image(data, SIZE, LIMIT)
    # THEN it is refused naming its size and the limit
    assert error.value.message == "image is 30000x30000 pixels, above the limit of 40000000"


def test_the_pixel_limit_is_the_configured_one():
    data = encode(Image.new("RGB", (100, 100), RED), "PNG")
    assert decode_image(data, SIZE, max_pixels=10_000).shape == (*SIZE, 3)
    with pytest.raises(InvalidImageError, match="100x100 pixels, above the limit of 9999"):
        decode_image(data, SIZE, max_pixels=9_999)
