"""Face alignment: one square RGB crop per face, shared by the embedder and every head.

Two methods, both measured on LFW (benchmarks/lfw.py, README table):
- "landmarks": a similarity transform (rotation, uniform scale, shift) takes the 5 MTCNN landmarks
  onto a canonical template, which removes head roll.
- "box": MTCNN's plain box crop with a margin, as facenet-pytorch's `extract_face` does. FaceLab's
  default: it scored higher on LFW (TAR at FAR 1e-3 0.94 against 0.86 on the first 2,600 pairs), since
  FaceNet was trained on such crops and a rotated face is further from its training data.
"""

from __future__ import annotations

from typing import Literal, Sequence

import numpy as np
from PIL import Image

from .detection import Detection

AlignmentMethod = Literal["landmarks", "box"]
ALIGNED_SIZE = 160
# Margin of the box method in output pixels (facenet-pytorch semantics): Sandberg's LFW crops used a
# margin of 32 px, i.e. the face box spans 128 of the 160 pixels.
BOX_MARGIN = 32

# Where the 5 landmarks (left eye, right eye, nose, left mouth corner, right mouth corner; "left" as
# seen in the picture) sit on average in a 160x160 box crop with BOX_MARGIN, mirror-averaged. Measured
# by training/alignment_template.py on 600 LFW faces so that landmark-aligned crops have the same scale and framing
# as the box crops FaceNet was trained on.
LANDMARK_TEMPLATE_160 = np.array(
    [
        [51.16, 65.88],
        [108.84, 65.88],
        [80.00, 91.29],
        [54.45, 113.19],
        [105.55, 113.19],
    ],
    dtype=np.float32,
)


def align_faces(
    image: np.ndarray,
    detections: Sequence[Detection],
    method: AlignmentMethod = "landmarks",
    size: int = ALIGNED_SIZE,
    box_margin: float = BOX_MARGIN,
) -> np.ndarray:
    """Return an (N, size, size, 3) uint8 array: one aligned crop per detection, in order.
    `box_margin` (output pixels around the box, "box" method only) is there for ablations."""
    crops = np.empty((len(detections), size, size, 3), dtype=np.uint8)
    pil = Image.fromarray(image)
    for index, detection in enumerate(detections):
        if method == "landmarks":
            crops[index] = _warp_to_template(pil, detection.landmarks, size)
        elif method == "box":
            crops[index] = _box_crop(pil, detection.box, size, box_margin)
        else:
            raise ValueError(f"unknown alignment method {method!r}")
    return crops


def face_axes(landmarks: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """The eye distance and the face's unit axes from MTCNN's five landmarks: across (left eye to right eye,
    following the head's roll) and down."""
    eye_l, eye_r = landmarks[:2].astype(np.float64)
    d = float(np.linalg.norm(eye_r - eye_l))
    ux = (eye_r - eye_l) / d
    return d, ux, np.array([-ux[1], ux[0]])


def similarity_transform(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Least-squares similarity transform (Umeyama 1991) mapping source points onto target: a 2x3 matrix."""
    source = source.astype(np.float64)
    target = target.astype(np.float64)
    source_mean, target_mean = source.mean(0), target.mean(0)
    source_centered, target_centered = source - source_mean, target - target_mean
    covariance = target_centered.T @ source_centered / len(source)
    u, singular, vt = np.linalg.svd(covariance)
    reflection = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        reflection[1, 1] = -1
    rotation = u @ reflection @ vt
    variance = source_centered.var(0).sum()
    scale = (singular * np.diag(reflection)).sum() / variance if variance > 0 else 1.0
    shift = target_mean - scale * rotation @ source_mean
    return np.hstack([scale * rotation, shift[:, None]])


def _warp_to_template(image: Image.Image, landmarks: np.ndarray, size: int) -> np.ndarray:
    template = LANDMARK_TEMPLATE_160 * (size / ALIGNED_SIZE)
    forward = similarity_transform(landmarks, template)
    # PIL wants the inverse map: for each output pixel, where to sample in the input.
    inverse = np.linalg.inv(np.vstack([forward, [0, 0, 1]]))[:2]
    # Shrinking a big face in one bilinear step aliases; pre-shrink the picture when the scale is small.
    scale = float(np.hypot(*forward[:, 0]))
    if scale < 0.5:
        factor = int(1 / scale)
        image, inverse = _reduced_around(image, inverse, size, factor)
    warped = image.transform((size, size), Image.AFFINE, inverse.flatten().tolist(), resample=Image.BILINEAR)
    return np.asarray(warped)


def _reduced_around(image: Image.Image, inverse: np.ndarray, size: int, factor: int) -> tuple[Image.Image, np.ndarray]:
    """The picture shrunk by `factor` (PIL's box reduce) where the size x size output samples it, and the
    inverse map onto that: the same pixels as reducing the whole picture, since the region starts on the
    reduce's block grid, at a fraction of the cost on a large picture with one face."""
    corners = inverse @ np.array([[0, size, 0, size], [0, 0, size, size], [1, 1, 1, 1]], dtype=np.float64)
    low = np.floor(corners.min(1) / factor).astype(int) - 1  # a block of margin for the bilinear taps
    high = np.ceil(corners.max(1) / factor).astype(int) + 1
    left, top = (max(0, int(v)) * factor for v in low)
    right, bottom = min(image.width, int(high[0]) * factor), min(image.height, int(high[1]) * factor)
    if right <= left or bottom <= top:  # the output lies outside the picture: all of it is fill
        return image.reduce(factor), inverse / factor
    region = image.crop((left, top, right, bottom)).reduce(factor)
    return region, (inverse - np.array([[0, 0, left], [0, 0, top]])) / factor


def _box_crop(image: Image.Image, box: np.ndarray, size: int, box_margin: float) -> np.ndarray:
    margin = box_margin * size / ALIGNED_SIZE
    x1, y1, x2, y2 = (float(v) for v in box)
    pad_x = margin * (x2 - x1) / (size - margin) / 2
    pad_y = margin * (y2 - y1) / (size - margin) / 2
    crop_box = (
        int(max(x1 - pad_x, 0)),
        int(max(y1 - pad_y, 0)),
        int(min(x2 + pad_x, image.width)),
        int(min(y2 + pad_y, image.height)),
    )
    return np.asarray(image.crop(crop_box).resize((size, size), Image.BILINEAR))
