"""LFW verification, 10-fold, for both alignment methods and both CPU precisions of the embedder
(float32, the reference; int8, the CPU default): accuracy, TAR at FAR 1e-3, ROC AUC, ROC plot.

    python -m benchmarks.lfw [--backbone casia-webface] [--precisions float32 int8]
    # -> benchmarks/results/lfw.json and benchmarks/results/lfw_roc.png

Embeddings come from the LFW cache (training/embedding_cache.py, built on first use). Each fold's
threshold is chosen on the other 9 folds (best accuracy; and FAR <= 1e-3 for the TAR figure). The
calibrated thresholds the app uses (weights/manifest.json, set on float32 scores) are copied into the JSON
beside the figures, with how far int8 moves each pair's similarity and how many decisions at the balanced
threshold it changes.
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np

from training import embedding_cache
from shared_data import REPO_ROOT, SHARED_WEIGHTS_DIR
from training.lfw_protocol import pair_scores, roc_curve, ten_fold
from pipeline.embedding import BACKBONES
from pipeline.weights import MANIFEST_PATH
from pipeline.settings import reload as reload_settings
from benchmarks.harness import write_results

RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
ANCHORS = {
    "casia-webface": {"published": 0.9905, "naive_facenet_pytorch_crops_here_10fold": 0.9843},
    "vggface2": {"published": 0.9965, "facenet_pytorch_remeasured": 0.9937},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="casia-webface", choices=sorted(BACKBONES))
    parser.add_argument("--precisions", nargs="+", choices=["float32", "int8"],
                        help="default: float32, and int8 where the backbone has int8 activation ranges")
    parser.add_argument("--partial", action="store_true", help="use the pairs the cache holds so far (PROVISIONAL)")
    args = parser.parse_args()
    args.precisions = args.precisions or embedding_cache.precisions(args.backbone)
    os.environ.setdefault("FACELAB_WEIGHTS_DIR", str(SHARED_WEIGHTS_DIR))
    reload_settings()  # pipeline read the settings when it was imported
    manifest = json.loads(MANIFEST_PATH.read_text(encoding="utf-8"))
    thresholds = manifest["models"][BACKBONES[args.backbone]].get("thresholds") or {}

    results, curves, similarities = [], {}, {}
    for precision in args.precisions:
        cache = embedding_cache.load_or_build(args.backbone, args.partial, precision)
        for alignment in embedding_cache.ALIGNMENTS:
            scores = pair_scores(cache, alignment)
            figures = ten_fold(scores)
            results.append({"backbone": args.backbone, "precision": precision, "alignment": alignment, **figures})
            curves[precision, alignment] = roc_curve(scores.similarity, scores.same)
            similarities[precision, alignment] = scores.similarity
            print(f"{args.backbone} {precision:7s} {alignment:9s}: accuracy {figures['accuracy_mean']:.4f} +- "
                  f"{figures['accuracy_std']:.4f}, TAR@FAR1e-3 {figures['tar_at_far_1e-3']:.4f}, AUC "
                  f"{figures['roc_auc']:.5f}, {figures['pairs_with_a_face_missing']} pairs with a face missing")
    best = max((r for r in results if r["precision"] == args.precisions[0]), key=lambda r: r["accuracy_mean"])
    document = {
        "provisional": None if all(r["pairs"] == 6000 for r in results) else
        f"only {min(r['pairs'] for r in results)} of 6000 pairs were embedded when this ran: rerun `python -m benchmarks.lfw`",
        "protocol": "LFW View 2 (pairs.txt, deep-funneled copy), 10 folds; threshold on 9 folds, scored on the "
                    "10th; a pair with no face found counts as 'different'. FaceLab's own pipeline: MTCNN "
                    "(pipeline/mtcnn.py), subject = face nearest the picture centre, embeddings centred on the "
                    "backbone's shipped centre (the mean over the first picture of every LFW person: no labels, "
                    "but in-sample; re-fitting it on the 9 training folds only is measured in "
                    "lfw_crop_ablation.json), cosine similarity; embedder on the CPU in float32 (the reference) "
                    "and in int8 (the CPU default, pipeline.models.int8).",
        "results": results,
        "best_alignment": best["alignment"],
        "anchors": ANCHORS.get(args.backbone, {}),
        "calibrated_thresholds": thresholds or None,
        "int8_vs_float32": precision_change(similarities, (thresholds.get("balanced") or {}).get("threshold")),
        "roc_plot": "benchmarks/results/lfw_roc.png",
    }
    write_results(RESULTS_DIR / "lfw.json", document)
    plot_roc(curves, args.backbone, results)
    print(f"best alignment: {best['alignment']}; int8 vs float32: {document['int8_vs_float32']}")


def precision_change(similarities: dict, balanced: float | None) -> dict | None:
    """Per alignment: how far int8 moves a pair's similarity, and the decisions it changes at `balanced`."""
    changes = {}
    for (precision, alignment), reference in similarities.items():
        if precision != "float32" or ("int8", alignment) not in similarities:
            continue
        fast = similarities["int8", alignment]
        both = (reference > -1) & (fast > -1)  # pairs where both found the faces
        moved = np.abs(fast - reference)[both]
        changes[alignment] = {
            "similarity_change_mean": round(float(moved.mean()), 4),
            "similarity_change_p99": round(float(np.percentile(moved, 99)), 4),
            "similarity_change_max": round(float(moved.max()), 4),
            "decisions_changed_at_balanced_threshold": None if balanced is None else
            int(((fast >= balanced) != (reference >= balanced)).sum()),
        }
    return changes or None


def plot_roc(curves: dict, backbone: str, results: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4.5), dpi=110)
    for result in results:
        far, tar = curves[result["precision"], result["alignment"]]
        axis.plot(np.maximum(far, 1e-4), tar, linestyle="-" if result["precision"] == "float32" else "--",
                  label=f"{result['alignment']}, {result['precision']} (acc {result['accuracy_mean']:.4f}, "
                        f"AUC {result['roc_auc']:.4f})")
    axis.axvline(1e-3, color="grey", linestyle=":", linewidth=1)
    axis.set_xscale("log")
    axis.set_xlim(1e-4, 1)
    axis.set_ylim(0.8, 1.001)
    axis.set_xlabel("false accept rate (log)")
    axis.set_ylabel("true accept rate")
    axis.set_title(f"LFW View 2 ROC, {backbone}")
    axis.grid(alpha=0.3)
    axis.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(RESULTS_DIR / "lfw_roc.png")


if __name__ == "__main__":
    main()
