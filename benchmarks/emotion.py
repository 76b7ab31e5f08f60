"""Emotion head vs the mini-Xception baseline on the FER2013 test split.

    python -m benchmarks.emotion [--pipeline-sample 7178]

Writes benchmarks/results/emotion.json and emotion_confusion.png. Figures:
- accuracy, accuracy_dedup (without the 568 test images that also occur in train), macro_f1,
  per_class_recall, ECE before/after temperature scaling, ms_per_face (warm, batched, aligned crops);
- pipeline_consistency (accuracy_pipeline beside accuracy_direct): FER test faces upscaled onto a real
  face-free photo, found by the pipeline's MTCNN, aligned and classified from the shared 160x160 crop, vs
  the same images scored directly;
- ckplus_*: CK+ (posed, another source). The head's last layer and temperature are refitted on CK+ by
  training/calibrate_emotion.py, so its CK+ figures are the subject-disjoint 5-fold ones that script
  records (no CK+ figure comes from subjects the head was fitted on); the baseline never saw CK+ and is
  scored on all of it.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from benchmarks.baseline_models import load_mini_xception
from benchmarks.harness import add_threads_argument, use_threads, write_results
from shared_data import MISC_DIR
from pipeline.heads import EMOTIONS, FER_CROP, EmotionHead, cut_and_resize
from training.calibration import expected_calibration_error
from training.datasets import fer_test_duplicates, load_ckplus, load_fer
from training.evaluation import classification_report, ms_per_face, paste_on_canvas, plot_confusion
from training.train_emotion import prepare_eval

RESULTS = Path(__file__).resolve().parent / "results"
BACKGROUNDS = ("no_face_coffee_cup.png", "no_face_rocket_launch_outdoor.jpg")


def mini_xception_inputs_from_fer(images: np.ndarray) -> torch.Tensor:
    """The baseline's own preprocessing: whole 48x48 gray face resized to 64x64, scaled to [-1,1]."""
    x = torch.from_numpy(images).unsqueeze(1).float()
    return F.interpolate(x, size=(64, 64), mode="bilinear", align_corners=False) / 127.5 - 1.0


