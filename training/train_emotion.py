"""Train the emotion head on FER2013 (48x48 gray, 7 classes).

    python -m training.train_emotion [--budget-min 50] [--out weights/emotion_head.safetensors]

Deterministic split: 10 % of train (by md5 of the file name) is held out for early
stopping and temperature scaling; the test split is only scored at the end. Every image is used twice:
in FER2013's own framing and as the app frames it (found by MTCNN, aligned, cut at the head's sub-crop:
`training.pipeline_framing`), so the head is trained on the crops it is served. Validation and test
are scored on both.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from pipeline.heads import EMOTION_INPUT, EMOTIONS, FER_SIZE, EmotionNet
from pipeline.weights import load_state_dict
from .augment import brightness_contrast, center_crop, random_affine, random_blur, random_erase, random_pixelate
from .calibration import softmax
from .common import FitConfig, calibrate, export, fit, predict_logits, seed_everything
from .datasets import fer_blank_mask, fer_train_val_split, load_fer
from .pipeline_framing import load_framed

SEED = 1234


def to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 (B,48,48) -> float (B,1,48,48) in [-1,1] (same normalisation as pipeline.heads)."""
    return x.unsqueeze(1).float() / 127.5 - 1.0


def prepare_train(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    x = random_affine(to_float(x), EMOTION_INPUT, g, rot_deg=12, scale=(0.9, 1.1), shift=0.08,
                      base=EMOTION_INPUT / FER_SIZE)
    x = brightness_contrast(x, g)
    # Other cameras: soft webcam focus and small, blocky web pictures.
    x = random_pixelate(random_blur(x, g, p=0.2), g, p=0.1, sizes=(16, 28))
    return random_erase(x, g, p=0.25, area=(0.02, 0.12))


def prepare_eval(x: torch.Tensor) -> torch.Tensor:
    """Centre crop + its mirror (the same flip TTA that EmotionHead uses at serve time)."""
    x = center_crop(to_float(x), EMOTION_INPUT)
    return torch.stack([x, x.flip(-1)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--budget-min", type=float, default=50.0)
    ap.add_argument("--widths", default="24,48,96,192")
    ap.add_argument("--out", type=Path, default=Path("weights/emotion_head.safetensors"))
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--warmup", type=float, default=0.08, help="fraction of the budget spent warming up the LR")
    ap.add_argument("--init", type=Path, default=None,
                    help="start from this state dict (e.g. /tmp/emotion_head.best.pt) for a second, shorter cycle")
    args = ap.parse_args()
    g = seed_everything(SEED)
    t0 = time.time()

    train = load_fer("train")
    test = load_fer("test")
    tr_idx, va_idx = fer_train_val_split(train.files)
    tr_idx = tr_idx[~fer_blank_mask(train.images[tr_idx])]
    framed, found = load_framed("fer_train", train.images)
    framed_test, found_test = load_framed("fer_test", test.images)
    # Both framings of each image: rows of x_all are the originals, then their app-framed copies.
    x_all = torch.from_numpy(np.concatenate([train.images, framed]))
    y_all = torch.from_numpy(np.concatenate([train.labels, train.labels]))

    def both_framings(idx: np.ndarray) -> np.ndarray:  # an image's copy only where the detector found its face
        return np.concatenate([idx, idx[found[idx]] + len(train.images)])

    tr_rows, va_rows = both_framings(tr_idx), both_framings(va_idx)
    tr_x, tr_y, va_x, va_y = x_all[tr_rows], y_all[tr_rows], x_all[va_rows], y_all[va_rows]
    counts = np.bincount(tr_y.numpy(), minlength=len(EMOTIONS))
    # Imbalance: weights ~ 1/sqrt(frequency) lift disgust (~390 images) without wrecking overall accuracy.
    class_w = torch.tensor((counts.sum() / (len(counts) * counts)) ** 0.5, dtype=torch.float32)
    print(f"train {len(tr_x)} val {len(va_x)} test {len(test.labels)}; counts {counts.tolist()}; "
          f"class weights {np.round(class_w.numpy(), 2).tolist()} (data {time.time() - t0:.0f}s)", flush=True)

    widths = tuple(int(w) for w in args.widths.split(","))
    model = EmotionNet(widths=widths)
    if args.init is not None:
        state = load_state_dict(args.init)  # a .best.pt checkpoint or a released .safetensors
        state.pop("temperature", None)
        model.load_state_dict(state)
        print(f"initialised from {args.init}", flush=True)
    cfg = FitConfig(budget_s=args.budget_min * 60, lr=args.lr, warmup=args.warmup, patience=10,
                    checkpoint=Path("/tmp") / (args.out.stem + ".best.pt"))
    model, history = fit(model, tr_x, tr_y, va_x, va_y, prepare_train, prepare_eval, cfg, g, class_w)

    val_logits = predict_logits(model, va_x, prepare_eval)
    cal = calibrate(val_logits, va_y.numpy())
    test_logits = predict_logits(model, torch.from_numpy(test.images), prepare_eval)
    test_pred = softmax(test_logits, cal["temperature"]).argmax(1)
    framed_logits = predict_logits(model, torch.from_numpy(framed_test[found_test]), prepare_eval)
    metrics = {
        "head": "emotion", "arch": f"EmotionNet(widths={widths})", "seed": SEED,
        "init": str(args.init) if args.init else None, "lr": args.lr, "budget_min": args.budget_min,
        "params": sum(p.numel() for p in model.parameters()),
        "train_images": len(tr_x), "val_images": len(va_x),
        "val_accuracy": float((val_logits.argmax(1) == va_y.numpy()).mean()),
        "test_accuracy": float((test_pred == test.labels).mean()),
        "test_accuracy_app_framed": float((framed_logits.argmax(1) == test.labels[found_test]).mean()),
        "test_accuracy_own_framing_same_faces": float((test_pred[found_test] == test.labels[found_test]).mean()),
        **cal, "epochs": history, "train_wall_s": round(time.time() - t0, 1),
    }
    export(model, cal["temperature"], args.out,
           {"arch": "EmotionNet", "widths": args.widths, "labels": ",".join(EMOTIONS), "input": "gray 44x44 [-1,1]"})
    metrics_path = args.out.with_suffix(".metrics.json")
    if args.init is not None and metrics_path.exists():  # keep the record of the cycle we started from
        metrics["previous_stage"] = json.loads(metrics_path.read_text())
    metrics_path.write_text(json.dumps(metrics, indent=2) + "\n")
    print(json.dumps({k: v for k, v in metrics.items() if k != "epochs"}, indent=2))


if __name__ == "__main__":
    main()
