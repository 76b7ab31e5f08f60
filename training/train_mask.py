"""Train the mask head on mask/{train,val} (RGB, 2 classes: mask, no_mask).

    python -m training.train_mask [--budget-min 8] [--out weights/mask_head.safetensors]

Images are resized to 72x72 once; training samples random 64x64 views (flip, rotation,
scale, shift), brightness/contrast, occlusion and blur. The val split (no dup_group shared
with train or test) drives early stopping and temperature scaling.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from pipeline.heads import MASK_INPUT, MASK_LABELS, NOT_A_FACE, MaskNet
from pipeline.weights import load_state_dict
from .augment import (brightness_contrast, center_crop_and_mirror, colour_cast, random_affine, random_blur,
                      random_erase, random_pixelate)
from .calibration import softmax
from .common import FitConfig, calibrate, export, fit, predict_logits, seed_everything, write_metrics
from .datasets import ImageSet, load_mask, load_not_faces, load_object_not_faces
from .pipeline_framing import load_lfw_painted, load_mask_scene_framed

SEED = 1234
LOAD_SIZE = 72  # training views are 64x64 windows of the 72x72 image (as the serve-time centre crop)


def to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 (B,H,W,3) -> float (B,3,H,W) in [-1,1] (same normalisation as pipeline.heads)."""
    return x.permute(0, 3, 1, 2).float() / 127.5 - 1.0


COLOUR_AUG = False  # --colour-aug: colour casts + pixelation (tried; lower val accuracy within the same CPU budget)


def appended(base: ImageSet, images: np.ndarray, labels: np.ndarray, files: list[str] | None = None) -> ImageSet:
    """`base` with more rows. `files`: their sources, if known; otherwise they are named "<added N>", so that
    `files` keeps one entry per row."""
    added = files if files is not None else [f"<added {index}>" for index in range(len(images))]
    if not len(added) == len(images) == len(labels):
        raise ValueError(f"{len(images)} images, {len(labels)} labels and {len(added)} files to append")
    return ImageSet(np.concatenate([base.images, images]), np.concatenate([base.labels, labels]), base.files + added)


