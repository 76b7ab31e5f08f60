"""Activation ranges for the int8 embedder (pipeline.models.int8), from real face crops.

    python -m training.calibrate_int8 [--backbone casia-webface] [--pictures 256]
    # -> weights/<model>_int8.safetensors (a scale and zero point per activation) + .metrics.json; then
    python -m training.publish   # refreshes its manifest entry (sha256)

Calibration pictures: a fixed random sample (seed 0) of ../shared/data/mask/train/without_mask, not LFW,
so that LFW stays a held-out test. Each goes through the app's own path (detection, the app's alignment)
and the largest face's crop is run through the float model with PyTorch's histogram observers (ranges
that minimise the quantisation error, as PyTorch's x86 default). Deterministic: fixed sample, one thread.

The metrics compare int8 with float32 embeddings on held-out LFW pictures (cosine similarity) and time
both on one thread; benchmarks/lfw.py measures the LFW accuracy of each precision.
"""
from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch
from safetensors.torch import save_file
from torch.ao import quantization as quant

from shared_data import DATA_DIR, LFW_DIR, SHARED_WEIGHTS_DIR
from pipeline.analysis import FaceLab
from pipeline.embedding import BACKBONES, CENTRES, INT8_RANGES, FaceEmbedder, float_model, standardise
from pipeline.models import int8
from pipeline.weights import REPO_WEIGHTS_DIR, load_named
from training.evaluation import ms_per_face
from pipeline.settings import reload as reload_settings

CALIBRATION_DIR = DATA_DIR / "mask" / "train" / "without_mask"
SEED = 0


def ranges_path(backbone: str):
    return REPO_WEIGHTS_DIR / f"{BACKBONES[backbone]}_int8.safetensors"


def face_crops(lab: FaceLab, paths: list) -> np.ndarray:
    """The largest face of each picture, aligned as the app aligns it (pictures without one are skipped)."""
    crops = [analysis.largest.crop for analysis in (lab.analyze(path) for path in paths) if analysis.largest]
    return np.stack(crops)


def calibrate(backbone: str, crops: np.ndarray) -> dict[str, torch.Tensor]:
    model = float_model(load_named(BACKBONES[backbone]))
    histogram = quant.HistogramObserver.with_args(dtype=torch.quint8, quant_min=int8.ACTIVATION_MIN,
                                                  quant_max=int8.ACTIVATION_MAX)
    observed = int8.observed(model, histogram)
    with torch.inference_mode():
        for start in range(0, len(crops), 32):
            observed(standardise(torch.from_numpy(crops[start : start + 32]).permute(0, 3, 1, 2).float()))
    return int8.activation_qparams(observed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="casia-webface", choices=sorted(INT8_RANGES))
    parser.add_argument("--pictures", type=int, default=256)
    parser.add_argument("--lfw-pictures", type=int, default=500)
    args = parser.parse_args()
    os.environ.setdefault("FACELAB_WEIGHTS_DIR", str(SHARED_WEIGHTS_DIR))
    reload_settings()  # pipeline read the settings when it was imported
    torch.set_num_threads(1)
    started = time.perf_counter()
    lab = FaceLab(backbone=args.backbone, device="cpu")
    files = sorted(CALIBRATION_DIR.glob("*.jpg"))
    sample = [files[i] for i in np.random.default_rng(SEED).permutation(len(files))[: args.pictures]]
    crops = face_crops(lab, sample)
    qparams = calibrate(args.backbone, crops)
    out = ranges_path(args.backbone)
    save_file(qparams, str(out), metadata={"backbone": args.backbone, "alignment": lab.alignment,
                                           "calibration_crops": str(len(crops)), "engine": int8.ENGINE})

    lfw = sorted(LFW_DIR.glob("*/*.jpg"))
    held_out = [lfw[i] for i in np.random.default_rng(SEED).permutation(len(lfw))[: args.lfw_pictures]]
    test_crops = face_crops(lab, held_out)
    weights = load_named(BACKBONES[args.backbone])
    centre = load_named(CENTRES[args.backbone])["centre"].numpy() if args.backbone in CENTRES else None
    embedders = {precision: FaceEmbedder(weights, precision=precision, backbone=args.backbone, centre=centre,
                                         int8_ranges=qparams if precision == "int8" else None)
                 for precision in ("float32", "int8")}
    vectors = {name: embedder.embed(test_crops) for name, embedder in embedders.items()}
    cosine = np.einsum("ij,ij->i", vectors["float32"], vectors["int8"])
    metrics = {
        "backbone": args.backbone, "alignment": lab.alignment, "engine": int8.ENGINE,
        "calibration_pictures": len(sample), "calibration_crops": len(crops),
        "calibration_source": "../shared/data/mask/train/without_mask, random sample (seed 0); not LFW",
        "activation_ranges": len(qparams) // 2,
        "lfw_crops_compared": len(test_crops),
        "cosine_int8_vs_float32": {"mean": round(float(cosine.mean()), 5), "p1": round(float(np.percentile(cosine, 1)), 5),
                                   "min": round(float(cosine.min()), 5)},
        "ms_per_face_1_thread": {name: round(ms_per_face(embedder.embed, test_crops[:1])[0], 1)
                                 for name, embedder in embedders.items()},
        "wall_s": round(time.perf_counter() - started, 1),
    }
    out.with_suffix(".metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(json.dumps(metrics, indent=2))


if __name__ == "__main__":
    main()
