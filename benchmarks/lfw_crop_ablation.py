"""Which box crop embeds best on LFW: margin and mirror averaging, on the cached detections.

    python -m benchmarks.lfw_crop_ablation [--margins 32,44] [--limit N]   # writes results/lfw_crop_ablation.json

Re-embeds every cached LFW subject (benchmarks/embedding_cache.py) with each variant and scores the
10-fold View 2 protocol (benchmarks/lfw_protocol.py). "mirror" averages the embeddings of the crop and
its left-right mirror, as Sandberg's published LFW figures did (--use_flipped_images).
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
    """Per margin: the plain and the mirrored embedding of every found subject (zeros elsewhere)."""
    from PIL import Image

    from pipeline import FaceLab
    from pipeline.alignment import align_faces
    from pipeline.images import load_rgb

    lab = FaceLab(backbone="casia-webface", device="cpu")
    out = {f"{kind}_{m}": np.zeros((len(cache.paths), 512), np.float32) for m in margins for kind in ("plain", "mirror")}
    began = time.perf_counter()
    for row, path in enumerate(cache.paths):
        if not cache.found[row]:
            continue
        rgb = load_rgb(LFW_DIR / path)
        subject = SimpleNamespace(box=cache.boxes[row], landmarks=cache.landmarks[row])
        crops = np.concatenate([align_faces(rgb, [subject], "box", box_margin=m) for m in margins])
        vectors = lab.embedder.embed(np.concatenate([crops, crops[:, :, ::-1]]))
        for i, m in enumerate(margins):
            out[f"plain_{m}"][row], out[f"mirror_{m}"][row] = vectors[i], vectors[len(margins) + i]
        if row % 500 == 0:
            print(f"{row}/{len(cache.paths)} pictures, {time.perf_counter() - began:.0f} s", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--margins", default="32,44")
    args = parser.parse_args()
    margins = [int(m) for m in args.margins.split(",")]
    cache = embedding_cache.load("casia-webface")
    vectors = embed_variants(cache, margins)
    results = []
    for m in margins:
        for mirror in (False, True):
            embedding = vectors[f"plain_{m}"] + (vectors[f"mirror_{m}"] if mirror else 0)
            embedding /= np.maximum(np.linalg.norm(embedding, axis=1, keepdims=True), 1e-12)
            variant = replace(cache, embeddings={"box": embedding})
            scores = ten_fold(pair_scores(variant, "box"))
            results.append({"margin": m, "mirror_average": mirror,
                            **{k: scores[k] for k in ("accuracy_mean", "accuracy_std", "tar_at_far_1e-3", "roc_auc")}})
            print(json.dumps(results[-1]), flush=True)
    RESULTS.write_text(json.dumps({"backbone": "casia-webface", "detections": "benchmarks/.cache (FaceLab detector)",
                                   "variants": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
