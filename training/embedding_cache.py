"""Detect and embed every LFW image once, per backbone, for both alignment methods; reuse everywhere.

lfw.py, identification.py and the threshold calibration all read the same cache, so the slow part
(MTCNN + InceptionResnetV1 on ~7,700 pictures: about 20 minutes of one busy core on an older CPU, 13 minutes for
both precisions on an AVX-512 VNNI one) runs once. Detection does
not depend on the alignment method, so one pass detects each picture once and embeds both crops.

    python -m training.embedding_cache [--backbone casia-webface] [--precision float32] [--limit N] [--shard 0/2]

Precision is the embedder's (pipeline.embedding): float32, the reference every other figure uses, or int8,
the CPU default, which benchmarks/lfw.py compares with it.

Files: benchmarks/.cache/lfw_<backbone>_<weights, centre and int8 ranges sha prefixes>_<precision>_v<CACHE_VERSION>_shard<i>of<n>.npz (git-ignored), written every
few hundred images, so an interrupted run resumes where it stopped; two shards can run as two processes. The subject of an LFW picture is the face nearest
its centre (`central_face`); pictures where MTCNN finds no face are recorded as not found.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from shared_data import LFW_DIR, REPO_ROOT, SHARED_WEIGHTS_DIR, central_face
from pipeline.settings import reload as reload_settings

CACHE_DIR = REPO_ROOT / "benchmarks" / ".cache"
ALIGNMENTS = ("landmarks", "box")
SAVE_EVERY = 100


@dataclass
class LfwEmbeddings:
    """Every LFW picture: where the subject's face is and its embedding (zeros where none was found)."""

    paths: list[str]  # relative to LFW_DIR, e.g. "Aaron_Peirsol/Aaron_Peirsol_0001.jpg"
    found: np.ndarray  # (N,) bool
    boxes: np.ndarray  # (N, 4) float32
    landmarks: np.ndarray  # (N, 5, 2) float32
    faces_in_picture: np.ndarray  # (N,) int
    embeddings: dict[str, np.ndarray]  # alignment -> (N, 512) float32

    def index(self) -> dict[str, int]:
        return {path: row for row, path in enumerate(self.paths)}

    def lookup(self, paths: list[Path], alignment: str) -> tuple[np.ndarray, np.ndarray]:
        """Embeddings for the given picture paths (any absolute LFW path) and whether each was found."""
        rows = self.index()
        picked = np.array([rows[cache_key(path)] for path in paths])
        return self.embeddings[alignment][picked], self.found[picked]


def cache_key(path: Path | str) -> str:
    """How the cache names a picture: "Person_Name/Person_Name_0001.jpg"."""
    path = Path(path)
    return f"{path.parent.name}/{path.name}"


def all_lfw_images() -> list[str]:
    """Every LFW picture in a fixed shuffled order: a partly built cache is a uniform sample."""
    paths = sorted(cache_key(p) for p in LFW_DIR.glob("*/*.jpg"))
    return [paths[i] for i in np.random.default_rng(0).permutation(len(paths))]


# Bump when the detector or the alignment changes what the cache holds (2: pipeline/mtcnn.py's detector).
CACHE_VERSION = 2


def precisions(backbone: str) -> list[str]:
    """What LFW figures are measured in: float32, and int8 where the backbone has int8 activation ranges."""
    from pipeline.embedding import INT8_RANGES

    return ["float32"] + (["int8"] if backbone in INT8_RANGES else [])


def cache_path(backbone: str, shard: tuple[int, int] = (0, 1), precision: str = "float32") -> Path:
    """One file per backbone, weights, embedding centre, precision (and int8 ranges) and CACHE_VERSION:
    a stale cache is never read."""
    from pipeline.embedding import BACKBONES, CENTRES, INT8_RANGES
    from pipeline.weights import spec

    digest = (spec(BACKBONES[backbone]).sha256 or "unpinned")[:12]
    if backbone in CENTRES:
        digest += "_centre" + (spec(CENTRES[backbone]).sha256 or "unpinned")[:8]
    if precision == "int8":
        digest += "_ranges" + (spec(INT8_RANGES[backbone]).sha256 or "unpinned")[:8]
    index, count = shard
    return CACHE_DIR / f"lfw_{backbone}_{digest}_{precision}_v{CACHE_VERSION}_shard{index}of{count}.npz"


