"""Face-crop datasets as the app frames them: found by the pipeline's MTCNN, aligned to the landmark
template, then cut at the head's sub-crop. The emotion head was trained on FER2013's own framing
and served the pipeline's; training on both (and scoring both) closes that gap.

    python -m training.pipeline_framing     # builds the caches for FER2013 train/test and CK+

Each 48x48 crop is upscaled x4 (faces in photos and webcams are larger than 48 px) and edge-padded by half
its side, the detector runs on it as the app's does (a border retry when the first pass finds nothing), the largest
face is aligned and its FER-like sub-crop cut back to 48x48 gray. Images where no face is found keep
their own framing and are flagged. Cached as npz beside the other dataset caches.

Beyond the FER picture's edge the framed crop shows smeared edge pixels; in a photo something else is there.
`load_framing_geometry` recovers, per framed crop, the similarity that maps it back onto its FER picture (the
alignment transform was not kept; it is fitted to the cached crop by batched image registration, a few minutes for
FER2013 train on one core), so `framed_outside` says which of its pixels come from outside the picture and
`beyond_edge` replaces them with other content (training/train_emotion.py).

    python -m training.pipeline_framing --geometry     # also fits the geometry of the FER2013 train crops
    python -m training.pipeline_framing --mask     # the mask set's pictures found in scenes (mask_scene_framed)
    python -m training.pipeline_framing --painted  # LFW faces bare and with painted masks (lfw_painted)
    python -m training.pipeline_framing --scenes   # FER2013 train pasted in scenes and found (fer_scene_framed)
"""
from __future__ import annotations

import argparse
import hashlib
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from pipeline.alignment import align_faces
from pipeline.detection import DetectorConfig, Detection, FaceDetector
from pipeline.heads import FER_CROP, FER_SIZE, MASK_CROP, MASK_LABELS, MASK_SOURCE, cut_and_resize
from pipeline.mask_detection import MaskedFaceSearch
from shared_data import DATA_DIR
from .common import seed_everything
from .datasets import OBJECT_PICTURES, CACHE_DIR, lfw_training_people, load_ckplus, load_fer, load_mask, object_pictures, split_rows
from .evaluation import hits_box, paste_on_canvas
from .mask_painting import PAINTER_VERSION, paint_mask

UPSCALE = 4
# The face fills the picture: the small pyramid levels are skipped.
FER_FRAMING_DETECTOR = DetectorConfig(min_face_size=60)


