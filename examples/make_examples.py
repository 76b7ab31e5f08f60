"""Render the app's example pictures from two public-domain photos that Python packages ship.

    python -m examples.make_examples

The sources: the astronaut (Eileen Collins, NASA, public domain: `skimage.data.astronaut()`) and Grace Hopper
(US Navy official photograph, public domain: matplotlib's sample data, `grace_hopper.jpg`). Every example is
one of them or rendered from them here, so the project may redistribute them all:
  astronaut.jpg         the photo itself (one face, no mask, smiling)
  astronaut_mask.jpg    the same face with a synthetic surgical mask drawn from its detected landmarks
  astronaut_mirror.jpg  mirrored, zoomed and darker: a second picture of the same person
  grace_hopper.jpg      another person (Verify's "not the same person" example)
  two_people.jpg        the two side by side (identify: the enrolled astronaut named, the other one unknown)
  no_face.jpg           a corner of the photo without any face (shows the friendly "no face" message)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance

HERE = Path(__file__).resolve().parent


def astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut()


def grace_hopper() -> np.ndarray:
    from matplotlib import cbook

    with cbook.get_sample_data("grace_hopper.jpg") as file:
        return np.asarray(Image.open(file).convert("RGB"))


def at_height(photo: np.ndarray, height: int) -> np.ndarray:
    """The photo scaled to `height` rows, its aspect kept."""
    width = round(photo.shape[1] * height / photo.shape[0])
    return np.asarray(Image.fromarray(photo).resize((width, height), Image.LANCZOS))


def draw_surgical_mask(image: np.ndarray, box: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """A pale-blue pleated mask from just below the eyes to below the chin, with ear loops."""
    eyes_y = float(landmarks[:2, 1].mean())
    nose = landmarks[2]
    mouth_y = float(landmarks[3:, 1].mean())
    x1, _, x2, y2 = (float(v) for v in box)
    inset = 0.04 * (x2 - x1)
    top = eyes_y + 0.45 * (nose[1] - eyes_y)
    bottom = max(y2, mouth_y + 1.1 * (mouth_y - nose[1]))
    left, right = x1 + inset, x2 - inset
    picture = Image.fromarray(image)
    draw = ImageDraw.Draw(picture)
    outline = [
        (left, top + 0.12 * (bottom - top)), (nose[0], top), (right, top + 0.12 * (bottom - top)),
        (right - inset, bottom - 0.2 * (bottom - top)), (nose[0], bottom), (left + inset, bottom - 0.2 * (bottom - top)),
    ]
    draw.polygon(outline, fill=(168, 205, 232), outline=(120, 160, 190))
    for fraction in (0.35, 0.55, 0.75):  # pleats
        y = top + fraction * (bottom - top)
        draw.line([(left + 0.6 * inset, y), (right - 0.6 * inset, y)], fill=(135, 175, 205), width=3)
    for x in (left, right):  # ear loops
        draw.line([(x, top + 0.15 * (bottom - top)), (x - np.sign(nose[0] - x) * 1.5 * inset, eyes_y)],
                  fill=(235, 235, 235), width=3)
    return np.asarray(picture)


def main() -> None:
    from pipeline import get_facelab, overlay

    image = astronaut()
    faces = get_facelab().analyze(image).faces
    assert len(faces) == 1, f"expected the astronaut's one face, found {len(faces)}"
    face = faces[0]
    save = lambda array, name: Image.fromarray(array).save(HERE / name, quality=88)  # noqa: E731
    save(image, "astronaut.jpg")
    save(draw_surgical_mask(image, face.box, face.landmarks), "astronaut_mask.jpg")
    mirrored = Image.fromarray(image[:, ::-1]).crop((96, 0, 448, 352)).resize((384, 384), Image.LANCZOS)
    save(np.asarray(ImageEnhance.Brightness(mirrored).enhance(0.8)), "astronaut_mirror.jpg")
    save(image[300:512, 300:512], "no_face.jpg")
    hopper = grace_hopper()
    save(hopper, "grace_hopper.jpg")
    save(overlay.side_by_side(image, at_height(hopper, image.shape[0]), gap=16), "two_people.jpg")
    for name in ("astronaut.jpg", "astronaut_mask.jpg", "astronaut_mirror.jpg", "grace_hopper.jpg", "two_people.jpg",
                 "no_face.jpg"):
        print(name, (HERE / name).stat().st_size, "bytes")


if __name__ == "__main__":
    main()