def load(backbone: str = "casia-webface", require_complete: bool = True, precision: str = "float32") -> LfwEmbeddings:
    """The cached embeddings (merged from every shard file); FileNotFoundError says how to build them.

    With require_complete=False, only the pictures computed so far are returned.
    """
    files = sorted(CACHE_DIR.glob(cache_path(backbone, precision=precision).name.replace("shard0of1", "shard*of*")))
    if not files:
        raise FileNotFoundError(f"No LFW embedding cache for {backbone} in {precision}: run "
                                f"`python -m training.embedding_cache --precision {precision}`")
    merged: dict[str, np.ndarray] = {}
    for file in files:
        with np.load(file, allow_pickle=False) as data:
            if not merged:
                merged = {key: data[key].copy() for key in data.files}
                continue
            rows = data["computed"]
            for key in data.files:
                if key != "paths":
                    merged[key][rows] = data[key][rows]
    computed = merged["computed"]
    if require_complete and not computed.all():
        raise FileNotFoundError(f"The LFW cache holds {computed.sum()}/{len(computed)} pictures: let the build finish")
    return LfwEmbeddings(
        paths=[str(p) for p in merged["paths"][computed]],
        found=merged["found"][computed],
        boxes=merged["boxes"][computed],
        landmarks=merged["landmarks"][computed],
        faces_in_picture=merged["faces_in_picture"][computed],
        embeddings={a: merged[f"embedding_{a}"][computed] for a in ALIGNMENTS},
    )


def load_or_build(backbone: str = "casia-webface", partial: bool = False, precision: str = "float32") -> LfwEmbeddings:
    """The cache, built first if there is none; with partial=True whatever part is computed so far."""
    try:
        return load(backbone, require_complete=not partial, precision=precision)
    except FileNotFoundError:
        build(backbone, precision=precision)
        return load(backbone, precision=precision)


def build(backbone: str, limit: int | None = None, shard: tuple[int, int] = (0, 1), precision: str = "float32") -> Path:
    """Compute the rows of this shard (row % count == index); several shards can run as parallel processes."""
    from pipeline import FaceLab
    from pipeline.alignment import align_faces
    from pipeline.embedding import FaceEmbedder

    os.environ.setdefault("FACELAB_WEIGHTS_DIR", str(SHARED_WEIGHTS_DIR))
    reload_settings()  # pipeline read the settings when it was imported
    paths = all_lfw_images()[:limit]
    n = len(paths)
    out = cache_path(backbone, shard, precision)
    if limit is not None:  # a quick check never clobbers the full cache
        out = out.with_name(f"check_first{limit}_" + out.name)
    out.parent.mkdir(parents=True, exist_ok=True)
    arrays = {
        "paths": np.array(paths),
        "computed": np.zeros(n, bool),
        "found": np.zeros(n, bool),
        "boxes": np.zeros((n, 4), np.float32),
        "landmarks": np.zeros((n, 5, 2), np.float32),
        "faces_in_picture": np.zeros(n, np.int32),
        **{f"embedding_{a}": np.zeros((n, 512), np.float32) for a in ALIGNMENTS},
    }
    for previous_file in [out, *sorted(out.parent.glob(out.name.split("_shard")[0] + "_shard*.npz"))]:
        if previous_file.is_file():  # resume: keep every row computed before, whatever its order was
            with np.load(previous_file, allow_pickle=False) as previous:
                row_of = {path: row for row, path in enumerate(paths)}
                old_rows = np.flatnonzero(previous["computed"])
                new_rows = np.array([row_of.get(str(previous["paths"][r]), -1) for r in old_rows], dtype=int)
                keep = new_rows >= 0
                for key in arrays:
                    if key != "paths":
                        arrays[key][new_rows[keep]] = previous[key][old_rows[keep]]
    todo = [row for row in range(shard[0], n, shard[1]) if not arrays["computed"][row]]
    lab = FaceLab(backbone=backbone, device="cpu")  # detection
    embedder = FaceEmbedder.from_backbone(backbone, precision=precision)
    began = time.perf_counter()
    for done, row in enumerate(todo, 1):
        rgb, detections = lab.detect(LFW_DIR / paths[row])
        arrays["faces_in_picture"][row] = len(detections)
        subject = central_face(SimpleNamespace(faces=detections, image=rgb))
        if subject is not None:
            arrays["found"][row] = True
            arrays["boxes"][row] = subject.box
            arrays["landmarks"][row] = subject.landmarks
            for alignment in ALIGNMENTS:
                crop = align_faces(rgb, [subject], alignment)
                arrays[f"embedding_{alignment}"][row] = embedder.embed(crop)[0]
        arrays["computed"][row] = True
        if done % SAVE_EVERY == 0 or done == len(todo):
            _save(out, arrays)
            rate = done / (time.perf_counter() - began)
            print(f"shard {shard}: {done}/{len(todo)} pictures, {rate:.2f}/s, "
                  f"about {(len(todo) - done) / rate / 60:.0f} min left", flush=True)
    return out


def _save(out: Path, arrays: dict[str, np.ndarray]) -> None:
    # Write beside and rename: a reader never sees a half-written file.
    temporary = out.with_name(out.stem + ".tmp.npz")
    np.savez(temporary, **arrays)
    temporary.replace(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="casia-webface")
    parser.add_argument("--precision", default="float32", choices=("float32", "int8"))
    parser.add_argument("--limit", type=int, default=None, help="only the first N pictures (a quick check)")
    parser.add_argument("--shard", default="0/1", help="INDEX/COUNT: this process's share, e.g. 0/2 and 1/2")
    args = parser.parse_args()
    index, count = (int(v) for v in args.shard.split("/"))
    print(build(args.backbone, args.limit, (index, count), args.precision))


if __name__ == "__main__":
    main()
