"""Why? (issue 18): are the explanations faithful, are they fast, do they depend on what the model learnt?

    python -m benchmarks.explain [--faces 500] [--pairs 150] [--sanity-faces 100] [--sanity-pairs 20]

Writes benchmarks/results/explain.json. Figures:
- deletion: per map (mask, emotion, verify), the mean drop of the explained class's probability (verify:
  of the similarity) when the 10 % / 20 % most salient pixels of the aligned crop are blurred, and when as
  many random pixels are. Heads: pixels among those the head sees; mask test faces and FER2013 test faces
  placed in an aligned crop (`embed_in_aligned_crop`); verify: LFW matched pairs through MTCNN, both crops
  blurred by their own maps. `methods` holds the same figures (with time and sanity) for each candidate
  method: Grad-CAM and occlusion on the heads, covering pixels or feature maps for verify; they chose the
  app's methods (pipeline.explain.map_method, FaceEmbedder.embed_covered);
- ms: time per face on one CPU thread (median of repeats, shared CPU; `best` beside it);
- sanity (Adebayo et al., 2018): rank correlation between the trained model's maps and those of the same
  architecture with random weights, on the same faces and classes (0: no shared structure).
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from pipeline import explain
from pipeline.analysis import FaceLab
from pipeline.embedding import OCCLUSION_STAGE, covered_blocks
from pipeline.gallery import InMemoryGallery
from pipeline.heads import FER_CROP, MASK_CROP, embed_in_aligned_crop
from pipeline.identity import identify_faces
from pipeline.models.inception_resnet_v1 import InceptionResnetV1
from shared_data import distinct_people, lfw_pairs
from training.datasets import load_fer, load_mask
from benchmarks.harness import use_threads, write_results

RESULTS = Path(__file__).resolve().parent / "results"
SHARES = (0.1, 0.2)
PIXEL_GRID = 5  # the pixel-occlusion baseline for verify: 5x5 patches of 32 px


def test_faces(count: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Aligned crops of `count` mask test faces and `count` FER2013 test faces (random, fixed seed)."""
    rng = np.random.default_rng(seed)
    masks, fer = load_mask("test", 72), load_fer("test")
    pick_mask = rng.choice(len(masks.labels), min(count, len(masks.labels)), replace=False)
    pick_fer = rng.choice(len(fer.labels), count, replace=False)
    return {"mask": np.stack([embed_in_aligned_crop(masks.images[i], MASK_CROP) for i in pick_mask]),
            "emotion": np.stack([embed_in_aligned_crop(fer.images[i], FER_CROP) for i in pick_fer])}


def verdict(head, crops: np.ndarray) -> np.ndarray:
    """The probabilities a verdict names (the mask head's mask / no mask given a face)."""
    return explain.verdict_probabilities(head, head.predict_proba(crops))


def head_maps(head, crops: np.ndarray, method: str) -> tuple[np.ndarray, np.ndarray]:
    """(maps, explained class per face) for every crop, by Grad-CAM or by occlusion of the class probability."""
    targets = explain.explained_classes(head, crops)  # the verdict's class (mask head: mask or no mask)
    make = (lambda c, t: explain.grad_cam(head, c, t)[0]) if method == "grad-cam" else (
        lambda c, t: explain.occlusion_maps(head, c, t)[0])
    return np.concatenate([make(crops[i:i + 50], targets[i:i + 50]) for i in range(0, len(crops), 50)]), targets


