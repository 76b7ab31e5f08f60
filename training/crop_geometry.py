"""Measure where faces sit in each training set, to set the heads' sub-crops of the 160x160 aligned crop.

For a sample of images, MTCNN (the pipeline's detector) finds the 5 landmarks on an upscaled copy
placed on a larger canvas; their mean position, as a fraction of the image side, is matched by a
similarity transform onto the pipeline's landmark template. The training image square then maps to
a box of the aligned crop: that box is what a head must cut out at serve time.

    python -m training.crop_geometry
"""
from __future__ import annotations

import json

import numpy as np

from pipeline.alignment import ALIGNED_SIZE, LANDMARK_TEMPLATE_160, similarity_transform
from pipeline.detection import FaceDetector
from .datasets import load_fer, load_mask


def mean_landmarks(images: np.ndarray, detector: FaceDetector, upscale: int) -> tuple[np.ndarray, int]:
    """Mean landmarks as fractions of the image side, over images where exactly one face is found."""
    from PIL import Image

    pts = []
    for img in images:
        pil = Image.fromarray(img).convert("RGB")
        side = pil.width * upscale
        pil = pil.resize((side, side), Image.BICUBIC)
        canvas = Image.new("RGB", (side * 2, side * 2), (128, 128, 128))
        canvas.paste(pil, (side // 2, side // 2))
        dets = detector.detect(np.asarray(canvas))
        if len(dets) == 1:
            pts.append((dets[0].landmarks - side // 2) / side)
    return np.mean(np.asarray(pts, dtype=np.float64), axis=0), len(pts)


def crop_box(landmarks_frac: np.ndarray) -> dict:
    """Box (x0, y0, side) in aligned-crop pixels that corresponds to the training image square."""
    m = similarity_transform(landmarks_frac, LANDMARK_TEMPLATE_160)  # unit square -> aligned crop
    scale = float(np.hypot(*m[:, 0]))
    angle = float(np.degrees(np.arctan2(m[1, 0], m[0, 0])))
    x0, y0 = m @ np.array([0.0, 0.0, 1.0])
    return {"x0": round(float(x0), 1), "y0": round(float(y0), 1), "side": round(scale, 1),
            "rotation_deg": round(angle, 2), "aligned_size": ALIGNED_SIZE}


def main() -> None:
    import torch

    torch.set_num_threads(1)  # shared CPU
    detector = FaceDetector()
    rng = np.random.default_rng(0)
    fer = load_fer("train")
    fer_pts, n_fer = mean_landmarks(fer.images[rng.choice(len(fer.images), 150, replace=False)], detector, 4)
    mask = load_mask("train", 128)
    no_mask = mask.images[mask.labels == 1]
    with_mask = mask.images[mask.labels == 0]
    nm_pts, n_nm = mean_landmarks(no_mask[rng.choice(len(no_mask), 80, replace=False)], detector, 2)
    wm_pts, n_wm = mean_landmarks(with_mask[rng.choice(len(with_mask), 80, replace=False)], detector, 2)
    out = {"fer": {"n": n_fer, "landmarks": fer_pts.round(3).tolist(), **crop_box(fer_pts)},
           "mask_without": {"n": n_nm, "landmarks": nm_pts.round(3).tolist(), **crop_box(nm_pts)},
           "mask_with": {"n": n_wm, "landmarks": wm_pts.round(3).tolist(), **crop_box(wm_pts)}}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
