"""The hostile inputs of issue 6, built on the fly from real photos (nothing here is stored in the repo).

Used by tests/test_hardening_inputs.py (pipeline API and app API) and benchmarks/reliability.py.
Each case is the bytes of one file as a visitor would upload it, plus what a correct outcome is:

- "refused":  a clear message matching `message` (never a traceback),
- "faces":    the picture is analysed and at least `min_faces` faces are found,
- "no_face":  the picture is analysed and no face is found (the app says "No face ..."),
- "either":   a face found, or "No face": both are correct (tiny faces at the detector's limit).

    for case in bad_inputs():
        path = case.write(tmp_dir)     # e.g. tmp_dir / "pdf_named_jpg.jpg"
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from shared_data import REPO_ROOT, lfw_people

ASTRONAUT = REPO_ROOT / "examples" / "astronaut.jpg"  # one face, public domain (examples/make_examples.py)


@dataclass(frozen=True)
class BadInput:
    name: str
    suffix: str  # the file name's extension, as uploaded (may lie about the content)
    build: Callable[[], bytes]
    expect: str  # "refused" | "faces" | "no_face" | "either"
    message: str = ""  # regex the refusal message must match (expect == "refused")
    min_faces: int = 1

    @property
    def filename(self) -> str:
        return f"{self.name}{self.suffix}"

    def data(self) -> bytes:
        return _built(self)

    def write(self, folder: Path) -> Path:
        path = Path(folder) / self.filename
        if not path.exists():
            path.write_bytes(self.data())
        return path


@lru_cache(maxsize=None)
def _built(case: BadInput) -> bytes:
    return case.build()


# -- helpers ------------------------------------------------------------------------------------------

def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def astronaut() -> Image.Image:
    return Image.open(ASTRONAUT).convert("RGB")


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_of_rows(width: int, height: int, row: bytes, color_type: int = 0, bit_depth: int = 8, rows: int | None = None) -> bytes:
    """A PNG written row by row (never held as pixels): `rows` of them (default all), each `row` bytes."""
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    compressor = zlib.compressobj(9)
    parts = []
    line = b"\x00" + row  # filter type 0
    for _ in range(height if rows is None else rows):
        parts.append(compressor.compress(line))
    parts.append(compressor.flush())
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", b"".join(parts)) + _png_chunk(b"IEND", b"")


def tiled_lfw_faces(columns: int = 7, rows: int = 7, tile: int = 200) -> Image.Image:
    """columns x rows different real LFW people, one photo each, tiled into one picture."""
    people = list(lfw_people(min_images=1).values())
    step = max(1, len(people) // (columns * rows))
    picture = Image.new("RGB", (columns * tile, rows * tile), "white")
    for index in range(columns * rows):
        face = Image.open(people[index * step][0]).convert("RGB")
        # LFW photos are 250x250 with the face in the central ~120 px: crop to the head, then fit the tile.
        face = face.crop((40, 40, 210, 210)).resize((tile, tile), Image.BILINEAR)
        picture.paste(face, ((index % columns) * tile, (index // columns) * tile))
    return picture


# -- the cases ------------------------------------------------------------------------------------------

def _truncated_jpeg() -> bytes:
    data = encode(astronaut(), "JPEG", quality=90)
    return data[: len(data) // 2]


def _pdf() -> bytes:
    return (b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
            b"2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n")


def _bomb() -> bytes:
    # 100000 x 100000 RGB declared (30 GB decoded), one row of data: a few hundred bytes on disk.
    return png_of_rows(100_000, 100_000, bytes(300_000), color_type=2, rows=1)


def _png_20000() -> bytes:
    # A complete, valid 20000 x 20000 grey PNG (400 megapixels decoded): about 400 kB on disk.
    return png_of_rows(20_000, 20_000, bytes(20_000))


def _ico_holding_a_huge_png() -> bytes:
    # An icon file whose one entry (its header says 256x256) is a 16000x16000 PNG: 256 megapixels decoded.
    png = png_of_rows(16_000, 16_000, bytes(16_000))
    header = struct.pack("<HHH", 0, 1, 1)
    entry = struct.pack("<BBBBHHII", 0, 0, 0, 0, 1, 32, len(png), 6 + 16)
    return header + entry + png


def _eps() -> bytes:
    # PostScript: Pillow would hand it to Ghostscript, wherever that is installed.
    return (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 64 64\n"
            b"newpath 0 0 moveto 64 64 lineto stroke showpage\n%%EOF\n")


def _animated_gif() -> bytes:
    first = astronaut()
    second = Image.new("RGB", first.size, (30, 30, 200))
    return encode(first, "GIF", save_all=True, append_images=[second], duration=200, loop=0)


def _cmyk_jpeg() -> bytes:
    return encode(astronaut().convert("CMYK"), "JPEG", quality=92)


def _png_16bit() -> bytes:
    grey = np.asarray(astronaut().convert("L"), dtype=np.uint16) * 257
    return encode(Image.fromarray(grey), "PNG")


def _rgba_transparent() -> bytes:
    # The photo in the middle of a larger, fully transparent canvas, with a half-transparent band.
    photo = astronaut().convert("RGBA")
    canvas = Image.new("RGBA", (photo.width + 200, photo.height + 200), (0, 0, 0, 0))
    canvas.paste(photo, (100, 100))
    pixels = np.asarray(canvas).copy()
    pixels[100:140, :, 3] = 128
    return encode(Image.fromarray(pixels, "RGBA"), "PNG")


def _grayscale() -> bytes:
    return encode(astronaut().convert("L"), "JPEG", quality=92)


def _exif_rotated() -> bytes:
    # Stored sideways, with EXIF orientation 6 ("rotate 90 degrees clockwise to display"), like a phone does.
    # Not square (512 wide, 420 high upright), so a missed rotation shows in the picture's shape too.
    exif = Image.Exif()
    exif[0x0112] = 6
    upright = astronaut().crop((0, 0, 512, 420))
    return encode(upright.transpose(Image.Transpose.ROTATE_90), "JPEG", quality=92, exif=exif)


def _flat(value: int) -> bytes:
    return encode(Image.new("RGB", (640, 480), (value, value, value)), "PNG")


def _noise() -> bytes:
    pixels = np.random.default_rng(6).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    return encode(Image.fromarray(pixels), "PNG")


def _many_faces() -> bytes:
    return encode(tiled_lfw_faces(), "JPEG", quality=90)


def _tiny_faces() -> bytes:
    # Six copies of the astronaut's head, each about 16-24 px wide, on a 1280x720 frame.
    head = astronaut().crop((130, 10, 300, 210))
    canvas = Image.new("RGB", (1280, 720), (120, 120, 120))
    for index, width in enumerate((16, 18, 20, 22, 24, 28)):
        small = head.resize((width, round(width * head.height / head.width)), Image.BILINEAR)
        canvas.paste(small, (100 + 180 * index, 340))
    return encode(canvas, "PNG")


def _huge_webcam_frame() -> bytes:
    # An 8K frame (7680x4320, 33 megapixels: under the 40-megapixel limit) with the astronaut filling its middle.
    frame = Image.new("RGB", (7680, 4320), (60, 70, 80))
    frame.paste(astronaut().resize((3600, 3600), Image.BILINEAR), (2040, 360))
    return encode(frame, "JPEG", quality=85)


def _oversized_file() -> bytes:
    # Over the 50 MB upload limit: a valid JPEG start followed by padding.
    return encode(Image.new("RGB", (64, 64)), "JPEG")[:-2] + bytes(51 * 1024 * 1024) + b"\xff\xd9"


CASES: tuple[BadInput, ...] = (
    BadInput("zero_bytes", ".jpg", lambda: b"", "refused", r"empty|0 bytes"),
    BadInput("truncated_jpeg", ".jpg", _truncated_jpeg, "refused", r"damaged or truncated"),
    BadInput("text_named_jpg", ".jpg", lambda: b"Dear visitor,\nthis is a letter, not a photo.\n" * 20, "refused",
             r"not a picture"),
    BadInput("pdf_named_jpg", ".jpg", _pdf, "refused", r"not a picture"),
    BadInput("decompression_bomb", ".png", _bomb, "refused", r"megapixels"),
    BadInput("png_20000x20000", ".png", _png_20000, "refused", r"400 megapixels"),
    BadInput("ico_holding_huge_png", ".ico", _ico_holding_a_huge_png, "refused", r"not a picture|megapixels"),
    BadInput("eps_named_jpg", ".jpg", _eps, "refused", r"not a picture"),
    BadInput("one_by_one", ".png", lambda: encode(Image.new("RGB", (1, 1), "red"), "PNG"), "refused", r"1x1"),
    BadInput("oversized_file", ".jpg", _oversized_file, "refused", r"limit is 50 MB|maximum file size"),
    BadInput("animated_gif", ".gif", _animated_gif, "faces"),
    BadInput("cmyk_jpeg", ".jpg", _cmyk_jpeg, "faces"),
    BadInput("png_16bit", ".png", _png_16bit, "faces"),
    BadInput("rgba_transparent", ".png", _rgba_transparent, "faces"),
    BadInput("grayscale", ".jpg", _grayscale, "faces"),
    BadInput("exif_rotated", ".jpg", _exif_rotated, "faces"),
    BadInput("all_black", ".png", lambda: _flat(0), "no_face"),
    BadInput("all_white", ".png", lambda: _flat(255), "no_face"),
    BadInput("pure_noise", ".png", _noise, "no_face"),
    BadInput("49_tiled_faces", ".jpg", _many_faces, "faces", min_faces=30),
    BadInput("tiny_faces", ".png", _tiny_faces, "either"),
    BadInput("huge_webcam_frame", ".jpg", _huge_webcam_frame, "faces"),
)


def bad_inputs() -> tuple[BadInput, ...]:
    return CASES


def case(name: str) -> BadInput:
    return next(c for c in CASES if c.name == name)
