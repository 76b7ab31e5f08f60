"""Face-crop datasets as the app frames them: found by the pipeline's MTCNN, aligned to the landmark
template, then cut at the head's sub-crop. The emotion head was trained on FER2013's own framing
and served the pipeline's; training on both (and scoring both) closes that gap.

    python -m training.pipeline_framing     # builds the caches for FER2013 train/test and CK+

Each 48x48 crop is upscaled x4 (faces in photos and webcams are larger than 48 px) and edge-padded by half
its side, the detector runs on it as the app's does (a border retry when the first pass finds nothing), the largest
face is aligned and its FER-like sub-crop cut back to 48x48 gray. Images where no face is found keep
their own framing and are flagged. Cached as npz beside the other dataset caches.
"""
from __future__ import annotations

import time

import numpy as np
import torch
from PIL import Image

from pipeline.alignment import align_faces
from pipeline.detection import DetectorConfig, FaceDetector
from pipeline.heads import FER_CROP, FER_SIZE, cut_and_resize
from .common import seed_everything
from .datasets import CACHE_DIR, load_ckplus, load_fer

UPSCALE = 4


def pipeline_framed(images: np.ndarray, detector: FaceDetector | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(N,48,48) uint8 gray face crops -> (the same crops framed as the app frames them, found flags)."""
    detector = detector or FaceDetector()
    config = DetectorConfig(min_face_size=60)  # the face fills the picture: skip the small pyramid levels
    side = FER_SIZE * UPSCALE
    out, found = images.copy(), np.zeros(len(images), bool)
    for i, img in enumerate(images):
        big = np.asarray(Image.fromarray(img).resize((side, side), Image.BICUBIC))
        # Edge-padded: in a real photo the face has surroundings, which the alignment's rotation and
        # zoom-out bring into the crop; black corners would be a look the app never serves.
        rgb = np.repeat(np.pad(big, side // 2, mode="edge")[..., None], 3, axis=2)
        faces = detector.detect(rgb, config)  # with the app's border retry
        if not faces:
            continue
        crop = align_faces(rgb, faces[:1])
        x = cut_and_resize(crop, FER_CROP, FER_SIZE, gray=True)  # [-1,1]
        out[i] = ((x[0, 0] + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()
        found[i] = True
    return out, found


def load_framed(name: str, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cached `pipeline_framed` of a named image set (its row order)."""
    path = CACHE_DIR / f"{name}_pipeline_framed.npz"
    if path.exists():
        z = np.load(path, allow_pickle=False)
        if len(z["images"]) == len(images):
            return z["images"], z["found"]
    t = time.time()
    framed, found = pipeline_framed(images)
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    np.savez(path, images=framed, found=found)
    print(f"{name}: {found.sum()} of {len(found)} faces found and framed ({time.time() - t:.0f} s)", flush=True)
    return framed, found


def main() -> None:
    seed_everything(0)  # threads as configured; detection itself is deterministic
    load_framed("fer_test", load_fer("test").images)
    load_framed("ckplus", load_ckplus()[0].images)
    load_framed("fer_train", load_fer("train").images)


if __name__ == "__main__":
    main()
