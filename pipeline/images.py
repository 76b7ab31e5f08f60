"""Input normalisation, in one place: whatever a browser or a script hands us becomes an RGB uint8 array.

Every public entry point of the pipeline calls `load_rgb` first, so limits and error messages are the
same for the app, the scripts and the benchmarks.
"""

from __future__ import annotations

import io
import os
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import InvalidImageError
from .settings import Settings
from .settings import current as current_settings

ImageInput = Union[Image.Image, np.ndarray, str, os.PathLike, bytes, bytearray]

MIN_SIDE = 16  # smaller pictures cannot hold a detectable face (MTCNN's smallest window is 12 px)

# The formats the README promises, and only those: Image.open(formats=...) never hands other bytes to
# another decoder (EPS would go to Ghostscript, ICO holds PNGs whose size its header does not state).
# (JPEG's opener also returns the MPO pictures many phone cameras write.)
FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
Image.init()  # registers every plugin, so that `formats` can name WEBP and TIFF


# Documented limits (README "Privacy and limits"): they bound memory per request. Read from the settings at
# each call, so that pipeline.settings.reload() counts (benchmarks and tests change them after import), or from
# the Settings a caller gives `load_rgb` (a FaceLab's own), for that call and its thread only.
_CALL_SETTINGS: ContextVar[Settings | None] = ContextVar("facelab_image_limits", default=None)


def _limits() -> Settings:
    return _CALL_SETTINGS.get() or current_settings()


def max_pixels() -> int:
    """The largest picture, in pixels (FACELAB_MAX_PIXELS: 40 MP by default, e.g. 8000x5000)."""
    return _limits().max_pixels


def max_file_bytes() -> int:
    """The largest file, in bytes (FACELAB_MAX_FILE_BYTES: "50 MB" as Gradio counts it)."""
    return _limits().max_file_bytes


def load_rgb(source: ImageInput, settings: Settings | None = None) -> np.ndarray:
    """Return the picture as a contiguous (H, W, 3) uint8 RGB array, EXIF orientation applied. Its limits are
    those of `settings` (default: the process's, as they are now).

    Raises InvalidImageError with a user-facing message for anything unreadable or out of limits.
    """
    with _limits_for(settings):
        if isinstance(source, np.ndarray):
            rgb = _array_to_rgb(source)
        else:
            rgb = _pil_to_rgb(_open_pil(source))
        _check_size(rgb.shape[1], rgb.shape[0])
        return np.ascontiguousarray(rgb)


def check_header(source: ImageInput | BinaryIO, settings: Settings | None = None) -> None:
    """Raise what `load_rgb` would raise before decoding a pixel (no file, an empty or too large one, not a
    picture, too many or too few pixels), from the header alone, as soon as a picture is uploaded. An open
    binary file is read no further than its header. Damage inside the picture's data only shows when
    `load_rgb` decodes it."""
    if isinstance(source, np.ndarray):
        return  # nothing to decode: load_rgb checks its shape
    with _limits_for(settings):
        _check_size(*_open_pil(source).size)


@contextmanager
def _limits_for(settings: Settings | None) -> Iterator[None]:
    """`settings`' limits (None: the process's, as they are now) for the call inside, in its thread only."""
    token = _CALL_SETTINGS.set(settings)
    try:
        # We check the pixel count from the header before decoding; Pillow's own check stays on as well, inside
        # every decoder (an embedded picture, a TIFF page), and refuses at twice the limit: the same limit. (It
        # is one process-wide number: where two callers' limits differ, the header check is the one that holds.)
        Image.MAX_IMAGE_PIXELS = max_pixels()
        yield
    finally:
        _CALL_SETTINGS.reset(token)


def _open_pil(source: ImageInput | BinaryIO) -> Image.Image:
    if source is None:
        raise InvalidImageError("No picture was given. Upload a photo or take a webcam snapshot.")
    if isinstance(source, Image.Image):
        return source
    name = "the uploaded data"
    if isinstance(source, (bytes, bytearray)):
        data = bytes(source)
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise InvalidImageError(f"The file {path.name!r} does not exist.")
        _check_file_size(path.stat().st_size)
        data = path.read_bytes()
        name = repr(path.name)
    elif hasattr(source, "read") and hasattr(source, "seek"):  # an open file (its size checked by its opener)
        data = source if source.read(1) else b""
        source.seek(0)
    else:
        raise InvalidImageError(f"Unsupported input type {type(source).__name__}; give a picture.")
    if isinstance(data, bytes):
        if not data:
            raise InvalidImageError(f"{name[0].upper() + name[1:]} is empty (0 bytes).")
        _check_file_size(len(data))
    try:
        image = Image.open(io.BytesIO(data) if isinstance(data, bytes) else data, formats=FORMATS)
    except Image.DecompressionBombError as exc:
        raise InvalidImageError(_too_many_pixels_message(exc)) from None
    except UnidentifiedImageError:
        raise InvalidImageError(
            f"{name[0].upper() + name[1:]} is not a picture we can read (JPEG, PNG, WebP, GIF, BMP, TIFF)."
        ) from None
    except Exception:  # PIL raises many types for corrupt headers
        raise InvalidImageError(DAMAGED) from None
    return image


