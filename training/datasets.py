"""Loading the shared datasets into memory, with deterministic splits.

The images are small (FER 48x48, mask crops resized to a fixed size), so the whole
set is decoded once into a uint8 array and cached under /tmp: training then
augments batches on tensors instead of decoding JPEGs every epoch.
"""
from __future__ import annotations

import csv
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.heads import EMOTIONS, MASK_LABELS
from shared_data import DATA_DIR, LFW_DIR

CACHE_DIR = Path(os.environ.get("FACELAB_CACHE", "/tmp/facelab_cache"))
IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp"}


@dataclass(frozen=True)
class ImageSet:
    images: np.ndarray  # (N,H,W) uint8 gray or (N,H,W,3) uint8 RGB
    labels: np.ndarray  # (N,) int64
    files: list[str]    # paths relative to DATA_DIR, same order


def _list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS)


def _cached(name: str, build) -> ImageSet:
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    path = CACHE_DIR / f"{name}.npz"
    if path.exists():
        z = np.load(path, allow_pickle=False)
        return ImageSet(z["images"], z["labels"], [str(f) for f in z["files"]])
    s = build()
    np.savez(path, images=s.images, labels=s.labels, files=np.array(s.files))
    return s


def load_fer(split: str) -> ImageSet:
    """FER2013 ``train`` or ``test`` as (N,48,48) uint8 gray, labels in EMOTIONS order."""

    def build() -> ImageSet:
        imgs, labels, files = [], [], []
        for k, name in enumerate(EMOTIONS):
            for p in _list_images(DATA_DIR / "emotion" / split / name):
                imgs.append(np.asarray(Image.open(p).convert("L").resize((48, 48))))
                labels.append(k)
                files.append(str(p.relative_to(DATA_DIR)))
        return ImageSet(np.stack(imgs), np.array(labels, np.int64), files)

    return _cached(f"fer_{split}", build)


