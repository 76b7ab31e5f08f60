"""Face detection with facenet-pytorch's MTCNN (its wheel ships the weights).

Detection runs on a downscaled copy of large pictures; boxes and landmarks are mapped back to the
original picture's pixel coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from .device import model_call
from .images import resize_to_max_side
from .mtcnn import Mtcnn, Pyramid, box_areas, box_intersections, box_ious, squares

# The retries' borders on each side, as shares of the picture's longer side, filled with the picture's mean
# colour, tried in turn until a face is found: on rmfd_dev's 18 missed faces, a 0.3 border alone found 14
# and 0.15 finds one of the rest; edge or mirror padding did worse.
TIGHT_CROP_BORDERS = (0.3, 0.15)


@dataclass(frozen=True)
class DetectorConfig:
    """MTCNN settings. `min_face_size` is in pixels of the (possibly downscaled) detection copy."""

    min_face_size: int = 20
    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7)
    max_side: int = 960  # longer side of the copy MTCNN sees; larger pictures are downscaled first
    min_score: float = 0.9  # final face probability to keep a detection
    # When a pass finds nothing, look again on the picture framed by a border (TIGHT_CROP_BORDERS): MTCNN
    # misses faces that fill a tight crop (on rmfd_dev's ~140 px head crops 18 of 365 were missed, with the
    # borders 3 are: benchmarks/identity_domains.py). Costs more detections only on pictures without a face.
    retry_with_border: bool = True


@dataclass(frozen=True)
class Detection:
    """One face: box (x1, y1, x2, y2), 5 landmarks (eyes, nose, mouth corners) as (x, y), score."""

    box: np.ndarray = field(repr=False)  # (4,) float32, original picture pixels
    landmarks: np.ndarray = field(repr=False)  # (5, 2) float32, original picture pixels
    score: float

    @property
    def width(self) -> float:
        return float(self.box[2] - self.box[0])

    @property
    def height(self) -> float:
        return float(self.box[3] - self.box[1])

    @property
    def area(self) -> float:
        return box_area(self.box)

    def in_picture(self, width: int, height: int, scale: float = 1.0, offset: np.ndarray | None = None) -> Detection:
        """This detection, found on a copy of a picture, in that picture's pixels (float32): `offset` (x, y)
        subtracted, then divided by `scale`, its box clipped to the picture's `width` x `height`.

        The detector looks at copies: the picture shrunk by `scale` (DetectorConfig.max_side), framed by a border
        at `offset` (the tight-crop retry), or cut out of it (the mask search's centre square: a negative
        `offset`). One mapping back keeps boxes and landmarks in step and every box inside the picture."""
        box, landmarks = self.box, self.landmarks
        if offset is not None:
            box, landmarks = box - np.tile(offset, 2), landmarks - offset
        box = (box / scale).astype(np.float32)
        box[[0, 2]] = box[[0, 2]].clip(0, width)
        box[[1, 3]] = box[[1, 3]].clip(0, height)
        return Detection(box=box, landmarks=(landmarks / scale).astype(np.float32), score=self.score)


class FaceDetector:
    """Finds every face in an RGB uint8 picture. Safe to call from several threads."""

    def __init__(self, config: DetectorConfig | None = None, device: torch.device | str = "cpu") -> None:
        self.config = config or DetectorConfig()
        self.device = torch.device(device)
        self._stages = Mtcnn(self.device)

    def detect(self, image: np.ndarray, config: DetectorConfig | None = None) -> list[Detection]:
        """Return the faces sorted largest first. `config` overrides thresholds for this call only."""
        return self.detect_passes(image, [config or self.config])[0]

    @model_call()
    def detect_passes(self, image: np.ndarray, configs: Sequence[DetectorConfig],
                      new_faces_only: bool = False) -> list[list[Detection]]:
        """`detect` once per config; configs with the same min face size and max side share one
        P-Net pass (most of the cost), so a second set of thresholds is nearly free. A pass that finds
        nothing is run again on the picture with a border (`DetectorConfig.retry_with_border`, TIGHT_CROP_BORDERS).
        With `new_faces_only`, a pass leaves out the faces that earlier passes sharing its pyramid found (their boxes
        skip O-Net: `Mtcnn.detect`'s `known`), and is retried with a border only when no earlier pass found a face."""
        results = self._passes(image, configs, new_faces_only)
        for share in TIGHT_CROP_BORDERS:
            empty = [index for index, (found, config) in enumerate(zip(results, configs))
                     if not found and config.retry_with_border and not (new_faces_only and any(results[:index]))]
            if not empty:
                break
            framed, offset, scale = framed_small(image, share, max(configs[i].max_side for i in empty))
            for index, found in zip(empty, self._passes(framed, [configs[i] for i in empty], new_faces_only)):
                results[index] = [d.in_picture(image.shape[1], image.shape[0], scale, offset) for d in found]
        return results

    def _passes(self, image: np.ndarray, configs: Sequence[DetectorConfig],
                new_faces_only: bool = False) -> list[list[Detection]]:
        pyramids: dict[tuple[int, int], tuple[Pyramid, float]] = {}
        found: dict[tuple[int, int], list[np.ndarray]] = {}  # per pyramid, (N, 5) boxes and scores of the passes' faces
        results = []
        for config in configs:
            key = (config.min_face_size, config.max_side)
            if key not in pyramids:
                small, scale = resize_to_max_side(image, config.max_side)
                pyramids[key] = (self._stages.pyramid(small, config.min_face_size), scale)
            pyramid, scale = pyramids[key]
            known = np.concatenate(found[key]) if new_faces_only and found.get(key) else None
            raw = self._stages.detect(pyramid, config.thresholds, known)
            reported = raw.scores >= config.min_score
            found.setdefault(key, []).append(np.concatenate([raw.boxes[reported], raw.scores[reported, None]], axis=1))
            height, width = image.shape[:2]
            detections = [
                Detection(box=box, landmarks=points, score=float(score)).in_picture(width, height, scale)
                for box, score, points in zip(raw.boxes, raw.scores, raw.landmarks)
                if score >= config.min_score
            ]
            results.append(sorted(detections, key=lambda d: d.area, reverse=True))
        return results

    @model_call()
    def refine(self, image: np.ndarray, boxes: list[np.ndarray], min_score: float = 0.8) -> list[Detection | None]:
        """Re-locate faces near known boxes with MTCNN's last stage only (O-Net): a cheap tracker.

        For each box, returns the refined Detection, or None where O-Net no longer sees a face there
        (the face left, turned away or is occluded): the caller then runs a full `detect`.
        """
        if not boxes:
            return []
        known = squares(np.stack(boxes).astype(np.float32))
        found = self._stages.onet_at(self._stages.picture(image), known, pad_outside=True)
        return [
            Detection(box=box, landmarks=points, score=float(score)).in_picture(image.shape[1], image.shape[0])
            if score > 0 and score >= min_score else None  # 0: the box had no pixel in the picture
            for box, points, score in zip(found.boxes, found.landmarks, found.scores)
        ]


def with_border(image: np.ndarray, share: float) -> tuple[np.ndarray, np.ndarray]:
    """The picture framed by a border of `share` of its longer side in its mean colour, and the (x, y)
    offset of the original inside it."""
    pad = int(round(share * max(image.shape[:2])))
    colour = image.reshape(-1, image.shape[-1]).mean(axis=0).astype(np.uint8)
    framed = np.empty((image.shape[0] + 2 * pad, image.shape[1] + 2 * pad, image.shape[2]), np.uint8)
    framed[...] = colour
    framed[pad : pad + image.shape[0], pad : pad + image.shape[1]] = image
    return framed, np.array([pad, pad], np.float32)


def framed_small(image: np.ndarray, share: float, max_side: int) -> tuple[np.ndarray, np.ndarray, float]:
    """`with_border` of the picture shrunk first so that, border included, its longer side is at most about
    `max_side` (the detection copy's size): a 40-megapixel upload is never copied whole with a border around it
    (that copy alone was 376 MB). Returns (framed copy, offset of the shrunk picture in it, the shrink scale)."""
    small, scale = resize_to_max_side(image, int(max_side / (1 + 2 * share)))
    framed, offset = with_border(small, share)
    return framed, offset, scale


def iou(first: np.ndarray, second: np.ndarray) -> float:
    """Intersection over union of two (x1, y1, x2, y2) boxes."""
    return float(box_ious(np.asarray(first)[None], np.asarray(second)[None])[0, 0])


def share_inside(box: np.ndarray, other: np.ndarray) -> float:
    """The share of `box`'s area that lies inside `other` (0 to 1)."""
    area = box_area(box)
    return float(box_intersections(np.asarray(box)[None], np.asarray(other)[None])[0, 0] / area) if area > 0 else 0.0


def box_area(box: np.ndarray) -> float:
    """Area of an (x1, y1, x2, y2) box; 0 for an empty one."""
    return float(box_areas(np.asarray(box)[None])[0])