def mini_xception_proba(model: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    with torch.inference_mode():
        return torch.cat([torch.softmax(model(x[i:i + 512]), 1) for i in range(0, len(x), 512)]).numpy()


def summarise(proba: np.ndarray, labels: np.ndarray, keep: np.ndarray) -> dict:
    pred = proba.argmax(1)
    rep = classification_report(labels, pred, EMOTIONS)
    rep["accuracy_dedup"] = float((pred[keep] == labels[keep]).mean())
    rep["ece"] = expected_calibration_error(proba, labels)
    return rep


def pipeline_crops(images: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Run FER faces (x4 upscaled) through the app's detection and alignment as scenes; returns (the crops
    the heads are given, found index)."""
    from pipeline.analysis import FaceLab

    lab = FaceLab()
    rng = np.random.default_rng(seed)
    backgrounds = [Image.open(MISC_DIR / b) for b in BACKGROUNDS]
    crops, found = [], []
    for i, img in enumerate(images):
        scene, _ = paste_on_canvas(Image.fromarray(img), backgrounds[i % len(backgrounds)], rng, face_side=192)
        rgb, dets = lab.detect(scene)
        if dets:
            crops.append(lab.faces_from(rgb, dets[:1])[0].crop_for_heads)  # largest face
            found.append(i)
    return np.stack(crops), np.array(found)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--pipeline-sample", type=int, default=7178, help="FER test faces put into scenes (all: 7178)")
    add_threads_argument(ap)
    args = ap.parse_args()
    args.threads = use_threads(args.threads)  # the number it resolved to

    test = load_fer("test")
    dups = fer_test_duplicates()
    keep = np.array([f not in dups for f in test.files])
    head = EmotionHead.from_manifest()
    x = prepare_eval(torch.from_numpy(test.images))[0]  # centre crop; the head adds the mirror view
    proba_raw = np.concatenate([head.proba_from_inputs(x[i:i + 512], calibrated=False) for i in range(0, len(x), 512)])
    proba = np.concatenate([head.proba_from_inputs(x[i:i + 512]) for i in range(0, len(x), 512)])
    ours = summarise(proba, test.labels, keep)
    ours["ece_before"] = expected_calibration_error(proba_raw, test.labels)
    ours["ece_after"] = ours.pop("ece")
    train_metrics_path = Path("weights/emotion_head.metrics.json")
    train_metrics = json.loads(train_metrics_path.read_text()) if train_metrics_path.exists() else {}

    baseline = load_mini_xception()
    base = summarise(mini_xception_proba(baseline, mini_xception_inputs_from_fer(test.images)), test.labels, keep)
    ckplus = load_ckplus()[0]
    base["ckplus_accuracy"] = float((mini_xception_proba(baseline, mini_xception_inputs_from_fer(ckplus.images)).argmax(1)
                                     == ckplus.labels).mean())
    refit = train_metrics.get("ckplus_refit")
    ck_figures = {} if refit is None else {
        "ckplus_accuracy": refit["ckplus_accuracy_subject_disjoint"], "ckplus_ece": refit["ckplus_ece_subject_disjoint"],
        "ckplus_per_class_recall": refit["ckplus_per_class_recall"],
        "ckplus": {"protocol": f"{refit['ckplus_subject_folds']}-fold subject-disjoint",
                   "source": "weights/emotion_head.metrics.json ckplus_refit (python -m training.calibrate_emotion)",
                   "images": refit["ckplus_images"], "subjects": refit["ckplus_subjects"],
                   "accuracy_before_refit": refit["ckplus_accuracy_before"], "ece_before_refit": refit["ckplus_ece_before"]},
    }

    # Train/serve consistency through the real detector and aligner.
    rng = np.random.default_rng(0)
    sample = rng.choice(len(test.labels), min(args.pipeline_sample, len(test.labels)), replace=False)
    crops, found = pipeline_crops(test.images[sample])
    idx = sample[found]
    pipe_pred = head.predict_proba(crops).argmax(1)
    base_pipe = mini_xception_proba(baseline, cut_and_resize(crops, FER_CROP, 64, gray=True)).argmax(1)
    consistency = {
        "sample": int(len(sample)), "detected": int(len(found)),
        "accuracy_direct": float((proba[idx].argmax(1) == test.labels[idx]).mean()),
        "accuracy_pipeline": float((pipe_pred == test.labels[idx]).mean()),
        "agreement_direct_vs_pipeline": float((pipe_pred == proba[idx].argmax(1)).mean()),
        "baseline_accuracy_pipeline": float((base_pipe == test.labels[idx]).mean()),
        "how": "FER test faces upscaled x4 to 192 px, pasted on 480 px crops of face-free photos (misc/), "
               "the app's detection and alignment (FaceLab.detect, faces_from), EmotionHead on the crop it is served",
    }

    batch = crops[:16]
    ours["ms_per_face"], ours["ms_per_face_best"] = ms_per_face(head.predict, batch)
    base["ms_per_face"], base["ms_per_face_best"] = ms_per_face(
        lambda c: mini_xception_proba(baseline, cut_and_resize(c, FER_CROP, 64, gray=True)), batch)

    result = {
        "dataset": "FER2013 test (Kaggle msambare image folders), 7,178 images; dedup: 6,610",
        "model": train_metrics.get("arch", "EmotionNet"),
        **{k: ours[k] for k in ("accuracy", "accuracy_dedup", "macro_f1", "per_class_recall", "ece_before",
                                "ece_after", "ms_per_face", "ms_per_face_best")},
        **ck_figures,
        "accuracy_direct": consistency["accuracy_direct"], "accuracy_pipeline": consistency["accuracy_pipeline"],
        "temperature": head.temperature,
        "val_ece_before": train_metrics.get("val_ece_before"), "val_ece_after": train_metrics.get("val_ece_after"),
        "per_class_precision": ours["per_class_precision"], "confusion_matrix": ours["confusion_matrix"],
        "timing": {"threads": args.threads, "batch": len(batch), "load_avg_1min": os.getloadavg()[0],
                   "note": "includes sub-crop, resize, grayscale and the flip TTA; CPU shared with other jobs"},
        "pipeline_consistency": consistency,
        "baseline_mini_xception": {"published_accuracy": 0.66,
                                   **{k: base[k] for k in ("accuracy", "accuracy_dedup", "macro_f1", "per_class_recall",
                                                           "ece", "ms_per_face", "ms_per_face_best", "ckplus_accuracy")}},
    }
    write_results(RESULTS / "emotion.json", result)
    plot_confusion(np.array(ours["confusion_matrix"]), EMOTIONS,
                   f"EmotionNet, FER2013 test (acc {ours['accuracy']:.3f})", str(RESULTS / "emotion_confusion.png"))
    print(json.dumps({k: v for k, v in result.items() if k != "confusion_matrix"}, indent=2))


if __name__ == "__main__":
    main()
