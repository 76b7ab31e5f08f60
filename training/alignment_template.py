"""Measure where the 5 MTCNN landmarks sit, on average, in a 160x160 box crop of an LFW face.

The result is pipeline.alignment.LANDMARK_TEMPLATE_160: landmark alignment onto it keeps the scale and
framing of the box crops FaceNet was trained on, while removing roll.

    python -m training.alignment_template [--images 1000]
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import numpy as np

from pipeline.alignment import ALIGNED_SIZE, BOX_MARGIN
from pipeline.detection import FaceDetector
from pipeline.images import load_rgb

LFW_DIR = Path("../shared/data/identity/lfw")


def box_crop_landmarks(box: np.ndarray, landmarks: np.ndarray, width: int, height: int) -> np.ndarray:
    """Landmarks in the coordinates of the box crop that pipeline.alignment's "box" method makes."""
    x1, y1, x2, y2 = box
    pad_x = BOX_MARGIN * (x2 - x1) / (ALIGNED_SIZE - BOX_MARGIN) / 2
    pad_y = BOX_MARGIN * (y2 - y1) / (ALIGNED_SIZE - BOX_MARGIN) / 2
    left, top = int(max(x1 - pad_x, 0)), int(max(y1 - pad_y, 0))
    right, bottom = int(min(x2 + pad_x, width)), int(min(y2 + pad_y, height))
    scale = np.array([ALIGNED_SIZE / (right - left), ALIGNED_SIZE / (bottom - top)])
    return (landmarks - np.array([left, top])) * scale


def symmetrise(template: np.ndarray) -> np.ndarray:
    """Mirror-average the template about the crop's vertical centre line.

    MTCNN boxes sit slightly off-centre on the face; a symmetric template keeps aligned faces centred
    and makes a mirrored face align to the mirrored crop.
    """
    mirrored = template[[1, 0, 2, 4, 3]].copy()
    mirrored[:, 0] = ALIGNED_SIZE - mirrored[:, 0]
    return (template + mirrored) / 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    paths = sorted(LFW_DIR.glob("*/*.jpg"))
    random.Random(args.seed).shuffle(paths)
    detector = FaceDetector()
    points = []
    for path in paths[: args.images]:
        image = load_rgb(path)
        faces = detector.detect(image)
        if faces:  # LFW's subject is the largest face in the centre
            face = faces[0]
            points.append(box_crop_landmarks(face.box, face.landmarks, image.shape[1], image.shape[0]))
    template = symmetrise(np.mean(points, axis=0))
    print(f"faces used: {len(points)}")
    print("LANDMARK_TEMPLATE_160 =")
    for x, y in template:
        print(f"    [{x:.2f}, {y:.2f}],")


if __name__ == "__main__":
    main()
