"""Where the enrollment quality gate's numbers come from (pipeline/identity.py): size, blur, head turn.

    python -m benchmarks.quality_thresholds [--images 40]   # -> benchmarks/results/quality_thresholds.json

- Size and blur: LFW pictures (one per person, the first 2-picture people in name order) are degraded
  (downscaled so the face box is N px wide; Gaussian blur of radius sigma) and embedded again; the figure
  is the cosine similarity to the same picture's undegraded embedding (1.0 = no information lost), beside
  the sharpness measure (variance of the Laplacian of the aligned crop) the gate uses.
- Head turn: from the LFW embedding cache, matched View 2 pairs bucketed by the larger |yaw ratio| of their
  two faces, with the share of them accepted at the calibrated balanced threshold.
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np
from PIL import Image, ImageFilter

from training import embedding_cache
from shared_data import REPO_ROOT, SHARED_WEIGHTS_DIR, central_face, lfw_pairs, lfw_people
from pipeline import FaceLab, load_rgb
from pipeline.identity import laplacian_variance, thresholds, yaw_ratio
from pipeline.settings import reload as reload_settings
from benchmarks.harness import write_results

RESULTS = REPO_ROOT / "benchmarks" / "results" / "quality_thresholds.json"
FACE_WIDTHS = (120, 80, 60, 40, 30)
BLUR_SIGMAS = (1.0, 1.5, 2.0, 3.0)
YAW_BUCKETS = (0.0, 0.1, 0.2, 0.3, 0.35, 0.4, 0.5, 10.0)


def subject(lab: FaceLab, image: np.ndarray):
    return central_face(lab.analyze(image, embed=True))


def degradations(lab: FaceLab, paths: list) -> dict:
    size_rows = {width: [] for width in FACE_WIDTHS}
    blur_rows = {sigma: [] for sigma in (0.0, *BLUR_SIGMAS)}
    for path in paths:
        rgb = load_rgb(path)
        reference = subject(lab, rgb)
        if reference is None:
            continue
        blur_rows[0.0].append((1.0, laplacian_variance(reference.crop)))
        picture = Image.fromarray(rgb)
        width = float(reference.box[2] - reference.box[0])
        for target in FACE_WIDTHS:
            scale = target / width
            small = picture.resize((max(16, round(picture.width * scale)), max(16, round(picture.height * scale))),
                                   Image.LANCZOS)
            face = subject(lab, np.asarray(small))
            size_rows[target].append(float(face.embedding @ reference.embedding) if face is not None else np.nan)
        for sigma in BLUR_SIGMAS:
            face = subject(lab, np.asarray(picture.filter(ImageFilter.GaussianBlur(sigma))))
            if face is None:
                blur_rows[sigma].append((np.nan, np.nan))
            else:
                blur_rows[sigma].append((float(face.embedding @ reference.embedding), laplacian_variance(face.crop)))
    sizes = {str(width): _summary(np.array(values)) for width, values in size_rows.items()}
    blurs = {}
    for sigma, values in blur_rows.items():
        values = np.array(values)
        blurs[str(sigma)] = {"similarity_to_sharp": _summary(values[:, 0]), "laplacian_variance": _summary(values[:, 1])}
    return {"face_width_px": sizes, "gaussian_blur_sigma": blurs}


def _summary(values: np.ndarray) -> dict:
    found = values[~np.isnan(values)]
    if not len(found):
        return {"n": 0, "missed": int(len(values))}
    return {"median": round(float(np.median(found)), 3), "p10": round(float(np.percentile(found, 10)), 3),
            "p90": round(float(np.percentile(found, 90)), 3), "n": int(len(found)),
            "missed": int(len(values) - len(found))}


def yaw_effect(alignment: str | None = None) -> dict:
    from training.calibrate_thresholds import default_alignment

    alignment = alignment or default_alignment()  # the one the thresholds were calibrated for
    cache = embedding_cache.load("casia-webface", require_complete=False)
    rows = cache.index()
    balanced = thresholds("casia-webface")["balanced"]
    buckets: dict[str, list] = {}
    for pair in lfw_pairs():
        if not pair.same:
            continue
        keys = [f"{p.parent.name}/{p.name}" for p in (pair.first, pair.second)]
        if not all(key in rows and cache.found[rows[key]] for key in keys):
            continue
        a, b = (rows[key] for key in keys)
        yaw = max(abs(yaw_ratio(cache.landmarks[a])), abs(yaw_ratio(cache.landmarks[b])))
        similarity = float(cache.embeddings[alignment][a] @ cache.embeddings[alignment][b])
        low = max(edge for edge in YAW_BUCKETS if edge <= yaw)
        buckets.setdefault(low, []).append(similarity >= balanced)
    all_yaw = [abs(yaw_ratio(cache.landmarks[i])) for i in np.flatnonzero(cache.found)]
    return {
        "matched_pairs_accepted_at_balanced_by_larger_abs_yaw": {
            f">= {low}": {"pairs": len(hits), "accepted": round(float(np.mean(hits)), 3)} for low, hits in sorted(buckets.items())
        },
        "abs_yaw_percentiles_all_lfw_faces": {str(q): round(float(np.percentile(all_yaw, q)), 3) for q in (50, 90, 95, 99)},
        "balanced_threshold": balanced,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--head-turn-only", action="store_true", help="only redo the head-turn part (needs the cache)")
    args = parser.parse_args()
    if args.head_turn_only:
        document = json.loads(RESULTS.read_text())
        document["head_turn"] = yaw_effect()
        write_results(RESULTS, document)
        print(json.dumps(document["head_turn"], indent=1))
        return
    os.environ.setdefault("FACELAB_WEIGHTS_DIR", str(SHARED_WEIGHTS_DIR))
    reload_settings()  # pipeline read the settings when it was imported
    lab = FaceLab(backbone="casia-webface", device="cpu")
    people = lfw_people(min_images=2)
    names = sorted(people)[:: max(1, len(people) // args.images)][: args.images]
    document = {"method": __doc__.split("\n\n")[2].replace("\n", " ")}
    document.update(degradations(lab, [people[name][0] for name in names]))
    try:
        document["head_turn"] = yaw_effect()
    except Exception as exc:  # cache or thresholds not ready
        print(f"head turn skipped: {exc}")
    write_results(RESULTS, document)
    print(json.dumps(document, indent=1))


if __name__ == "__main__":
    main()