def pipeline_framed(images: np.ndarray, detector: FaceDetector | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(N,48,48) uint8 gray face crops -> (the same crops framed as the app frames them, found flags)."""
    detector = detector or FaceDetector()
    config = FER_FRAMING_DETECTOR
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
        out[i] = _fer_framed(rgb, faces[0])
        found[i] = True
    return out, found


FER_SCENE_SEED = 37


def fer_scene_framed(images: np.ndarray, seed: int = FER_SCENE_SEED,
                     detector: FaceDetector | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(N,48,48) uint8 gray FER crops as the app frames them in a photo: upscaled x4 (bicubic, 192 px) and pasted
    with a hard edge at a random spot of a 480-px region of an object picture's training rows
    (`training.datasets.object_pictures`, never benchmarks/emotion.py's coffee-cup and rocket photos), found by the
    app's detector (largest face), aligned and cut at FER_CROP back to 48x48 gray. `pipeline_framed` pads the
    picture's own edge outwards instead; in a scene the content past the edge and the landmarks that edge moves
    cost the head about 2.5 points on FER validation. Returns (crops, found flags; a crop keeps FER's framing
    where no face is found)."""
    detector = detector or FaceDetector()
    backgrounds = [Image.fromarray(split_rows(p, "train")) for p in object_pictures().values()]
    rng = np.random.default_rng(seed)
    out, found = images.copy(), np.zeros(len(images), bool)
    for i, img in enumerate(images):
        background = backgrounds[int(rng.integers(len(backgrounds)))]
        scene, _ = paste_on_canvas(Image.fromarray(img), background, rng, face_side=UPSCALE * FER_SIZE)
        faces = detector.detect(scene)
        if faces:
            out[i] = _fer_framed(scene, faces[0])
            found[i] = True
    return out, found


def load_scene_framed(name: str, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cached `fer_scene_framed` of a named image set (its row order)."""
    recipe = (*_rows_key(images), FER_SCENE_SEED, UPSCALE, DetectorConfig(), FER_CROP, OBJECT_PICTURES)
    z = _cached(f"{name}_scene_framed", recipe, lambda: dict(zip(("images", "found"), fer_scene_framed(images))))
    return z["images"], z["found"]


def _fer_framed(picture: np.ndarray, face: Detection) -> np.ndarray:
    """The face aligned and cut at FER_CROP, back to FER_SIZE px gray uint8: what the emotion head is served."""
    return _as_uint8(cut_and_resize(align_faces(picture, [face]), FER_CROP, FER_SIZE, gray=True)[0, 0])


def _rows_key(images: np.ndarray) -> tuple[int, str]:
    """The row count and a digest of the pixels: the part of a cache recipe that names its images."""
    return len(images), hashlib.sha1(images.tobytes()).hexdigest()


def _as_uint8(x: torch.Tensor) -> np.ndarray:
    """A head input in [-1, 1] (C,H,W or H,W) back to uint8 pixels, channels last."""
    x = ((x + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    return (x.permute(1, 2, 0) if x.ndim == 3 else x).numpy()


def _cache_path(stem: str, recipe: object) -> Path:
    """CACHE_DIR/<stem>_<digest of repr(recipe)>.npz. The recipe names everything the cached arrays depend on
    (rows, seeds, detector passes, crop boxes), so changed settings build a new cache instead of reading stale
    crops."""
    return CACHE_DIR / f"{stem}_{hashlib.sha1(repr(recipe).encode()).hexdigest()[:10]}.npz"


def _cached(stem: str, recipe: object, build: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The arrays of `build()`, kept at `_cache_path(stem, recipe)`."""
    path = _cache_path(stem, recipe)
    if path.exists():
        with np.load(path, allow_pickle=False) as z:
            return {key: z[key] for key in z.files}
    t = time.time()
    arrays = build()
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    print(f"{stem}: built in {time.time() - t:.0f} s ({path.name})", flush=True)
    return arrays


def _framing_recipe(images: np.ndarray) -> tuple:
    return (*_rows_key(images), UPSCALE, FER_FRAMING_DETECTOR, FER_CROP)


def load_framed(name: str, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cached `pipeline_framed` of a named image set (its row order)."""
    z = _cached(f"{name}_pipeline_framed", _framing_recipe(images),
                lambda: dict(zip(("images", "found"), pipeline_framed(images))))
    return z["images"], z["found"]


def similarity(params: torch.Tensor) -> torch.Tensor:
    """(N,4) (a, b, tx, ty) -> (N,2,3) affine_grid thetas [[a,-b,tx],[b,a,ty]]: framed-crop coordinates -> the FER
    picture's, both normalised to [-1,1] (align_corners=False)."""
    a, b, tx, ty = params.unbind(1)
    return torch.stack([torch.stack([a, -b, tx], 1), torch.stack([b, a, ty], 1)], 1)


def _warp(src: torch.Tensor, params: torch.Tensor, padding: str = "border") -> torch.Tensor:
    grid = F.affine_grid(similarity(params), [len(src), 1, FER_SIZE, FER_SIZE], align_corners=False)
    return F.grid_sample(src, grid, mode="bilinear", padding_mode=padding, align_corners=False)


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    if sigma <= 0:
        return x
    k = torch.exp(-torch.arange(-4, 5, dtype=torch.float32) ** 2 / (2 * sigma ** 2))
    k = k / k.sum()
    x = F.conv2d(F.pad(x, (4, 4, 0, 0), mode="replicate"), k.view(1, 1, 1, 9))
    return F.conv2d(F.pad(x, (0, 0, 4, 4), mode="replicate"), k.view(1, 1, 9, 1))


def register_framing(originals: np.ndarray, framed: np.ndarray, batch: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Fit, per image, the similarity that maps its framed crop onto its FER picture (edge padding = grid_sample's
    border padding): a coarse grid over scale and vertical shift, then Adam, coarse to fine (Gaussian blur 2, 1, 0).
    Returns (N,4) float32 params (see `similarity`) and the final mean squared error in [-1,1] units (a good fit
    is ~4e-4, 2.5 grey levels RMS; a failed one > 5e-3)."""
    params, errors = [], []
    for s in range(0, len(originals), batch):
        src = torch.from_numpy(originals[s:s + batch]).float().unsqueeze(1) / 127.5 - 1
        dst = torch.from_numpy(framed[s:s + batch]).float().unsqueeze(1) / 127.5 - 1
        n = len(src)
        best_err, best = torch.full((n,), float("inf")), torch.zeros(n, 4)
        sb, db = _blur(src, 1.0), _blur(dst, 1.0)
        for scale in np.linspace(0.8, 1.6, 9):
            for ty in np.linspace(-0.3, 0.3, 7):
                p = torch.tensor([scale, 0.0, 0.0, ty], dtype=torch.float32).expand(n, 4)
                err = ((_warp(sb, p) - db) ** 2).mean((1, 2, 3))
                better = err < best_err
                best_err[better], best[better] = err[better], p[better]
        p = best.clone().requires_grad_(True)
        opt = torch.optim.Adam([p], lr=0.02)
        for sigma, steps in ((2.0, 40), (1.0, 40), (0.0, 40)):
            sb, db = _blur(src, sigma), _blur(dst, sigma)
            for _ in range(steps):
                err = ((_warp(sb, p) - db) ** 2).mean((1, 2, 3))
                opt.zero_grad()
                err.sum().backward()
                opt.step()
            for group in opt.param_groups:
                group["lr"] *= 0.5
        with torch.no_grad():
            errors.append(((_warp(src, p) - dst) ** 2).mean((1, 2, 3)).numpy())
        params.append(p.detach().numpy())
        print(f"registered {s + n} of {len(originals)}", flush=True)
    return np.concatenate(params).astype(np.float32), np.concatenate(errors).astype(np.float32)


MASK_SCENE_SIDES = (80, 220)  # pasted face sizes, px, on a 480 px scene
MASK_SCENE_SEED = 29


def mask_scene_framed(files: list[str], seed: int = MASK_SCENE_SEED,
                      detector: FaceDetector | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Mask-set pictures (paths under DATA_DIR) as the mask check frames them in a photo: pasted at a random size
    on a training-rows region of an object picture (`training.datasets.object_pictures`, never the benchmarks'
    backgrounds), found by the normal pass, else by the relaxed second pass (`MaskedFaceSearch`'s thresholds; no
    face check: its answer is what this teaches), aligned to the landmarks and cut at MASK_CROP, MASK_SOURCE px
    RGB. The face check had turned away masked faces found in scenes (P(face) 0.01-0.77 where O-Net said
    0.8-0.99): the head had only seen masked faces framed by the dataset. Returns (crops, found flags)."""
    detector = detector or FaceDetector()
    passes = MaskedFaceSearch().passes(detector.config)
    backgrounds = [Image.fromarray(split_rows(p, "train")) for p in object_pictures().values()]
    rng = np.random.default_rng(seed)
    out = np.zeros((len(files), MASK_SOURCE, MASK_SOURCE, 3), np.uint8)
    found = np.zeros(len(files), bool)
    for i, file in enumerate(files):
        side = int(rng.integers(*MASK_SCENE_SIDES))
        scene, box = paste_on_canvas(Image.open(DATA_DIR / file), backgrounds[int(rng.integers(len(backgrounds)))],
                                     rng, face_side=side)
        crop = _first_hit_framed(detector, scene, passes, box)
        if crop is not None:
            out[i], found[i] = crop, True
    return out, found


def _mask_framed(picture: np.ndarray, face: Detection) -> np.ndarray:
    """The face aligned and cut at MASK_CROP, MASK_SOURCE px RGB uint8: what the mask head is served."""
    return _as_uint8(cut_and_resize(align_faces(picture, [face]), MASK_CROP, MASK_SOURCE, gray=False)[0])


def _first_hit_framed(detector: FaceDetector, picture: np.ndarray, passes: list[DetectorConfig],
                      box: tuple[int, int, int, int]) -> np.ndarray | None:
    """`_mask_framed` of the first face on `box` (`hits_box`) of the first pass that boxes one, else None."""
    for faces in detector.detect_passes(picture, passes):
        hits = [d for d in faces if hits_box(d.box, box)]
        if hits:
            return _mask_framed(picture, hits[0])
    return None


def _search_passes() -> list[DetectorConfig]:
    return MaskedFaceSearch().passes(DetectorConfig())


def load_mask_scene_framed(split: str) -> tuple[np.ndarray, np.ndarray]:
    """Cached `mask_scene_framed` of mask/``split`` in `training.datasets.load_mask`'s row order."""
    files = load_mask(split, 72).files
    recipe = (files, MASK_SCENE_SEED, MASK_SCENE_SIDES, _search_passes(), MASK_CROP, MASK_SOURCE)
    z = _cached(f"mask_{split}_scene_framed", recipe, lambda: dict(zip(("images", "found"), mask_scene_framed(files))))
    return z["images"], z["found"]


LFW_PAINTED_PEOPLE = {"train": 700, "val": 175}  # people drawn per split, one picture each
LFW_PAINTED_SEED = 31


def lfw_painted(people: list[Path], seed: int = LFW_PAINTED_SEED,
                detector: FaceDetector | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Each person's first LFW picture as the mask check frames it, bare (no_mask) and with a painted mask
    (`training.mask_painting`; mask): the subject found by the normal pass, the painted picture found again by
    the search's passes (normal, else relaxed; no face check, whose answer this teaches), aligned to the
    landmarks found and cut at MASK_CROP, MASK_SOURCE px RGB. Rows whose face is not found are left out.
    Returns (crops, labels in MASK_LABELS' order)."""
    detector = detector or FaceDetector()
    passes = MaskedFaceSearch().passes(detector.config)
    rng = np.random.default_rng(seed)
    crops, labels = [], []
    for person in people:
        path = sorted(person.glob("*.jpg"))[0]
        bare = Image.open(path).convert("RGB")
        bare_rgb = np.asarray(bare)
        subject = detector.detect(bare_rgb)
        if not subject:
            continue
        painted = np.asarray(paint_mask(bare, subject[0].landmarks, rng))
        box = tuple(subject[0].box.astype(int))
        crops.append(_mask_framed(bare_rgb, subject[0]))
        labels.append(MASK_LABELS.index("no_mask"))
        crop = _first_hit_framed(detector, painted, passes, box)
        if crop is not None:
            crops.append(crop)
            labels.append(MASK_LABELS.index("mask"))
    if not crops:
        raise ValueError("no face found in any of the LFW pictures given")
    return np.stack(crops), np.array(labels, np.int64)


def load_lfw_painted(split: str) -> tuple[np.ndarray, np.ndarray]:
    """Cached `lfw_painted` of LFW_PAINTED_PEOPLE[split] people drawn from `lfw_training_people(split)`."""
    pool = lfw_training_people(split)
    rng = np.random.default_rng(LFW_PAINTED_SEED)
    people = [pool[i] for i in sorted(rng.choice(len(pool), LFW_PAINTED_PEOPLE[split], replace=False))]
    recipe = ([p.name for p in people], LFW_PAINTED_SEED, PAINTER_VERSION, _search_passes(), MASK_CROP, MASK_SOURCE)
    z = _cached(f"lfw_painted_{split}", recipe, lambda: dict(zip(("images", "labels"), lfw_painted(people))))
    return z["images"], z["labels"]


GOOD_FIT = 5e-3  # registration MSE above which a crop's geometry is not trusted (about 2 % of FER train)


def load_framing_geometry(name: str, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cached `register_framing` of a named set's framed crops: ((N,4) params, (N,) bool usable), usable where
    the face was found and the fit is good (GOOD_FIT). Written beside, never over, the framed-crop cache."""
    framed, found = load_framed(name, images)

    def fit() -> dict[str, np.ndarray]:
        params = np.tile(np.array([1, 0, 0, 0], np.float32), (len(images), 1))
        mse = np.full(len(images), np.inf, np.float32)
        params[found], mse[found] = register_framing(images[found], framed[found])
        return {"params": params, "mse": mse}

    z = _cached(f"{name}_pipeline_framed_geometry", _framing_recipe(images), fit)
    return z["params"], found & (z["mse"] < GOOD_FIT)


def framed_outside(params: torch.Tensor) -> torch.Tensor:
    """(N,4) geometry -> (N,1,48,48) float in [0,1]: how much of each framed pixel lies outside the FER picture."""
    return 1 - _warp(torch.ones(len(params), 1, FER_SIZE, FER_SIZE), params, padding="zeros")


def beyond_edge(framed: torch.Tensor, params: torch.Tensor, surroundings: torch.Tensor, extent: torch.Tensor) -> torch.Tensor:
    """Framed crops (N,1,48,48 float) with what lies outside their FER picture replaced: ``surroundings``
    (N,1,S,S float, same range) is a picture covering [-extent, extent] of the FER picture's normalised
    coordinates (the FER picture is its central 1/extent), pasted under it with a hard edge, as a face picture
    pasted into a scene."""
    grid = F.affine_grid(similarity(params), [len(framed), 1, FER_SIZE, FER_SIZE], align_corners=False)
    around = F.grid_sample(surroundings, grid / extent.view(-1, 1, 1, 1), mode="bilinear", padding_mode="reflection",
                           align_corners=False)
    outside = framed_outside(params)
    return framed * (1 - outside) + around * outside


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--geometry", action="store_true", help="also fit the framing geometry of FER2013 train")
    ap.add_argument("--mask", action="store_true", help="only the mask set's pictures framed in scenes (train, val)")
    ap.add_argument("--painted", action="store_true", help="only LFW faces bare and with painted masks (train, val)")
    ap.add_argument("--scenes", action="store_true", help="only FER2013 train pasted in scenes and found "
                                                          "(fer_scene_framed; the test faces' scenes are "
                                                          "benchmarks/emotion.py's)")
    args = ap.parse_args()
    seed_everything(0)  # threads as configured; detection itself is deterministic
    if args.mask or args.painted:
        for split in ("train", "val"):
            (load_mask_scene_framed if args.mask else load_lfw_painted)(split)
        return
    if args.scenes:
        load_scene_framed("fer_train", load_fer("train").images)
        return
    load_framed("fer_test", load_fer("test").images)
    load_framed("ckplus", load_ckplus()[0].images)
    train = load_fer("train").images
    load_framed("fer_train", train)
    if args.geometry:
        load_framing_geometry("fer_train", train)


if __name__ == "__main__":
    main()
