"""Calibrate the verification thresholds of every backbone whose weights are present, on LFW pairs.

    python -m training.calibrate_thresholds

Writes the `thresholds` key of each backbone's entry in weights/manifest.json (and nothing else there):
- "balanced": the cosine-similarity threshold with the best accuracy over LFW's 6,000 View 2 pairs,
- "strict": the lowest threshold whose false accept rate over LFW's 3,000 mismatched pairs is <= 0.1 %,
each with the accuracy / TAR / FAR it gives, the date, the pairs and the alignment method used; and, under
"strict", the impostor tail over every pair of different people in LFW (one picture per person, about 9
million pairs) at per-pair false accept rates 1e-3 ... 1e-6 (what identify used before "open_set"; kept
for reference); and "open_set", what
pipeline.identity.open_set_thresholds reads: the thresholds at per-pair rates 1e-1 ... 1e-6 and the mean
similarity over every pair of LFW people who have a single photo (about 3.7 million pairs; none of them is
among the people benchmarks/identity_domains.py identifies). `--open-set-only --precision int8` rewrites
only that key, from the int8 cache (the embedder the app runs on a CPU).
Thresholds depend on the alignment, so they are calibrated for FaceLab's default alignment.

A backbone whose weights cannot be had here (vggface2 on these machines) gets thresholds taken from a
cited public source, marked "calibrated": false; a calibrated entry is never replaced by a cited one,
and the script recalibrates whenever the weights are present.
"""

from __future__ import annotations

import argparse
import datetime
import inspect
import json
import os
from collections import Counter

import numpy as np

from training import embedding_cache
from shared_data import SHARED_WEIGHTS_DIR
from training.lfw_protocol import TARGET_FAR, best_accuracy_threshold, far_threshold, pair_scores, rates, ten_fold
from pipeline.analysis import FaceLab
from pipeline.embedding import BACKBONES
from pipeline.errors import WeightsError
from pipeline.weights import MANIFEST_PATH, resolve
from pipeline.settings import reload as reload_settings

# deepface's default decision thresholds for its "Facenet512" model (Sandberg's 512-d InceptionResnetV1;
# deepface does not say which checkpoint in its code, its users describe it as Sandberg's VGGFace2 model).
# On unit vectors, L2 distance d and cosine similarity s are tied by s = 1 - d^2 / 2.
CITED = {
    "vggface2": {
        "calibrated": False,
        "balanced": {"threshold": round(1 - 1.04**2 / 2, 4), "from": "euclidean_l2 distance 1.04"},
        "strict": {"threshold": 0.70, "from": "cosine distance 0.30"},
        "source": "deepface, serengil/deepface@2d4c24520ccfea6fcd311254ca4d111c1403982d "
                  "deepface/config/threshold.py: \"Facenet512\": {\"cosine\": 0.30, \"euclidean_l2\": 1.04}",
        "note": "Not measured here: the vggface2 weights cannot be downloaded on the machines this was built on. "
                "deepface tuned these on its own data, detector and alignment; their FAR/TAR on LFW are unknown. "
                "Run `python -m training.calibrate_thresholds` where the weights are present to replace them.",
    }
}


def default_alignment() -> str:
    return inspect.signature(FaceLab.__init__).parameters["alignment"].default


def calibrate(backbone: str, alignment: str, partial: bool = False) -> dict:
    cache = embedding_cache.load_or_build(backbone, partial)
    scores = pair_scores(cache, alignment)
    balanced = best_accuracy_threshold(scores.similarity, scores.same)
    strict = far_threshold(scores.similarity, scores.same, TARGET_FAR)
    folds = ten_fold(scores)
    return {
        "calibrated": True,
        "balanced": {"threshold": round(balanced, 4), **_rounded(rates(scores.similarity, scores.same, balanced)),
                     "accuracy_10fold_mean": round(folds["accuracy_mean"], 4)},
        "strict": {"threshold": round(strict, 4), "target_far": TARGET_FAR,
                   **_rounded(rates(scores.similarity, scores.same, strict)),
                   "impostor_tail": impostor_tail(cache, alignment)},
        "open_set": open_set_tail(cache, alignment, "float32"),
        "alignment": alignment,
        "pairs_used": int(len(scores.same)),
        "pairs_with_a_face_missing": scores.missing,
        "dataset": "LFW View 2 pairs.txt (deep-funneled copy in ../shared/data/identity/lfw), "
                   + ("all 10 folds" if len(scores.same) == 6000 else "PROVISIONAL: the pairs embedded so far"),
        "date": datetime.date.today().isoformat(),
        "script": "training/calibrate_thresholds.py",
    }


TAIL_RATES = (TARGET_FAR, 1e-4, 1e-5, 1e-6)


