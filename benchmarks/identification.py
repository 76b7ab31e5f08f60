"""Identification on LFW through pipeline.gallery: closed-set top-1 and open-set DIR at FAR 1e-3.

    python -m benchmarks.identification [--backbone casia-webface] [--precisions float32 int8]
    # -> benchmarks/results/identification.json; int8 is the embedder the app runs on a CPU

People with at least 2 LFW pictures (1,559 here). Closed set: each person's first picture is enrolled
(one embedding each), every other picture is a probe; top-1 is right when the best-scoring person is the
probe's. Open set: every other person (alternating in name order) is left out of the gallery; their
pictures are impostor probes. The threshold is set so that at most 0.1 % of impostor probes reach it;
DIR (detection and identification rate) is the share of probes of enrolled people whose top-1 is right
AND at or above it. A probe whose face MTCNN missed counts as a miss. Also reported: the same rates at
the thresholds the app applies to a gallery of this size (pipeline.identity.identification_threshold:
read off the impostor tail of LFW's single-photo people for 1 % / 0.1 % of strangers per face; with this
many embeddings the gallery's population statistics do not move them. benchmarks/identity_domains.py
measures the whole rule, on two populations).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from training import embedding_cache
from shared_data import REPO_ROOT, SHARED_WEIGHTS_DIR, lfw_people
from pipeline.gallery import InMemoryGallery
from pipeline.identity import OPERATING_POINTS, identification_threshold
from pipeline.settings import reload as reload_settings
from benchmarks.harness import write_results

RESULTS = REPO_ROOT / "benchmarks" / "results" / "identification.json"
TARGET_FAR = 1e-3


def top1(gallery: InMemoryGallery, embeddings: np.ndarray, found: np.ndarray) -> tuple[list[str | None], np.ndarray]:
    """Best name and its score per probe (None / -inf where no face was found)."""
    names: list[str | None] = [None] * len(embeddings)
    scores = np.full(len(embeddings), -np.inf)
    rows = np.flatnonzero(found)
    for start in range(0, len(rows), 512):
        batch = rows[start : start + 512]
        for row, candidates in zip(batch, gallery.search_many(embeddings[batch], k=1)):
            names[row], scores[row] = candidates[0].name, candidates[0].similarity
    return names, scores


def evaluate(cache: embedding_cache.LfwEmbeddings, alignment: str, people: dict[str, list], backbone: str) -> dict:
    names = sorted(people)
    enrolled_paths = [people[name][0] for name in names]
    probes = [(name, path) for name in names for path in people[name][1:]]
    enrolled, enrolled_found = cache.lookup(enrolled_paths, alignment)

    # Closed set: everyone enrolled (a person whose enrollment picture has no face is enrolled with
    # nothing and their probes can only fail).
    gallery = InMemoryGallery(max_embeddings=None)
    for name, vector, ok in zip(names, enrolled, enrolled_found):
        if ok:
            gallery.add(name, vector)
    probe_embeddings, probe_found = cache.lookup([path for _, path in probes], alignment)
    truth = np.array([name for name, _ in probes])
    started = time.perf_counter()
    predicted, _ = top1(gallery, probe_embeddings, probe_found)
    search_ms = (time.perf_counter() - started) / len(probes) * 1000
    closed_top1 = float(np.mean([p == t for p, t in zip(predicted, truth)]))

    # Open set: half of the people are not enrolled.
    known = set(names[0::2])
    open_gallery = InMemoryGallery(max_embeddings=None)
    for name, vector, ok in zip(names, enrolled, enrolled_found):
        if ok and name in known:
            open_gallery.add(name, vector)
    genuine = [(name, path) for name, path in probes if name in known]
    impostor = [(name, path) for name in names if name not in known for path in people[name]]
    genuine_embeddings, genuine_found = cache.lookup([p for _, p in genuine], alignment)
    impostor_embeddings, impostor_found = cache.lookup([p for _, p in impostor], alignment)
    genuine_names, genuine_scores = top1(open_gallery, genuine_embeddings, genuine_found)
    _, impostor_scores = top1(open_gallery, impostor_embeddings, impostor_found)
    correct = np.array([p == t for p, (t, _) in zip(genuine_names, genuine)])

    descending = np.sort(impostor_scores)[::-1]
    allowed = int(np.floor(TARGET_FAR * len(descending)))
    threshold = float(np.nextafter(descending[allowed], np.inf))

    def at(t: float) -> dict:
        return {"threshold": round(t, 4),
                "dir": round(float(np.mean(correct & (genuine_scores >= t))), 4),
                "far": round(float(np.mean(impostor_scores >= t)), 5)}

    operating = {}
    try:
        operating = {point: at(identification_threshold(backbone, point, open_gallery.embedding_count))
                     for point in OPERATING_POINTS}
    except Exception as exc:  # not calibrated yet
        print(f"no calibrated thresholds: {exc}")
    return {
        "backbone": backbone,
        "alignment": alignment,
        "people": len(names),
        "probes_closed_set": len(probes),
        "top1_closed_set": round(closed_top1, 4),
        "probes_without_a_face": int((~probe_found).sum()),
        "enrollment_pictures_without_a_face": int((~enrolled_found).sum()),
        "open_set": {
            "enrolled_people": len(known),
            "genuine_probes": len(genuine),
            "impostor_probes": len(impostor),
            "threshold_at_far_1e-3": round(threshold, 4),
            "far_measured": round(float(np.mean(impostor_scores >= threshold)), 5),
        },
        "open_set_detection_identification_rate_at_far_1e-3": round(float(np.mean(correct & (genuine_scores >= threshold))), 4),
        "open_set_at_calibrated_thresholds": operating,
        "search_ms_per_probe_batched": round(search_ms, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="casia-webface")
    parser.add_argument("--partial", action="store_true",
                        help="use the pictures the cache holds so far (PROVISIONAL: fewer people and probes)")
    parser.add_argument("--precisions", nargs="+", choices=["float32", "int8"],
                        help="default: float32, and int8 (the CPU default) where the backbone has int8 ranges")
    args = parser.parse_args()
    args.precisions = args.precisions or embedding_cache.precisions(args.backbone)
    os.environ.setdefault("FACELAB_WEIGHTS_DIR", str(SHARED_WEIGHTS_DIR))
    reload_settings()  # pipeline read the settings when it was imported
    results = []
    for precision in args.precisions:
        cache = embedding_cache.load_or_build(args.backbone, args.partial, precision)
        people = lfw_people(min_images=2)
        if args.partial:
            held = cache.index()
            people = {name: kept for name, paths in people.items()
                      if len(kept := [p for p in paths if f"{p.parent.name}/{p.name}" in held]) >= 2}
        for alignment in embedding_cache.ALIGNMENTS:
            result = {"precision": precision, **evaluate(cache, alignment, people, args.backbone)}
            results.append(result)
            print(f"{precision:7s} {alignment:9s}: top-1 {result['top1_closed_set']:.4f} ({result['people']} people, "
                  f"{result['probes_closed_set']} probes); open-set DIR@FAR1e-3 "
                  f"{result['open_set_detection_identification_rate_at_far_1e-3']:.4f}")
    document = {
        "provisional": None if not args.partial else "computed on the part of LFW embedded so far: rerun "
                                                      "`python -m benchmarks.identification` on the full cache",
        "protocol": __doc__.split("\n\n")[2].replace("\n", " "),
        "results": results,
        "anchors": {"reference_vggface2_220_classes_top1": 0.98, "reference_facenet_105_classes_top1": 0.89},
        "target_top1": 0.98,
    }
    write_results(RESULTS, document)


if __name__ == "__main__":
    main()
