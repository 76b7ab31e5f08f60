"""Finding masked faces: MTCNN was trained on unmasked faces and misses many masked ones.

`detect_faces_masked` is the mask path's detector: the normal pass, then a second pass with
lower thresholds (sharing the first pass's P-Net work) whose extra faces are added (not those overlapping
a face already found, nor those lying largely inside one), and, when a picture holds no
detectable face but is itself shaped like a face crop (a small, roughly square picture, e.g.
an uploaded face photo), the whole picture taken as one face with landmarks at the mean
positions measured on face-crop datasets. Recall before/after: benchmarks/mask.py.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .detection import DetectorConfig, Detection, FaceDetector, iou, share_inside

# Mean MTCNN landmarks in face-crop pictures, as fractions of the picture side (training.crop_geometry:
# mean over the mask set's with_mask and without_mask crops): eyes, nose, mouth corners.
FACE_CROP_LANDMARKS = np.array([[0.326, 0.384], [0.686, 0.381], [0.502, 0.591], [0.350, 0.760], [0.658, 0.760]],
                               dtype=np.float32)
WHOLE_PICTURE_SCORE = 0.0  # marks a face that was assumed, not detected


@dataclass(frozen=True)
class MaskedFaceSearch:
    """Options of `detect_faces_masked`."""

    # Second pass: lower stage thresholds and final score (measured in benchmarks/mask.py); None: no second pass.
    second_pass_thresholds: tuple[float, float, float] | None = (0.5, 0.5, 0.5)
    second_pass_min_score: float = 0.8
    # Whole-picture fallback only for pictures that look like a face crop.
    whole_picture: bool = True
    whole_picture_max_side: int = 640
    whole_picture_max_aspect: float = 1.4
    max_overlap: float = 0.3  # IoU above which a second-pass face duplicates a first-pass one
    # Share of a second-pass face's box inside a first-pass face above which it is a part of that face
    # (hair, a cheek: on the group photo a low-scoring box on one man's hair lay 42 % inside his face).
    max_inside: float = 0.3


def whole_picture_face(image: np.ndarray) -> Detection:
    """The whole picture as one face, landmarks where face-crop datasets have them on average."""
    h, w = image.shape[:2]
    side = np.array([w, h], dtype=np.float32)
    return Detection(box=np.array([0, 0, w, h], dtype=np.float32), landmarks=FACE_CROP_LANDMARKS * side,
                     score=WHOLE_PICTURE_SCORE)


def looks_like_face_crop(image: np.ndarray, search: MaskedFaceSearch) -> bool:
    h, w = image.shape[:2]
    return max(h, w) <= search.whole_picture_max_side and max(h, w) / max(min(h, w), 1) <= search.whole_picture_max_aspect


def detect_faces_masked(detector: FaceDetector, image: np.ndarray, search: MaskedFaceSearch | None = None,
                        config: DetectorConfig | None = None) -> list[Detection]:
    """Faces for the mask check, largest first: `detector.detect` (with `config`, default the detector's)
    plus the second pass and the whole-picture fallback of `search` (defaults: both on).
    Feed the result to `align_faces`."""
    search = search or MaskedFaceSearch()
    config = config or detector.config
    passes = [config]
    if search.second_pass_thresholds is not None:
        passes.append(replace(config, thresholds=search.second_pass_thresholds, min_score=search.second_pass_min_score))
    found, *second = detector.detect_passes(image, passes)
    for extra in second[0] if second else []:
        if all(iou(extra.box, d.box) <= search.max_overlap and share_inside(extra.box, d.box) <= search.max_inside
               for d in found):
            found.append(extra)
    if not found and search.whole_picture and looks_like_face_crop(image, search):
        found.append(whole_picture_face(image))
    return sorted(found, key=lambda d: d.area, reverse=True)
