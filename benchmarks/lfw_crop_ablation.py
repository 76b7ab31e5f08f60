"""Which box crop embeds best on LFW: margin and mirror averaging, on the cached detections.

    python -m benchmarks.lfw_crop_ablation [--margins 44]   # writes results/lfw_crop_ablation.json

Re-embeds every cached LFW subject (benchmarks/embedding_cache.py) and scores the 10-fold View 2 protocol
(benchmarks/lfw_protocol.py) for: the cache's own box crops (margin pipeline.alignment.BOX_MARGIN), those
crops mirror-averaged (the embeddings of the crop and its left-right mirror averaged, as Sandberg's
published LFW figures did with --use_flipped_images), and box crops with each other margin given.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from types import SimpleNamespace

import numpy as np

from benchmarks import embedding_cache
from benchmarks.datasets import LFW_DIR, REPO_ROOT
from benchmarks.lfw_protocol import pair_scores, ten_fold

RESULTS = REPO_ROOT / "benchmarks" / "results" / "lfw_crop_ablation.json"


def embed_variants(cache: embedding_cache.LfwEmbeddings, margins: list[int]) -> dict[str, np.ndarray]:
    """The cached box embeddings, their mirror-averaged version, and box embeddings at each other margin."""
    from pipeline import FaceLab
    from pipeline.alignment import BOX_MARGIN, align_faces
    from pipeline.images import load_rgb

    lab = FaceLab(backbone="casia-webface", device="cpu")
    mirrored = np.zeros_like(cache.embeddings["box"])
    others = {m: np.zeros_like(mirrored) for m in margins}
    began = time.perf_counter()
    for row, path in enumerate(cache.paths):
        if not cache.found[row]:
            continue
        rgb = load_rgb(LFW_DIR / path)
        subject = SimpleNamespace(box=cache.boxes[row], landmarks=cache.landmarks[row])
        crops = np.concatenate([align_faces(rgb, [subject], "box", box_margin=m) for m in [BOX_MARGIN, *margins]])
        vectors = lab.embedder.embed(np.concatenate([crops[:1, :, ::-1], crops[1:]]))
        mirrored[row] = vectors[0]
        for m, vector in zip(margins, vectors[1:]):
            others[m][row] = vector
        if row % 500 == 0:
            print(f"{row}/{len(cache.paths)} pictures, {time.perf_counter() - began:.0f} s", flush=True)
    plain = cache.embeddings["box"]
    return {f"margin {BOX_MARGIN}": plain, f"margin {BOX_MARGIN}, mirror-averaged": plain + mirrored,
            **{f"margin {m}": vectors for m, vectors in others.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--margins", default="44", help="other box margins to try, comma-separated")
    args = parser.parse_args()
    cache = embedding_cache.load("casia-webface")
    results = []
    for name, embedding in embed_variants(cache, [int(m) for m in args.margins.split(",")]).items():
        embedding = embedding / np.maximum(np.linalg.norm(embedding, axis=1, keepdims=True), 1e-12)
        scores = ten_fold(pair_scores(replace(cache, embeddings={"box": embedding}), "box"))
        results.append({"variant": name, **{k: scores[k] for k in ("accuracy_mean", "accuracy_std", "tar_at_far_1e-3", "roc_auc")}})
        print(json.dumps(results[-1]), flush=True)
    RESULTS.write_text(json.dumps({"backbone": "casia-webface", "detections": "the LFW embedding cache's",
                                   "variants": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
