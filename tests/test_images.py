"""Input normalisation: every kind of picture a browser can send becomes RGB uint8, or a clear error."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from PIL import Image

from shared_data import MISC_DIR
from pipeline.errors import InvalidImageError
from pipeline.images import DAMAGED, check_header, load_rgb, max_pixels, resize_to_max_side

ASTRONAUT = MISC_DIR / "single_face_astronaut.png"


def encoded(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


@pytest.mark.shared_data
@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "CMYK", "I;16", "I", "F", "1"])
def test_every_mode_becomes_rgb_uint8(mode: str) -> None:
    source = Image.open(ASTRONAUT).convert("RGB")
    if mode == "I;16":
        converted = Image.fromarray((np.asarray(source.convert("L"), dtype=np.uint16) * 257))
    else:
        converted = source.convert(mode)
    rgb = load_rgb(converted)
    assert rgb.dtype == np.uint8 and rgb.shape == (512, 512, 3)
    assert 20 < rgb.mean() < 235  # content survived, not a blank picture


@pytest.mark.shared_data
def test_sixteen_bit_png_keeps_its_contrast() -> None:
    gray = np.asarray(Image.open(ASTRONAUT).convert("L"), dtype=np.uint16) * 257
    rgb = load_rgb(encoded(Image.fromarray(gray), "PNG"))
    reference = np.asarray(Image.open(ASTRONAUT).convert("L"), dtype=np.int16)
    assert np.abs(rgb[:, :, 0].astype(np.int16) - reference).max() <= 1


def test_transparent_pixels_become_white() -> None:
    rgba = np.zeros((64, 64, 4), dtype=np.uint8)
    rgba[:, :32] = (255, 0, 0, 255)  # opaque red left half, fully transparent right half
    rgb = load_rgb(rgba)
    assert tuple(rgb[0, 0]) == (255, 0, 0) and tuple(rgb[0, 63]) == (255, 255, 255)


@pytest.mark.shared_data
def test_exif_orientation_is_applied() -> None:
    upright = Image.open(ASTRONAUT).convert("RGB").crop((0, 0, 512, 300))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display": stored sideways
    stored = upright.transpose(Image.Transpose.ROTATE_90)
    rgb = load_rgb(encoded(stored, "JPEG", exif=exif, quality=95))
    assert rgb.shape == (300, 512, 3)


def test_animated_gif_uses_first_frame() -> None:
    frames = [Image.new("RGB", (40, 40), color) for color in ((255, 0, 0), (0, 0, 255))]
    data = encoded(frames[0], "GIF", save_all=True, append_images=frames[1:])
    rgb = load_rgb(data)
    assert rgb.shape == (40, 40, 3) and rgb[0, 0, 0] > 200 and rgb[0, 0, 2] < 50


@pytest.mark.parametrize(
    "data, message",
    [
        (lambda: b"", "empty"),
        (lambda: b"%PDF-1.4 not a picture at all", "not a picture"),
        (lambda: encoded(Image.new("RGB", (300, 300)), "JPEG")[:200], "damaged or truncated"),
        pytest.param(lambda: ASTRONAUT.read_bytes()[: ASTRONAUT.stat().st_size // 2], "damaged or truncated",
                     marks=pytest.mark.shared_data),
    ],
    ids=["zero-bytes", "pdf-named-jpg", "truncated-jpeg-header", "truncated-png-data"],
)
def test_unreadable_files_get_a_clear_message(data, message: str) -> None:
    with pytest.raises(InvalidImageError, match=message) as refused:
        load_rgb(data())
    if message == "damaged or truncated":  # in the visitor's words, not the decoder's ("image file is truncated")
        assert str(refused.value) == DAMAGED


def test_the_header_check_refuses_what_load_rgb_would_before_decoding() -> None:
    """What an upload is checked with at once: the same message as load_rgb for a file that is not a picture or
    declares too many pixels; a truncated picture passes it (only decoding shows the damage)."""
    for data in (b"", b"%PDF-1.4 not a picture at all", with_declared_size(encoded(Image.new("1", (8, 8)), "PNG"),
                                                                       100_000, 100_000)):
        with pytest.raises(InvalidImageError) as by_load:
            load_rgb(data)
        for given in (data, io.BytesIO(data)):  # the bytes, or the open file
            with pytest.raises(InvalidImageError) as by_header:
                check_header(given)
            assert str(by_header.value) == str(by_load.value)
    truncated = encoded(Image.new("RGB", (300, 300), "gray"), "PNG")[:-30]
    check_header(truncated)
    with pytest.raises(InvalidImageError, match="damaged or truncated"):
        load_rgb(truncated)


@pytest.mark.shared_data
def test_the_header_check_reads_an_open_file_no_further_than_its_header() -> None:
    large = MISC_DIR / "large_4800px_multiple_faces_upscaled.jpg"
    with open(large, "rb") as handle:
        check_header(handle)
        assert handle.tell() < 64 * 1024 < large.stat().st_size, handle.tell()


def test_decompression_bomb_is_refused_before_decoding() -> None:
    # A tiny PNG that declares 30000 x 30000 pixels.
    bomb = encoded(Image.new("1", (30000, 30000)), "PNG")
    assert len(bomb) < 200_000
    with pytest.raises(InvalidImageError, match=r"The picture is 900 megapixels; the limit is 40 megapixels"):
        load_rgb(bomb)
    assert 30000 * 30000 > max_pixels()
    with pytest.raises(InvalidImageError, match=r"The picture is 10,000 megapixels;"):  # not "1e+04 megapixels"
        load_rgb(with_declared_size(encoded(Image.new("1", (8, 8)), "PNG"), 100_000, 100_000))


def with_declared_size(png: bytes, width: int, height: int) -> bytes:
    """The PNG with another size in its header (IHDR, CRC fixed): what a decompression bomb declares, without
    the test having to make the picture."""
    import struct
    import zlib

    start = png.index(b"IHDR")
    header = struct.pack(">II", width, height) + png[start + 12:start + 17]
    return png[:start + 4] + header + struct.pack(">I", zlib.crc32(b"IHDR" + header)) + png[start + 21:]


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # 1.2 MP: between 1 and 2x the limit
def test_the_limits_are_the_settings_as_they_are_now(monkeypatch, tmp_path) -> None:
    """FACELAB_MAX_PIXELS and FACELAB_MAX_FILE_BYTES changed after pipeline was imported count once reload() read
    them (they were read once, at import), here and in the app's payload check; Pillow's own decompression-bomb
    guard follows the same pixel limit."""
    from pipeline import settings
    from serving.payloads import picture_bytes

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)  # Pillow's global, as it was after the test
    picture = encoded(Image.new("RGB", (1200, 1000)), "PNG")  # 1.2 megapixels
    assert load_rgb(picture).shape == (1000, 1200, 3)
    monkeypatch.setenv("FACELAB_MAX_PIXELS", "1000000")
    settings.reload()
    with pytest.raises(InvalidImageError, match=r"1200x1000 pixels \(1.2 megapixels\); the limit is 1 megapixels"):
        load_rgb(picture)
    with pytest.raises(InvalidImageError) as refused:  # over twice the limit: Pillow refuses it, opening the header
        load_rgb(encoded(Image.new("RGB", (2100, 1000)), "PNG"))
    assert str(refused.value) == "The picture is 2.1 megapixels; the limit is 1 megapixels. Please send a smaller picture."

    stored = tmp_path / "upload.png"
    stored.write_bytes(picture)
    assert picture_bytes({"path": str(stored)}, lambda path: True, tmp_path) == picture
    assert 3000 < len(picture) < 4000
    monkeypatch.setenv("FACELAB_MAX_FILE_BYTES", "2500")
    settings.reload()
    small = f"The file is {len(picture) / 1024:.3g} kB; the limit is 2.44 kB."  # it said "0.0 MB; the limit is 0 MB"
    with pytest.raises(InvalidImageError, match=re.escape(small)):
        load_rgb(picture)
    with pytest.raises(InvalidImageError, match="the limit for a file is 2.44 kB"):
        picture_bytes({"path": str(stored)}, lambda path: True, tmp_path)


def test_an_upload_folder_behind_a_link_is_read_and_links_inside_it_are_not(tmp_path) -> None:
    """GRADIO_TEMP_DIR may name a folder through a link (Gradio does not resolve it): every upload was refused as
    "not uploaded to this app". Links below the upload folder are still never followed, wherever they point."""
    from serving.payloads import NOT_STORED, picture_bytes

    real = tmp_path / "disk" / "gradio"
    (real / "a1b2").mkdir(parents=True)
    (tmp_path / "data").symlink_to(tmp_path / "disk")
    root = tmp_path / "data" / "gradio"  # what Gradio's upload folder reads
    picture = encoded(Image.new("RGB", (40, 30)), "PNG")
    (real / "a1b2" / "frame.png").write_bytes(picture)
    secret = tmp_path / "secret.png"
    secret.write_bytes(picture)
    (real / "a1b2" / "out.png").symlink_to(secret)
    (real / "a1b2" / "in.png").symlink_to(real / "a1b2" / "frame.png")
    (real / "linked").symlink_to(real / "a1b2")

    def read(path) -> bytes:
        return picture_bytes({"path": str(path)}, lambda stored: True, root)  # as if the app had stored it

    assert read(root / "a1b2" / "frame.png") == picture
    for refused in (root / "a1b2" / "out.png", root / "a1b2" / "in.png", root / "linked" / "frame.png", secret,
                    root / "a1b2" / ".." / ".." / "secret.png", root):
        with pytest.raises(InvalidImageError) as error:
            read(refused)
        assert str(error.value) == NOT_STORED, refused


def test_too_small_picture_gets_a_clear_message() -> None:
    with pytest.raises(InvalidImageError, match="1x1"):
        load_rgb(np.zeros((1, 1, 3), dtype=np.uint8))


def test_missing_input_and_wrong_shapes() -> None:
    with pytest.raises(InvalidImageError, match="No picture"):
        load_rgb(None)
    with pytest.raises(InvalidImageError, match="shape"):
        load_rgb(np.zeros((10, 10, 10, 3), dtype=np.uint8))


def test_float_arrays_are_understood() -> None:
    rgb = load_rgb(np.full((32, 32, 3), 0.5, dtype=np.float32))
    assert rgb.dtype == np.uint8 and rgb[0, 0, 0] == 128


def test_downscale_reports_its_scale() -> None:
    picture = np.zeros((1080, 1920, 3), dtype=np.uint8)
    small, scale = resize_to_max_side(picture, 960)
    assert small.shape == (540, 960, 3) and scale == pytest.approx(0.5)
    same, scale = resize_to_max_side(picture, 4000)
    assert same is picture and scale == 1.0