def _pil_to_rgb(image: Image.Image) -> np.ndarray:
    # Check the declared size before decoding a single pixel: a decompression bomb is a tiny
    # file that declares a huge picture.
    _check_size(*image.size)
    try:
        if getattr(image, "is_animated", False):
            image.seek(0)  # animated GIF/WebP: analyse the first frame
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image = ImageOps.exif_transpose(image) or image
            image.load()
    except InvalidImageError:
        raise
    except Image.DecompressionBombError as exc:
        raise InvalidImageError(_too_many_pixels_message(exc)) from None
    except Exception:  # truncated or corrupt data
        raise InvalidImageError(DAMAGED) from None
    _check_size(*image.size)  # what was decoded, in case a decoder's header understated it
    return _convert_mode(image)


def _convert_mode(image: Image.Image) -> np.ndarray:
    mode = image.mode
    if mode == "RGB":
        return np.asarray(image)
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16-bit and float pictures: stretch to 8 bit by the actual range, not by clipping.
        values = np.asarray(image, dtype=np.float32)
        return _gray_to_rgb(_stretch_to_uint8(values))
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in image.info):
        # Transparent pixels become white, as a browser shows them on a white page.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(background, rgba).convert("RGB"))
    return np.asarray(image.convert("RGB"))  # L, 1, P, CMYK, YCbCr, LAB, HSV


def _array_to_rgb(array: np.ndarray) -> np.ndarray:
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise InvalidImageError(f"Expected an (H, W), (H, W, 3) or (H, W, 4) picture, got shape {array.shape}.")
    _check_size(array.shape[1], array.shape[0])
    if array.dtype != np.uint8:
        values = array.astype(np.float32)
        if not np.isfinite(values).all():
            raise InvalidImageError("The picture contains NaN or infinite values.")
        # Floats in [0, 1] are the usual convention; anything else is stretched by its range.
        if values.min() >= 0 and values.max() <= 1.0:
            array = np.round(values * 255).astype(np.uint8)
        elif values.min() >= 0 and values.max() <= 255:
            array = np.round(values).astype(np.uint8)
        else:
            array = _stretch_to_uint8(values)
    if array.ndim == 2:
        return _gray_to_rgb(array)
    if array.shape[2] == 4:
        return _convert_mode(Image.fromarray(array, "RGBA"))
    return array


def _stretch_to_uint8(values: np.ndarray) -> np.ndarray:
    low, high = float(values.min()), float(values.max())
    if high <= 255 and low >= 0:
        return np.round(values).astype(np.uint8)
    scale = 255.0 / (high - low) if high > low else 0.0
    return np.round((values - low) * scale).astype(np.uint8)


def _gray_to_rgb(gray: np.ndarray) -> np.ndarray:
    return np.repeat(gray[:, :, None], 3, axis=2)


# Said in the visitor's words, without the decoder's own ("image file is truncated", "broken data stream").
DAMAGED = ("The picture is damaged or truncated and cannot be decoded. Save it again, or send another copy of "
           "it.")


def size_text(size: int) -> str:
    """A file size for a message, in the unit that reads best ("61.2 MB", "980 kB", "500 bytes"): a limit
    below a megabyte read "0 MB"."""
    if size >= 2**20:
        return f"{size / 2**20:.3g} MB"
    return f"{size / 2**10:.3g} kB" if size >= 2**10 else f"{size} bytes"


def _megapixels(pixels: int) -> str:
    megapixels = pixels / 1e6
    # 40, 33.2, 0.262: never "0 megapixels" for a small limit; 10,000 rather than "1e+04" for a bomb's header.
    return f"{megapixels:,.0f} megapixels" if megapixels >= 100 else f"{megapixels:.3g} megapixels"


def _too_many_pixels_message(found: Image.DecompressionBombError | str) -> str:
    """`found`: the size as we read it, or Pillow's refusal (its text holds the pixel count)."""
    if isinstance(found, Image.DecompressionBombError):
        pixels = re.search(r"\((\d+) pixels\)", str(found))
        found = _megapixels(int(pixels[1])) if pixels else "larger than that"
    return f"The picture is {found}; the limit is {_megapixels(max_pixels())}. Please send a smaller picture."


def _check_file_size(size: int) -> None:
    limit = max_file_bytes()
    if size > limit:
        raise InvalidImageError(f"The file is {size_text(size)}; the limit is {size_text(limit)}.")


def _check_size(width: int, height: int) -> None:
    if width * height > max_pixels():
        raise InvalidImageError(_too_many_pixels_message(f"{width}x{height} pixels ({_megapixels(width * height)})"))
    if min(width, height) < MIN_SIDE:
        raise InvalidImageError(
            f"The picture is only {width}x{height} pixels; a face needs at least {MIN_SIDE}x{MIN_SIDE}."
        )


def resize_to_max_side(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """Downscale so the longer side is at most `max_side`; return the copy and the scale applied (<= 1)."""
    height, width = image.shape[:2]
    scale = min(1.0, max_side / max(height, width))
    if scale >= 1.0:
        return image, 1.0
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    # reduce() first makes big downscales cheap and alias-free; resize() then hits the exact size.
    pil = Image.fromarray(image)
    factor = int(1 / scale)
    if factor >= 2:
        pil = pil.reduce(factor)
    resized = np.asarray(pil.resize(size, Image.BILINEAR))
    return resized, size[0] / width