def load_ckplus() -> tuple[ImageSet, np.ndarray]:
    """CK+48 (emotion_ckplus: 927 crops, 6 of the 7 EMOTIONS, no neutral) as (N,48,48) uint8 gray, and
    each image's subject (e.g. 'S010'): CK+ figures must be subject-disjoint from anything fitted on it."""
    with open(DATA_DIR / "emotion_ckplus" / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    subjects = np.array([r["subject"] for r in rows])

    def build() -> ImageSet:
        imgs = [np.asarray(Image.open(DATA_DIR / "emotion_ckplus" / r["file"]).convert("L").resize((48, 48))) for r in rows]
        return ImageSet(np.stack(imgs), np.array([EMOTIONS.index(r["label"]) for r in rows], np.int64),
                        ["emotion_ckplus/" + r["file"] for r in rows])

    return _cached("ckplus", build), subjects


def subject_folds(subjects: np.ndarray, folds: int = 5) -> np.ndarray:
    """A fold number per image, the same for every image of a subject (md5 of the subject id, so
    independent of ordering, seed or machine)."""
    return np.array([int(hashlib.md5(s.encode()).hexdigest()[:8], 16) % folds for s in subjects])


def fer_train_val_split(files: list[str], val_fraction: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic train/val indices: a file is in val when the md5 of its name falls
    in the lowest ``val_fraction`` (independent of ordering, seed or machine)."""
    h = np.array([int(hashlib.md5(Path(f).name.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF for f in files])
    val = h < val_fraction
    return np.flatnonzero(~val), np.flatnonzero(val)


def fer_blank_mask(images: np.ndarray) -> np.ndarray:
    """True for the blank (uniform) FER images; they carry no signal and are dropped from training."""
    flat = images.reshape(len(images), -1)
    return flat.std(axis=1) < 1.0


def fer_test_duplicates() -> set[str]:
    """Test files that also occur byte-identically in train (exact_duplicates.csv)."""
    groups: dict[str, list[dict]] = {}
    with open(DATA_DIR / "emotion" / "exact_duplicates.csv", newline="") as f:
        for row in csv.DictReader(f):
            groups.setdefault(row["group"], []).append(row)
    out: set[str] = set()
    for rows in groups.values():
        if any(r["split"] == "train" for r in rows):
            out.update("emotion/" + r["file"] for r in rows if r["split"] == "test")
    return out


def load_mask(split: str, size: int) -> ImageSet:
    """Mask ``train``/``val``/``test`` as (N,size,size,3) uint8 RGB, labels in MASK_LABELS order."""
    folders = {"with_mask": MASK_LABELS.index("mask"), "without_mask": MASK_LABELS.index("no_mask")}

    def build() -> ImageSet:
        imgs, labels, files = [], [], []
        for folder, k in folders.items():
            for p in _list_images(DATA_DIR / "mask" / split / folder):
                imgs.append(np.asarray(Image.open(p).convert("RGB").resize((size, size), Image.BILINEAR)))
                labels.append(k)
                files.append(str(p.relative_to(DATA_DIR)))
        return ImageSet(np.stack(imgs), np.array(labels, np.int64), files)

    return _cached(f"mask_{split}_{size}", build)


def mask_dup_groups() -> dict[str, str]:
    """File (relative to DATA_DIR) -> dup_group from mask/manifest.csv."""
    with open(DATA_DIR / "mask" / "manifest.csv", newline="") as f:
        return {"mask/" + r["file"]: r["dup_group"] for r in csv.DictReader(f)}


def lfw_sample(n: int, seed: int = 0) -> list[Path]:
    """`n` LFW pictures drawn at random (benchmarks/mask.py's phantom and synthetic-mask sets)."""
    files = sorted(LFW_DIR.glob("*/*.jpg"))
    rng = np.random.default_rng(seed)
    return [files[i] for i in rng.choice(len(files), n, replace=False)]


LFW_DEV_PICTURES = 400


def lfw_dev_pictures(n: int = LFW_DEV_PICTURES) -> list[Path]:
    """The first `n` of LFW_DEV_PICTURES pictures (seed 16) of people outside benchmarks/mask.py's sample: the mask
    check's dev set (benchmarks/mask_search.py). Fewer is a subset of the same draw, so `lfw_training_people`
    leaves them all out. Not kept from `load_not_faces`: the released mask head's LFW background squares came from
    the first two pictures of every person of its split: it trained on squares of 242 of these 400 pictures (and
    validated on 59), so the dev set's "box beside the subject" figure is partly measured on backgrounds it learnt."""
    if not 0 < n <= LFW_DEV_PICTURES:
        raise ValueError(f"the dev set has {LFW_DEV_PICTURES} LFW pictures; asked for {n}")
    held_out = {p.parent.name for p in lfw_sample(200)}
    files = [f for f in sorted(LFW_DIR.glob("*/*.jpg")) if f.parent.name not in held_out]
    drawn = np.random.default_rng(16).choice(len(files), LFW_DEV_PICTURES, replace=False)
    return [files[i] for i in sorted(drawn)][:n]


def lfw_training_people(split: str, benchmark_sample: int = 200) -> list[Path]:
    """LFW people folders that may train the mask head on painted masks (`_people_split`, used by
    training.pipeline_framing.lfw_painted), without the dev set's people."""
    dev = {p.parent.name for p in lfw_dev_pictures()}
    return [person for person in _people_split(split, benchmark_sample) if person.name not in dev]


# In LFW's deep-funneled 250x250 pictures the face lies within this box (x0, y0, x1, y1), generously.
LFW_FACE_REGION = (65, 50, 185, 200)


def _people_split(split: str, benchmark_sample: int) -> list[Path]:
    """LFW people folders of ``split`` (a fifth is val, by md5 of the name), without the people of
    benchmarks/mask.py's LFW sample, so its phantom count stays a held-out figure."""
    held_out = {p.parent.name for p in lfw_sample(benchmark_sample)}
    return [person for person in sorted(p for p in LFW_DIR.iterdir() if p.is_dir() and p.name not in held_out)
            if (int(hashlib.md5(person.name.encode()).hexdigest()[:8], 16) % 5 == 0) == (split == "val")]


def load_not_faces(split: str, size: int, per_picture: int = 2, benchmark_sample: int = 200) -> ImageSet:
    """Squares of LFW pictures away from the face (walls, shirts, flags, hands, microphones, other people's
    hair): the "not a face" examples of the mask head, (N,size,size,3) uint8 with label 2. ``split``:
    ``train`` or ``val``, by md5 of the person's name (a fifth is val). People in benchmarks/mask.py's LFW
    sample are left out of both, so its phantom count stays a held-out figure."""
    x0, y0, x1, y1 = LFW_FACE_REGION

    def build() -> ImageSet:
        rng = np.random.default_rng(7)
        imgs, files = [], []
        for person in _people_split(split, benchmark_sample):
            for path in sorted(person.glob("*.jpg"))[:2]:
                picture = Image.open(path).convert("RGB")
                taken = 0
                for _ in range(per_picture * 10):  # tries; most random squares touch the face
                    side = int(rng.integers(40, 90))
                    cx, cy = rng.integers(0, 250 - side, size=2)
                    overlap = max(0, min(cx + side, x1) - max(cx, x0)) * max(0, min(cy + side, y1) - max(cy, y0))
                    if overlap <= 0.1 * side * side:
                        crop = picture.crop((int(cx), int(cy), int(cx) + side, int(cy) + side))
                        imgs.append(np.asarray(crop.resize((size, size), Image.BILINEAR)))
                        files.append(str(path.relative_to(DATA_DIR)))
                        taken += 1
                        if taken >= per_picture:
                            break
        return ImageSet(np.stack(imgs), np.full(len(imgs), len(MASK_LABELS), np.int64), files)

    return _cached(f"not_faces_{split}_{size}", build)


# Face-free pictures bundled with scikit-image (`skimage.data`: public domain or CC0): textures, objects,
# text, a clock, the moon. The mask head's "not a face" examples had been LFW backgrounds only, and it
# gave grass, gravel and printed text P(face) 0.99. The face-free pictures the benchmarks and tests use
# (misc/: coffee cup, rocket, cat, noise; the coffee, rocket and cat are skimage's too) are not here, nor
# skimage's coins (heads in profile). The motorcycle (a street scene, round wheels and lamps) and the blobs
# (round shapes, drawn with a fixed seed) came with the head that also learnt faces framed in scenes: it is
# readier to call a centre square a face, and round things are what it takes for one.
OBJECT_PICTURES = ("brick", "cell", "checkerboard", "clock", "colorwheel", "grass", "gravel", "horse",
                   "hubble_deep_field", "immunohistochemistry", "logo", "microaneurysms", "moon", "page", "retina",
                   "text", "shepp_logan_phantom", "stereo_motorcycle", "binary_blobs")
VAL_ROWS_FROM = 0.7  # squares from a picture's top 70 % train the head, from its bottom 30 % validate it


def object_pictures() -> dict[str, np.ndarray]:
    """OBJECT_PICTURES as (H,W,3) uint8 RGB."""
    from skimage import data  # a training dependency only (requirements-dev.txt)

    special = {"stereo_motorcycle": lambda: data.stereo_motorcycle()[0],  # its left view
               "binary_blobs": lambda: data.binary_blobs(length=512, rng=0)}
    pictures = {}
    for name in OBJECT_PICTURES:
        picture = np.asarray(special.get(name, getattr(data, name))(), dtype=np.float64)
        if picture.ndim == 2:
            picture = np.repeat(picture[..., None], 3, axis=2)
        picture = picture[..., :3]
        span = picture.max() - picture.min()
        pictures[name] = np.round(255 * (picture - picture.min()) / (span or 1)).astype(np.uint8)
    return pictures


def split_rows(picture: np.ndarray, split: str) -> np.ndarray:
    cut = int(VAL_ROWS_FROM * picture.shape[0])
    return picture[:cut] if split == "train" else picture[cut:]


def load_object_not_faces(split: str, size: int, per_picture: int = 120) -> ImageSet:
    """Close-ups of things that are not faces, as an upload or a centre square would frame them: random
    squares, a fifth of the region's shorter side to all of it, of OBJECT_PICTURES (train: each picture's
    top rows, val: its bottom rows, VAL_ROWS_FROM), plus as many flat, graded and noisy squares; label 2."""

    def build() -> ImageSet:
        rng = np.random.default_rng(11 if split == "train" else 12)
        imgs, files = [], []
        for name, picture in object_pictures().items():
            region = split_rows(picture, split)
            h, w = region.shape[:2]
            for _ in range(per_picture):
                side = int(rng.integers(max(8, min(h, w) // 5), min(h, w) + 1))
                y, x = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
                square = Image.fromarray(np.ascontiguousarray(region[y:y + side, x:x + side]))
                imgs.append(np.asarray(square.resize((size, size), Image.BILINEAR)))
                files.append(f"skimage.data.{name}")
        for _ in range(per_picture * len(OBJECT_PICTURES) // 6):
            imgs.append(_plain_square(rng, size))
            files.append("generated")
        return ImageSet(np.stack(imgs), np.full(len(imgs), len(MASK_LABELS), np.int64), files)

    return _cached(f"object_not_faces_{split}_{size}_{len(OBJECT_PICTURES)}", build)  # new pictures: a new cache


def _plain_square(rng: np.random.Generator, size: int) -> np.ndarray:
    """A flat colour, a colour gradient or noise (blurred to a random grain): uploads with nothing in them."""
    kind = rng.integers(3)
    if kind == 0:
        square = np.broadcast_to(rng.integers(0, 256, 3), (size, size, 3)).astype(np.float64)
    elif kind == 1:
        ramp = np.linspace(0, 1, size)[:, None] if rng.random() < 0.5 else np.linspace(0, 1, size)[None, :]
        a, b = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        square = a + ramp[..., None] * (b - a)
        square = np.broadcast_to(square, (size, size, 3))
    else:
        grain = int(rng.integers(2, 17))
        small = rng.integers(0, 256, (max(1, size // grain), max(1, size // grain), 3)).astype(np.uint8)
        square = np.asarray(Image.fromarray(small).resize((size, size), Image.BICUBIC), dtype=np.float64)
    return np.clip(square, 0, 255).astype(np.uint8)

