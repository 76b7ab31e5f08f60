"""Face masks painted on unmasked faces, for training the mask head (issue 16).

The mask set's masked faces are web photos framed by the dataset, and its unmasked ones CelebA crops; the
head's face check turned away masked faces found in photos when the mask was one plain colour (of LFW
validation faces with a mask painted here, 5.7 % fell under its 0.9 bar). Painting masks on LFW faces gives it masked and unmasked
versions of the same photos, framed as the app frames them (`training.pipeline_framing.lfw_painted`,
`train_mask --painted`). Tried in issue 16 and not released: weights/mask_head.md has the figures.

The painter varies what real masks vary: how high the mask reaches on the nose, how wide and how low it is,
a rounded or pointed chin, its colour (plain, clinical, dark, two-coloured patterns), shading, pleats, ear
loops and a soft or hard edge. benchmarks/mask.py's synthetic-mask figure paints one fixed polygon in five
colours; this painter is independent of it, but the two are alike (flat colours on LFW photos), so a head
trained on these paintings is measured on real masks first (the mask set's test pictures, close-ups, scenes).
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from pipeline.alignment import face_axes

PAINTER_VERSION = 1  # raise when the painting changes, so cached painted crops are made anew

CLINICAL = np.array([(232, 236, 240), (170, 205, 230), (150, 210, 200), (240, 240, 245), (120, 170, 210)])
DARK = np.array([(25, 25, 30), (40, 45, 70), (90, 90, 95), (60, 40, 40)])


def mask_outline(landmarks: np.ndarray, rng: np.random.Generator) -> list[tuple[float, float]]:
    """A mask's outline from the five landmarks (eyes, nose, mouth corners), randomly shaped: from the
    nose's upper half to below the chin, cheek to cheek, the bottom an arc of 1-4 points."""
    eye_l, eye_r, nose, mouth_l, mouth_r = landmarks.astype(np.float64)
    d, ux, uy = face_axes(landmarks)
    eyes, mouth = (eye_l + eye_r) / 2, (mouth_l + mouth_r) / 2
    top = eyes + rng.uniform(0.3, 0.75) * float((nose - eyes) @ uy) * uy
    half_width = rng.uniform(0.8, 1.1) * d
    side_drop = rng.uniform(0.1, 0.35) * d  # the top edge falls towards the cheeks
    chin = mouth + rng.uniform(0.5, 0.95) * d * uy
    bridge = rng.uniform(0.15, 0.4) * d
    upper = [top - half_width * ux + side_drop * uy, top - bridge * ux, top + bridge * ux,
             top + half_width * ux + side_drop * uy]
    cheek = rng.uniform(0.8, 1.0) * half_width
    right, left = mouth + cheek * ux + 0.15 * d * uy, mouth - cheek * ux + 0.15 * d * uy
    bottom_points = int(rng.integers(1, 5))
    angles = np.linspace(0.15, np.pi - 0.15, bottom_points) if bottom_points > 1 else np.array([np.pi / 2])
    bottom = [chin + np.cos(a) * rng.uniform(0.3, 0.6) * half_width * ux - (1 - np.sin(a)) * 0.3 * d * uy
              for a in angles]
    return [tuple(p) for p in upper + [right] + bottom + [left]]


def _fill(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """(H,W,3) float pixels of a mask's material: plain, clinical, dark or a two-colour pattern."""
    h, w = size
    kind = rng.choice(4, p=[0.4, 0.2, 0.15, 0.25])
    if kind == 0:
        base = rng.integers(0, 256, 3).astype(np.float64)
    elif kind == 1:
        base = CLINICAL[rng.integers(len(CLINICAL))] + rng.normal(0, 8, 3)
    elif kind == 2:
        base = DARK[rng.integers(len(DARK))] + rng.normal(0, 8, 3)
    else:
        a, b = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        period = rng.uniform(4, 16)
        yy, xx = np.mgrid[:h, :w]
        if rng.random() < 0.5:  # stripes at a random angle
            angle = rng.uniform(0, np.pi)
            on = np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period) > 0
        else:  # dots
            on = (np.hypot((xx % period) - period / 2, (yy % period) - period / 2) < period / 4)
        return np.where(on[..., None], a, b).astype(np.float64)
    return np.broadcast_to(np.clip(base, 0, 255), (h, w, 3)).astype(np.float64)


def paint_mask(image: Image.Image, landmarks: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """`image` with a randomly shaped and coloured face mask painted over the nose, mouth and chin that
    `landmarks` (MTCNN's five points, picture pixels) locate."""
    w, h = image.size
    outline = mask_outline(landmarks, rng)
    alpha = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(alpha)
    draw.polygon(outline, fill=255)
    d, ux, uy = face_axes(landmarks)
    if rng.random() < 0.5:  # ear loops, in the mask's colour
        for corner, side in ((outline[0], -1), (outline[3], 1)):
            draw.line([corner, tuple(np.array(corner) + side * 0.35 * d * ux - 0.2 * d * uy)], fill=255,
                      width=max(1, int(d / 25)))
    material = _fill((h, w), rng)
    if rng.random() < 0.6:  # shading: the lower face turns from the light
        ys = np.linspace(0, 1, h)[:, None, None]
        material = material * (1 - rng.uniform(0.1, 0.35) * (ys if rng.random() < 0.5 else 1 - ys))
    if rng.random() < 0.5:
        material = material + rng.normal(0, rng.uniform(2, 10), material.shape)
    paint = Image.fromarray(np.clip(material, 0, 255).astype(np.uint8))
    if rng.random() < 0.3:  # pleats across the mask, darker than it
        lines = ImageDraw.Draw(paint)
        left, right = np.array(outline[0]), np.array(outline[3])
        shade = tuple(int(v) for v in np.clip(material[h // 2, w // 2] * 0.7, 0, 255))
        for k in range(int(rng.integers(2, 4))):
            drop = (k + 1) * 0.22 * d * uy
            lines.line([tuple(left + drop), tuple(right + drop)], fill=shade, width=max(1, int(d / 30)))
    if rng.random() < 0.5:  # a soft edge
        alpha = alpha.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 2.0)))
    return Image.composite(paint, image.convert("RGB"), alpha)