def head_deletion(head, crops: np.ndarray, maps: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    inside = explain.view_mask(head)
    rng = np.random.default_rng(1)
    rows = np.arange(len(crops))
    base = verdict(head, crops)[rows, targets]
    out = {}
    for share in SHARES:
        for kind in ("salient", "random"):
            changed = np.stack([explain.blur_pixels(c, explain.top_pixels(m, share, inside, rng if kind == "random" else None))
                                for c, m in zip(crops, maps)])
            out[f"{kind}_drop_{round(share * 100)}"] = float((base - verdict(head, changed)[rows, targets]).mean())
    return out


def randomised(net: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """The same architecture with every layer re-initialised (Adebayo et al.'s full randomisation)."""
    torch.manual_seed(seed)
    net = copy.deepcopy(net)
    for module in net.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
    return net.eval()


def head_sanity(head, crops: np.ndarray, method: str) -> float:
    inside = explain.view_mask(head)
    trained, targets = head_maps(head, crops, method)
    random_head = copy.copy(head)  # the same head (sub-crop, calibration) around a randomised net
    random_head.net = randomised(head.net)
    random = (explain.occlusion_maps(random_head, crops, targets)[0] if method == "occlusion"  # the trained head's classes
              else explain.grad_cam(head, crops, targets=targets, net=random_head.net)[0])
    return float(np.mean([explain.rank_correlation(a[inside], b[inside]) for a, b in zip(trained, random)]))


def pair_crops(lab: FaceLab, count: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Aligned crops of the first `count` LFW matched pairs (spread over the 10 folds) where MTCNN finds both faces."""
    matched = [p for p in lfw_pairs() if p.same]
    out = []
    for pair in matched[:: max(1, len(matched) // count)]:
        faces = [lab.analyze(str(path), max_faces=1).faces for path in (pair.first, pair.second)]
        if all(faces):
            out.append((faces[0][0].crop, faces[1][0].crop))
        if len(out) == count:
            break
    return out


def pixel_verify_maps(embedder, crop_a: np.ndarray, crop_b: np.ndarray) -> explain.VerifyMaps:
    """The baseline verify map: cover 32 px patches of the crop itself with its mean colour (`covered_blocks`,
    as the feature maps are covered) and re-embed each covered crop whole (2 + 2 x 25 embeddings a pair)."""
    pixels = torch.from_numpy(np.stack([crop_a, crop_b])).permute(0, 3, 1, 2).float()
    copies = covered_blocks(pixels, PIXEL_GRID).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()
    vectors = embedder.embed(copies).reshape(2, 1 + PIXEL_GRID * PIXEL_GRID, -1)  # per face: whole, then covered
    a, b = vectors[0, 0], vectors[1, 0]
    similarity = float(a @ b)
    maps = [torch.nn.functional.interpolate(torch.from_numpy(d.reshape(1, 1, PIXEL_GRID, PIXEL_GRID)).float(), size=(160, 160),
                                            mode="bilinear", align_corners=False)[0, 0].numpy()
            for d in (similarity - vectors[0, 1:] @ b, similarity - vectors[1, 1:] @ a)]
    return explain.VerifyMaps(similarity=similarity, map_a=maps[0], map_b=maps[1], embedding_a=a, embedding_b=b, grid=PIXEL_GRID)


VERIFY_METHODS = {"feature occlusion": lambda embedder, a, b: explain.verify_maps(embedder.embed_covered, a, b),
                  "pixel occlusion": pixel_verify_maps}


def verify_deletion(embedder, pairs, method: str) -> tuple[dict[str, float], list]:
    everywhere = np.ones((160, 160), bool)
    rng = np.random.default_rng(2)
    drops: dict[str, list[float]] = {}
    all_maps = []
    embed = embedder.embed
    for crop_a, crop_b in pairs:
        maps = VERIFY_METHODS[method](embedder, crop_a, crop_b)
        all_maps.append(maps)
        batch = []
        for share in SHARES:
            for kind in ("salient", "random"):
                batch += [explain.blur_pixels(c, explain.top_pixels(m, share, everywhere, rng if kind == "random" else None))
                          for c, m in ((crop_a, maps.map_a), (crop_b, maps.map_b))]
        vectors = embed(np.stack(batch))
        i = 0
        for share in SHARES:
            for kind in ("salient", "random"):
                drops.setdefault(f"{kind}_drop_{round(share * 100)}", []).append(maps.similarity - float(vectors[i] @ vectors[i + 1]))
                i += 2
    return {key: float(np.mean(values)) for key, values in drops.items()}, all_maps


def random_embedder(embedder):
    """The embedder with a randomly initialised float32 InceptionResnetV1 in place of the trained one."""
    torch.manual_seed(0)
    clone = copy.copy(embedder)
    clone.model = InceptionResnetV1().eval().to(memory_format=torch.channels_last)
    clone.dtype = torch.float32
    return clone


def median_ms(fn, repeats: int) -> tuple[float, float]:
    fn()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return float(np.median(times) * 1000), float(np.min(times) * 1000)


def timings(lab: FaceLab, faces: dict[str, np.ndarray], pairs) -> dict[str, dict[str, float]]:
    ms = {}
    for name, head in (("mask_map", lab.mask_head), ("emotion_map", lab.emotion_head)):
        crop = faces[name.split("_")[0]][:1]
        ms[name] = median_ms(lambda: explain.explain_head(head, crop), 30)
    crop_a, crop_b = pairs[0]
    ms["verify_map"] = median_ms(lambda: explain.verify_maps(lab.embedder.embed_covered, crop_a, crop_b), 15)
    gallery = InMemoryGallery()
    for name, first, _ in distinct_people(10):
        found = lab.analyze(str(first), embed=True, max_faces=1).faces
        if found:
            gallery.add(name, found[0].embedding, None, backbone=lab.embedder.backbone)
    probe = lab.analyze(str(distinct_people(10)[3][2]), embed=True, max_faces=1).faces
    ms["identify_chart"] = median_ms(lambda: explain.similarity_chart_picture(explain.similarity_charts(
        identify_faces(lab, gallery, probe, "balanced", k=explain.CHART_PEOPLE))[0], 1), 30)

    def timeline_frame():  # a live frame: one point in, the plot's DataFrame out (30 s at 10 frames/s kept)
        import pandas as pd

        timeline.add(probabilities)
        pd.DataFrame(timeline.rows(), columns=["seconds", "emotion", "probability"])

    timeline = explain.EmotionTimeline()
    probabilities = lab.emotion_head.predict(faces["emotion"][:1])[0].probabilities
    for t in range(300):
        timeline.add(probabilities, now=time.monotonic() - 30 + t / 10)
    ms["timeline"] = median_ms(timeline_frame, 50)
    return {name: {"median": round(m, 2), "best": round(b, 2)} for name, (m, b) in ms.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--faces", type=int, default=500, help="test faces per head")
    ap.add_argument("--pairs", type=int, default=150, help="LFW matched pairs for the verify map (occlusion is slow)")
    ap.add_argument("--sanity-faces", type=int, default=100)
    ap.add_argument("--sanity-pairs", type=int, default=20)
    ap.add_argument("--timings-only", action="store_true",
                    help="measure only the times again and update ms, ms_detail and timing in the existing JSON")
    args = ap.parse_args()
    use_threads(1)  # the figures are per face on one CPU thread
    started = time.perf_counter()
    lab = FaceLab(backbone=os.environ.get("FACELAB_BACKBONE", "casia-webface"), device="cpu")
    if args.timings_only:
        result = json.loads((RESULTS / "explain.json").read_text())
        result["ms_detail"] = timings(lab, test_faces(1), pair_crops(lab, 1))
        result["ms"] = {name: value["median"] for name, value in result["ms_detail"].items()}
        result["timing"]["load_avg_1min"] = round(os.getloadavg()[0], 2)
        write_results(RESULTS / "explain.json", result)
        print(json.dumps(result["ms"], indent=2))
        return
    faces = test_faces(args.faces)
    deletion, methods, sanity = {}, {}, {}
    for name, head in (("mask", lab.mask_head), ("emotion", lab.emotion_head)):
        methods[name] = {}
        for method in ("grad-cam", "occlusion"):
            maps, targets = head_maps(head, faces[name], method)
            methods[name][method] = head_deletion(head, faces[name], maps, targets)
            methods[name][method]["rank_correlation"] = head_sanity(head, faces[name][:args.sanity_faces], method)
            print(name, method, methods[name][method], flush=True)
        chosen = explain.map_method(head)  # the method the app uses
        deletion[name] = {k: v for k, v in methods[name][chosen].items() if k != "rank_correlation"}
        sanity[name] = {"rank_correlation": round(methods[name][chosen]["rank_correlation"], 3),
                        "faces": min(args.sanity_faces, len(faces[name])), "method": chosen}
    pairs = pair_crops(lab, args.pairs)
    fake = random_embedder(lab.embedder)
    methods["verify"] = {}
    for method in VERIFY_METHODS:
        methods["verify"][method], trained_maps = verify_deletion(lab.embedder, pairs, method)
        correlations = []
        for (crop_a, crop_b), maps in zip(pairs[:args.sanity_pairs], trained_maps):
            random_maps = VERIFY_METHODS[method](fake, crop_a, crop_b)
            correlations += [explain.rank_correlation(maps.map_a, random_maps.map_a),
                             explain.rank_correlation(maps.map_b, random_maps.map_b)]
        methods["verify"][method]["rank_correlation"] = float(np.mean(correlations))
        print("verify", method, methods["verify"][method], flush=True)
    deletion["verify"] = {k: v for k, v in methods["verify"]["feature occlusion"].items() if k != "rank_correlation"}
    sanity["verify"] = {"rank_correlation": round(methods["verify"]["feature occlusion"]["rank_correlation"], 3),
                        "pairs": min(args.sanity_pairs, len(pairs)), "method": "feature occlusion"}
    ms = timings(lab, faces, pairs)
    for name, head in (("mask", lab.mask_head), ("emotion", lab.emotion_head)):  # the price of each candidate
        for method in ("grad-cam", "occlusion"):
            methods[name][method]["ms"] = median_ms(lambda: head_maps(head, faces[name][:1], method), 15)[0]
    for method, make in VERIFY_METHODS.items():
        methods["verify"][method]["ms"] = median_ms(lambda: make(lab.embedder, *pairs[0]), 7)[0]
    deletion = {name: {key: round(value, 4) for key, value in row.items()} for name, row in deletion.items()}
    result = {
        "deletion": deletion,
        "ms": {name: value["median"] for name, value in ms.items()},
        "sanity": {name: {"rank_correlation": row["rank_correlation"]} for name, row in sanity.items()},
        "targets": {"salient_over_random_at_10": 2.0, "mask_map_ms": 60, "emotion_map_ms": 60, "verify_map_ms": 400,
                    "identify_chart_ms": 10, "timeline_ms": 10, "rank_correlation_below": 0.3},
        "samples": {"mask": f"{len(faces['mask'])} mask test faces (Face Mask 12K test split), in an aligned crop",
                    "emotion": f"{len(faces['emotion'])} FER2013 test faces, in an aligned crop",
                    "verify": f"{len(pairs)} LFW matched pairs (MTCNN, box alignment); fewer than 500: the pixel "
                              f"baseline costs {2 + 2 * PIXEL_GRID ** 2} embeddings a pair on 2 shared cores",
                    "sanity": {name: {k: v for k, v in row.items() if k != "rank_correlation"} for name, row in sanity.items()}},
        "how": {"heads": f"mask: occlusion ({explain.HEAD_GRID}x{explain.HEAD_GRID} blocks of the head's input set to its "
                         "mean), emotion: Grad-CAM on the last ReLU of net.features; the verdict's class; pixels "
                         "chosen among those the head sees",
                "verify": f"feature occlusion: {explain.VERIFY_GRID}x{explain.VERIFY_GRID} blocks of the 8x8 feature maps "
                          f"after {OCCLUSION_STAGE} set to the face's mean activation (pixel occlusion, the baseline: "
                          f"{PIXEL_GRID}x{PIXEL_GRID} patches of the crop's mean colour); deletion blurs both crops' "
                          "chosen pixels and measures the similarity drop",
                "deletion": "chosen pixels replaced by a Gaussian blur (radius 6) of the crop; random: as many random pixels",
                "sanity": "every layer re-initialised (PyTorch defaults); Spearman over the map's pixels, mean over faces"},
        "methods": {name: {method: {key: round(value, 4) for key, value in row.items()} for method, row in by.items()}
                    for name, by in methods.items()},
        "ms_detail": ms,
        "timing": {"threads": 1, "load_avg_1min": round(os.getloadavg()[0], 2),
                   "note": "one face (verify: one pair, both maps), warm, CPU shared with other jobs"},
        "seconds": round(time.perf_counter() - started),
    }
    write_results(RESULTS / "explain.json", result)
    print(json.dumps({k: result[k] for k in ("deletion", "ms", "sanity")}, indent=2))


if __name__ == "__main__":
    main()