def impostor_tail(cache: embedding_cache.LfwEmbeddings, alignment: str) -> dict:
    """Similarity thresholds at falling per-pair false accept rates, over all pairs of different people."""
    first_of_person: dict[str, int] = {}
    for row, path in enumerate(cache.paths):
        if cache.found[row]:
            first_of_person.setdefault(path.split("/")[0], row)
    vectors = cache.embeddings[alignment][sorted(first_of_person.values())]
    upper = np.triu_indices(len(vectors), k=1)
    scores = (vectors @ vectors.T)[upper]
    return {"per_pair_far": list(TAIL_RATES),
            "threshold": [round(float(np.quantile(scores, 1 - rate)), 4) for rate in TAIL_RATES],
            "people": len(vectors), "pairs": int(len(scores)),
            "note": "one picture per LFW person; the 1e-6 point rests on about 9 pairs"}


OPEN_SET_RATES = (1e-1, 1e-2, *TAIL_RATES)


def open_set_tail(cache: embedding_cache.LfwEmbeddings, alignment: str, precision: str) -> dict:
    """Thresholds at falling per-pair false accept rates and the mean similarity, over all pairs of LFW
    people with a single photo (people with more are kept out: the identification benchmarks use them)."""
    people = [path.split("/")[0] for path in cache.paths]
    photos = Counter(people)
    rows = [row for row, person in enumerate(people) if photos[person] == 1 and cache.found[row]]
    vectors = cache.embeddings[alignment][rows]
    upper = np.triu_indices(len(vectors), k=1)
    scores = (vectors @ vectors.T)[upper]
    return {"per_pair_far": list(OPEN_SET_RATES),
            "threshold": [round(float(np.quantile(scores, 1 - rate)), 4) for rate in OPEN_SET_RATES],
            "mean_similarity": round(float(scores.mean()), 4),
            "people": len(vectors), "pairs": int(len(scores)), "embedder": f"{precision}, {alignment} alignment",
            "note": "LFW people with a single photo; the 1e-6 point rests on about 4 pairs"}


def _rounded(values: dict[str, float]) -> dict[str, float]:
    return {key: round(value, 5) for key, value in values.items()}


def write_thresholds(model_name: str, thresholds: dict) -> None:
    """Set models[model_name].thresholds, re-reading the manifest right before writing (others edit it too)."""
    manifest = json.loads(MANIFEST_PATH.read_text(encoding="utf-8"))
    manifest["models"][model_name]["thresholds"] = thresholds
    temporary = MANIFEST_PATH.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    temporary.replace(MANIFEST_PATH)


def write_open_set(precision: str, alignment: str) -> None:
    """Replace the open-set tail of every backbone that has a complete cache in this precision."""
    for backbone, model_name in BACKBONES.items():
        if precision not in embedding_cache.precisions(backbone):
            print(f"{backbone}: no {precision} embedder")
            continue
        try:
            cache = embedding_cache.load(backbone, precision=precision)
        except FileNotFoundError as exc:
            print(f"{backbone}: {exc}")
            continue
        thresholds = json.loads(MANIFEST_PATH.read_text(encoding="utf-8"))["models"][model_name].get("thresholds")
        if not thresholds or not thresholds.get("calibrated"):
            print(f"{backbone}: no calibrated thresholds to add the open-set tail to")
            continue
        thresholds["open_set"] = open_set_tail(cache, alignment, precision)
        write_thresholds(model_name, thresholds)
        print(f"{backbone} open set ({precision}, {alignment}): {json.dumps(thresholds['open_set'])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--partial", action="store_true",
                        help="calibrate on the pairs the embedding cache holds so far (provisional; says so)")
    parser.add_argument("--open-set-only", action="store_true",
                        help="rewrite only the open-set tail (pipeline.identity.open_set_thresholds), from the cache of --precision")
    parser.add_argument("--precision", default="float32", choices=("float32", "int8"))
    args = parser.parse_args()
    os.environ.setdefault("FACELAB_WEIGHTS_DIR", str(SHARED_WEIGHTS_DIR))
    reload_settings()  # pipeline read the settings when it was imported
    if args.open_set_only:
        write_open_set(args.precision, default_alignment())
        return
    # "Present" means local or in the HF cache; set HF_HUB_OFFLINE=0 to let it download as well.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    reload_settings()  # pipeline read the settings when it was imported
    alignment = default_alignment()
    for backbone, model_name in BACKBONES.items():
        try:
            resolve(model_name)
        except WeightsError as exc:
            current = json.loads(MANIFEST_PATH.read_text(encoding="utf-8"))["models"][model_name].get("thresholds")
            if current and current.get("calibrated"):
                print(f"{backbone}: weights unavailable, keeping its calibrated thresholds")
            elif backbone in CITED:
                write_thresholds(model_name, CITED[backbone])
                print(f"{backbone}: weights unavailable ({exc}); wrote the cited thresholds")
            continue
        thresholds = calibrate(backbone, alignment, args.partial)
        write_thresholds(model_name, thresholds)
        print(f"{backbone} ({alignment}): " + json.dumps({k: thresholds[k] for k in ("balanced", "strict")}))


if __name__ == "__main__":
    main()
