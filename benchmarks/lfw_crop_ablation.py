"""What embeds best on LFW: box margin, mirror averaging, centring. On the cached detections.

    python -m benchmarks.lfw_crop_ablation [--margins 44]   # writes results/lfw_crop_ablation.json

Takes every LFW subject's box from the embedding cache (training/embedding_cache.py), embeds it again
without the shipped centre, and scores the 10-fold View 2 protocol (training/lfw_protocol.py) for:
- box crops at pipeline.alignment.BOX_MARGIN (plain);
- those crops mirror-averaged: the embeddings of the crop and its left-right mirror averaged, as
  Sandberg's published LFW figures did (--use_flipped_images);
- box crops at each other margin given;
- the plain embeddings centred on the mean embedding of the 9 training folds' pictures, refit per fold
  (Sandberg's --subtract_mean): the out-of-sample measure of what pipeline.embedding's centring gives.
About 25 minutes of one core on an older CPU, with the embedding cache built (2 minutes on an AVX-512 VNNI one).
"""

from __future__ import annotations

import argparse
import json
import time
from types import SimpleNamespace

import numpy as np

from training import embedding_cache
from shared_data import LFW_DIR, REPO_ROOT, lfw_pairs
from training.lfw_protocol import best_accuracy_threshold, rates

RESULTS = REPO_ROOT / "benchmarks" / "results" / "lfw_crop_ablation.json"


def unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def embed_variants(cache: embedding_cache.LfwEmbeddings, margins: list[int]) -> dict[str, np.ndarray]:
    """Uncentred embeddings of every cached subject: plain, mirrored, and at each other margin."""
    from pipeline.alignment import BOX_MARGIN, align_faces
    from pipeline.embedding import FaceEmbedder
    from pipeline.images import load_rgb

    embedder = FaceEmbedder.from_backbone("casia-webface", centred=False)
    names = ["plain", "mirrored", *margins]
    out = {name: np.zeros((len(cache.paths), 512), np.float32) for name in names}
    began = time.perf_counter()
    for row, path in enumerate(cache.paths):
        if not cache.found[row]:
            continue
        rgb = load_rgb(LFW_DIR / path)
        subject = SimpleNamespace(box=cache.boxes[row], landmarks=cache.landmarks[row])
        crops = np.concatenate([align_faces(rgb, [subject], "box", box_margin=m) for m in [BOX_MARGIN, *margins]])
        vectors = embedder.embed(np.concatenate([crops[:1], crops[:1, :, ::-1], crops[1:]]))
        for name, vector in zip(names, vectors):
            out[name][row] = vector
        if row % 500 == 0:
            print(f"{row}/{len(cache.paths)} pictures, {time.perf_counter() - began:.0f} s", flush=True)
    return out


def ten_fold_accuracy(cache: embedding_cache.LfwEmbeddings, vectors: np.ndarray, centre_per_fold: bool) -> dict:
    """10-fold accuracy; with centre_per_fold, embeddings are centred on the training folds' mean first."""
    rows = cache.index()
    pairs = lfw_pairs()
    first = np.array([rows[embedding_cache.cache_key(p.first)] for p in pairs])
    second = np.array([rows[embedding_cache.cache_key(p.second)] for p in pairs])
    same, fold = np.array([p.same for p in pairs]), np.array([p.fold for p in pairs])
    found = cache.found[first] & cache.found[second]
    accuracies = []
    for test_fold in range(10):
        train = fold != test_fold
        embedded = vectors
        if centre_per_fold:
            pictures = np.unique(np.r_[first[train], second[train]])
            embedded = unit(vectors - vectors[pictures[cache.found[pictures]]].mean(0))
        similarity = np.where(found, np.einsum("ij,ij->i", embedded[first], embedded[second]), -1.0)
        threshold = best_accuracy_threshold(similarity[train], same[train])
        accuracies.append(rates(similarity[~train], same[~train], threshold)["accuracy"])
    return {"accuracy_mean": float(np.mean(accuracies)), "accuracy_std": float(np.std(accuracies))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--margins", default="44", help="other box margins to try, comma-separated")
    args = parser.parse_args()
    from pipeline.alignment import BOX_MARGIN

    margins = [int(m) for m in args.margins.split(",") if m]
    cache = embedding_cache.load("casia-webface")
    vectors = embed_variants(cache, margins)
    variants = {
        f"margin {BOX_MARGIN}": (vectors["plain"], False),
        f"margin {BOX_MARGIN}, mirror-averaged": (unit(vectors["plain"] + vectors["mirrored"]), False),
        **{f"margin {m}": (vectors[m], False) for m in margins},
        f"margin {BOX_MARGIN}, centred on the training folds' mean": (vectors["plain"], True),
    }
    results = []
    for name, (embedded, centre) in variants.items():
        results.append({"variant": name, **ten_fold_accuracy(cache, embedded, centre)})
        print(json.dumps(results[-1]), flush=True)
    RESULTS.write_text(json.dumps({"backbone": "casia-webface", "detections": "the LFW embedding cache's",
                                   "protocol": "LFW View 2, 10 folds, threshold of best accuracy on 9 folds",
                                   "variants": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