def prepare_train(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    # Wide scale/shift range: the two classes come framed differently in this dataset
    # (without_mask are tight aligned CelebA crops), so framing must not be a usable cue.
    x = random_affine(to_float(x), MASK_INPUT, g, rot_deg=15, scale=(0.8, 1.25), shift=0.12,
                      base=MASK_INPUT / LOAD_SIZE)
    x = brightness_contrast(x, g, b=0.3, c=0.4)
    if COLOUR_AUG:
        x = colour_cast(x, g)
    gray = torch.rand(len(x), generator=g) < 0.15  # some webcams / photos are gray
    x[gray] = x[gray].mean(1, keepdim=True).expand(-1, 3, -1, -1)
    x = random_erase(x, g, p=0.4, area=(0.02, 0.12))
    x = random_blur(x, g, p=0.3)
    return random_pixelate(x, g) if COLOUR_AUG else x


def prepare_eval(x: torch.Tensor) -> torch.Tensor:
    """Centre crop + its mirror (the flip TTA that MaskHead uses at serve time)."""
    return center_crop_and_mirror(to_float(x), MASK_INPUT)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--budget-min", type=float, default=8.0)
    ap.add_argument("--out", type=Path, default=Path("weights/mask_head.safetensors"))
    ap.add_argument("--colour-aug", action="store_true", help="add colour casts and pixelation")
    ap.add_argument("--widths", default="16,32,64,128", help="channels of the net's stages")
    ap.add_argument("--patience", type=int, default=15, help="epochs without a validation gain before stopping")
    ap.add_argument("--init", type=Path, default=None,
                    help="start from this head (e.g. the released two-class weights): its convolutions and its two "
                         "face classes; a new third row for 'not a face'")
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--not-faces", type=int, default=2400,
                    help="a third class, 'not a face', with this many LFW background squares in train (a quarter as "
                         "many in val); 0: the two-class head")
    ap.add_argument("--objects", action="store_true",
                    help="'not a face' also from object, texture and plain close-ups (training.datasets.load_object_not_faces)")
    ap.add_argument("--scene-framed", action="store_true",
                    help="the face pictures also as the mask check frames them in a photo, found by its passes "
                         "(training.pipeline_framing.load_mask_scene_framed), in train and val")
    ap.add_argument("--painted", action="store_true",
                    help="LFW faces of training people, bare and with a painted mask, framed as the mask check frames "
                         "them (training.pipeline_framing.load_lfw_painted), in train and val (a trial, not "
                         "released: weights/mask_head.md)")
    args = ap.parse_args()
    global COLOUR_AUG
    COLOUR_AUG = args.colour_aug
    g = seed_everything(SEED)
    t0 = time.time()
    train, val, test = (load_mask(s, LOAD_SIZE) for s in ("train", "val", "test"))
    scene_counts: dict[str, int] = {}
    if args.scene_framed:
        framed = {split: load_mask_scene_framed(split) for split in ("train", "val")}
        train, val = (appended(faces, images[found], faces.labels[found], [f for f, hit in zip(faces.files, found) if hit])
                      for faces, (images, found) in ((train, framed["train"]), (val, framed["val"])))
        scene_counts = {split: int(found.sum()) for split, (_, found) in framed.items()}
    painted_counts: dict[str, list[int]] = {}
    if args.painted:
        painted = {split: load_lfw_painted(split) for split in ("train", "val")}
        train, val = appended(train, *painted["train"]), appended(val, *painted["val"])
        painted_counts = {split: np.bincount(labels, minlength=len(MASK_LABELS)).tolist()
                          for split, (_, labels) in painted.items()}
    not_face_counts: dict[str, list[int]] = {}
    if args.not_faces:
        # Boxes the relaxed detector passes put on shirts, walls and hands must get no mask verdict: the
        # head learns to say "not a face" (pipeline.heads.MaskPrediction.face_probability).
        # Besides LFW backgrounds, close-ups of objects and textures (a centre square taken whole, a relaxed
        # pass's box on gravel).
        rng = np.random.default_rng(SEED)
        negatives = {}
        for split, count in (("train", args.not_faces), ("val", args.not_faces // 4)):
            pool = load_not_faces(split, LOAD_SIZE)
            pick = np.sort(rng.choice(len(pool.labels), min(count, len(pool.labels)), replace=False))
            sources = [pool.images[pick]]
            if args.objects:
                objects = load_object_not_faces(split, LOAD_SIZE).images
                sources.append(objects if split == "train" else objects[::4])  # val: about as many as LFW's
            images = np.concatenate(sources)
            negatives[split] = (images, np.full(len(images), len(MASK_LABELS), np.int64))
            not_face_counts[split] = [len(x) for x in sources]
        train, val = appended(train, *negatives["train"]), appended(val, *negatives["val"])
    tr_x, tr_y = torch.from_numpy(train.images), torch.from_numpy(train.labels)
    va_x, va_y = torch.from_numpy(val.images), torch.from_numpy(val.labels)
    classes = len(MASK_LABELS) + (1 if args.not_faces else 0)
    counts = np.bincount(train.labels, minlength=classes)
    print(f"train {len(tr_x)} {counts.tolist()} val {len(va_x)} test {len(test.labels)}", flush=True)

    widths = tuple(int(w) for w in args.widths.split(","))
    model = MaskNet(widths=widths, num_classes=classes)
    if args.init is not None:
        state = load_state_dict(args.init)
        state.pop("temperature", None)
        for key in ("classifier.weight", "classifier.bias"):  # the face classes' rows kept, "not a face" new
            fresh = model.state_dict()[key].clone()
            fresh[:len(state[key])] = state[key]
            state[key] = fresh
        model.load_state_dict(state)
        print(f"initialised from {args.init}", flush=True)
    cfg = FitConfig(budget_s=args.budget_min * 60, batch_size=64, lr=args.lr, patience=args.patience,
                    checkpoint=Path("/tmp") / (args.out.stem + ".best.pt"))
    model, history = fit(model, tr_x, tr_y, va_x, va_y, prepare_train, prepare_eval, cfg, g)

    val_logits = predict_logits(model, va_x, prepare_eval)
    cal = calibrate(val_logits, va_y.numpy())
    test_logits = predict_logits(model, torch.from_numpy(test.images), prepare_eval)
    test_proba = softmax(test_logits, cal["temperature"])
    test_pred = test_proba[:, :len(MASK_LABELS)].argmax(1)  # the verdict among the face classes, as served
    metrics = {
        "head": "mask", "arch": f"MaskNet(widths={widths})", "budget_min": args.budget_min, "seed": SEED,
        "init": str(args.init) if args.init else None, "lr": args.lr,
        "params": sum(p.numel() for p in model.parameters()),
        "train_images": len(tr_x), "val_images": len(va_x),
        "val_accuracy": float((val_logits.argmax(1) == va_y.numpy()).mean()),
        "test_accuracy": float((test_pred == test.labels).mean()),
        **({"test_faces_called_not_a_face": float((test_proba.argmax(1) == len(MASK_LABELS)).mean()),
            "val_not_faces_called_not_a_face": float((val_logits.argmax(1)[va_y.numpy() == len(MASK_LABELS)]
                                                      == len(MASK_LABELS)).mean()),
            "not_a_face_source": "LFW squares away from the face (training.datasets.load_not_faces)" + (
                "; object, texture and plain close-ups (load_object_not_faces)" if args.objects else ""),
            "not_a_face_counts": not_face_counts}
           if args.not_faces else {}),
        **({"scene_framed_faces": scene_counts} if args.scene_framed else {}),
        **({"lfw_painted_faces_mask_no_mask": painted_counts} if args.painted else {}),
        **cal, "epochs": history, "train_wall_s": round(time.time() - t0, 1),
    }
    export(model, cal["temperature"], args.out,
           {"arch": "MaskNet", "widths": args.widths, "input": "rgb 64x64 [-1,1]",
            "labels": ",".join(MASK_LABELS + ((NOT_A_FACE,) if args.not_faces else ()))})
    write_metrics(metrics, args.out, continued=args.init is not None)


if __name__ == "__main__":
    main()
