"""Train the emotion head on FER2013 (48x48 gray, 7 classes).

    python -m training.train_emotion [--budget-min 50] [--out weights/emotion_head.safetensors]

Deterministic split: 10 % of train (by md5 of the file name) is held out for early
stopping and temperature scaling; the test split is only scored at the end. Every image is used twice:
in FER2013's own framing and as the app frames it (found by MTCNN, aligned, cut at the head's sub-crop:
`training.pipeline_framing`), so the head is trained on the crops it is served. Validation and test
are scored on both.

Beyond the edge (issue 16): the app framing was made from edge-padded pictures, so where its crop reaches past the
FER picture it shows smeared edge pixels, while a face in a photo has surroundings. With ``--beyond-edge P`` a
share P of the app-framed training views gets other content there (the fitted framing geometry of
`training.pipeline_framing.load_framing_geometry`, pasted with a hard edge): LFW background squares (train people),
other FER2013 training images, flat grey or smooth noise. Validation adds a third copy of the app-framed rows with
LFW background squares of the validation people around them (fixed draw). Off by default: a 50-minute cycle with
P = 0.5 closed the gap on that validation copy but not in benchmarks/emotion.py's scenes, and cost CK+ figures
(weights/emotion_head.md), so the released head is not trained with it.

Scenes (issue 16, the released head's fourth cycle): with ``--scene-framed`` every image also comes as the app frames
it in a photo (pasted with a hard edge and found: `training.pipeline_framing.load_scene_framed`), in training and
as a third validation part.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.heads import EMOTION_INPUT, EMOTIONS, FER_SIZE, EmotionNet
from pipeline.weights import load_state_dict
from .augment import (brightness_contrast, center_crop_and_mirror, random_affine, random_blur, random_erase,
                      random_pixelate)
from .calibration import softmax
from .common import FitConfig, calibrate, export, fit, predict_logits, seed_everything, write_metrics
from .datasets import fer_blank_mask, fer_train_val_split, load_fer, load_not_faces
from .pipeline_framing import beyond_edge, load_framed, load_framing_geometry, load_scene_framed

SEED = 1234


def to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 (B,48,48) -> float (B,1,48,48) in [-1,1] (same normalisation as pipeline.heads)."""
    return x.unsqueeze(1).float() / 127.5 - 1.0


def prepare_train(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    return augment(to_float(x), g)


def augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """float (B,1,48,48) in [-1,1] -> random 44x44 training views."""
    x = random_affine(x, EMOTION_INPUT, g, rot_deg=12, scale=(0.9, 1.1), shift=0.08,
                      base=EMOTION_INPUT / FER_SIZE)
    x = brightness_contrast(x, g)
    # Other cameras: soft webcam focus and small, blocky web pictures.
    x = random_pixelate(random_blur(x, g, p=0.2), g, p=0.1, sizes=(16, 28))
    return random_erase(x, g, p=0.25, area=(0.02, 0.12))


def gray_squares(images: np.ndarray) -> torch.Tensor:
    """(N,S,S,3) uint8 RGB -> (N,1,S,S) float gray in [-1,1] (ITU-R 601 luma, as PIL's convert("L"))."""
    y = images.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    return torch.from_numpy(y).unsqueeze(1) / 127.5 - 1.0


class Surroundings:
    """What lies beyond a pasted face picture's edge, drawn per view: a background square of an LFW picture (away
    from the face; train people only), another FER2013 training image, flat grey, or smooth noise. Each is a
    picture covering [-extent, extent] of the face picture's coordinates (the face spans 1/extent of it)."""

    KINDS = ("background", "other_face_picture", "flat", "noise")
    SHARES = (0.55, 0.2, 0.1, 0.15)

    def __init__(self, backgrounds: torch.Tensor, pictures: torch.Tensor) -> None:
        self.backgrounds, self.pictures = backgrounds, pictures  # (N,1,S,S) float in [-1,1]

    def draw(self, n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        side = self.backgrounds.shape[-1]
        kind = torch.multinomial(torch.tensor(self.SHARES), n, replacement=True, generator=g)
        out = torch.empty(n, 1, side, side)
        extent = 1.6 + torch.rand(n, generator=g) * 1.4  # the face picture is 1/1.6 to 1/3 of the scene around it
        for k in range(len(self.KINDS)):
            sel = torch.nonzero(kind == k).flatten()
            if len(sel) == 0:
                continue
            m = len(sel)
            if self.KINDS[k] == "background":
                out[sel] = self.backgrounds[torch.randint(len(self.backgrounds), (m,), generator=g)]
            elif self.KINDS[k] == "other_face_picture":
                pics = self.pictures[torch.randint(len(self.pictures), (m,), generator=g)]
                out[sel] = F.interpolate(pics, size=(side, side), mode="bilinear", align_corners=False)
            elif self.KINDS[k] == "flat":
                out[sel] = (torch.rand(m, 1, 1, 1, generator=g) * 2 - 1).expand(m, 1, side, side)
            else:  # smooth noise around a random level
                noise = torch.randn(m, 1, 9, 9, generator=g) * 0.4 + (torch.rand(m, 1, 1, 1, generator=g) * 1.6 - 0.8)
                out[sel] = F.interpolate(noise, size=(side, side), mode="bicubic", align_corners=False).clamp(-1, 1)
        flip = torch.rand(n, generator=g) < 0.5
        out[flip] = out[flip].flip(-1)
        return out, extent


def prepare_eval(x: torch.Tensor) -> torch.Tensor:
    """Centre crop + its mirror (the same flip TTA that EmotionHead uses at serve time)."""
    return center_crop_and_mirror(to_float(x), EMOTION_INPUT)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--budget-min", type=float, default=50.0)
    ap.add_argument("--widths", default="24,48,96,192")
    ap.add_argument("--out", type=Path, default=Path("weights/emotion_head.safetensors"))
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--warmup", type=float, default=0.08, help="fraction of the budget spent warming up the LR")
    ap.add_argument("--init", type=Path, default=None,
                    help="start from this state dict (e.g. /tmp/emotion_head.best.pt) for a second, shorter cycle")
    ap.add_argument("--beyond-edge", type=float, default=0.0,
                    help="share of the app-framed training views given other content beyond the FER picture's edge "
                         "(0, the default: edge padding only, the recipe of the released head; the 0.5 trial did not "
                         "narrow the scene benchmark's gap, see weights/emotion_head.md)")
    ap.add_argument("--scene-framed", action="store_true",
                    help="a third framing of every image: pasted with a hard edge in a scene and found as the app "
                         "finds it (training.pipeline_framing.load_scene_framed), in training and validation")
    args = ap.parse_args()
    g = seed_everything(SEED)
    t0 = time.time()

    train = load_fer("train")
    test = load_fer("test")
    tr_idx, va_idx = fer_train_val_split(train.files)
    tr_idx = tr_idx[~fer_blank_mask(train.images[tr_idx])]
    framed, found = load_framed("fer_train", train.images)
    framed_test, found_test = load_framed("fer_test", test.images)
    beyond = args.beyond_edge > 0
    if beyond:
        geometry, usable = load_framing_geometry("fer_train", train.images)
    n_img = len(train.images)
    # Every framing of each image: rows of x_all are the originals, then their app-framed copies (then, with
    # --scene-framed, their copies found in scenes).
    copies = [(framed, found)] + ([load_scene_framed("fer_train", train.images)] if args.scene_framed else [])
    x_all = torch.from_numpy(np.concatenate([train.images] + [c[0] for c in copies]))
    y_all = torch.from_numpy(np.concatenate([train.labels] * (1 + len(copies))))

    def all_framings(idx: np.ndarray) -> list[np.ndarray]:  # a copy only where the detector found the face
        return [idx] + [idx[hit[idx]] + (k + 1) * n_img for k, (_, hit) in enumerate(copies)]

    tr_rows, va_parts = np.concatenate(all_framings(tr_idx)), all_framings(va_idx)
    va_rows = np.concatenate(va_parts)
    tr_y, va_x, va_y = y_all[tr_rows], x_all[va_rows], y_all[va_rows]
    val_parts = dict(zip(("own", "app_framed", "scene_framed"), map(len, va_parts)))
    if beyond:
        # Validation, third copy: app-framed rows with LFW background squares of the validation people around them.
        va_scene = va_idx[usable[va_idx]]
        val_g = torch.Generator().manual_seed(SEED + 1)
        val_bg = gray_squares(load_not_faces("val", 72).images)
        pick = torch.randint(len(val_bg), (len(va_scene),), generator=val_g)
        scene = beyond_edge(to_float(torch.from_numpy(framed[va_scene])), torch.from_numpy(geometry[va_scene]),
                            val_bg[pick], 1.6 + torch.rand(len(va_scene), generator=val_g) * 1.4)
        va_x = torch.cat([va_x, ((scene[:, 0] + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)])
        va_y = torch.cat([va_y, torch.from_numpy(train.labels[va_scene])])
        val_parts["app_framed_scene"] = len(va_scene)
        surroundings = Surroundings(gray_squares(load_not_faces("train", 72).images),
                                    to_float(torch.from_numpy(train.images[tr_idx])))
        tr_geometry, tr_usable = torch.from_numpy(geometry), torch.from_numpy(usable)

    def prepare_train_rows(rows: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """Rows of x_all -> training views; a share of the app-framed ones get other surroundings first."""
        x = to_float(x_all[rows])
        if not beyond:
            return augment(x, g)  # the same random stream as prepare_train on the same pictures
        img = (rows - n_img).clamp(0, n_img - 1)
        sel = torch.nonzero((rows >= n_img) & (rows < 2 * n_img) & tr_usable[img]
                            & (torch.rand(len(rows), generator=g) < args.beyond_edge)).flatten()
        if len(sel):
            around, extent = surroundings.draw(len(sel), g)
            x[sel] = beyond_edge(x[sel], tr_geometry[img[sel]], around, extent)
        return augment(x, g)

    tr_x = torch.from_numpy(tr_rows)  # row ids; prepare_train_rows fetches the pictures
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
    model, history = fit(model, tr_x, tr_y, va_x, va_y, prepare_train_rows, prepare_eval, cfg, g, class_w)

    val_logits = predict_logits(model, va_x, prepare_eval)
    val_ok = val_logits.argmax(1) == va_y.numpy()
    ends = np.cumsum(list(val_parts.values()))
    val_by_part = {f"val_accuracy_{k}": float(part.mean())
                   for k, part in zip(val_parts, np.split(val_ok, ends[:-1]))}
    cal = calibrate(val_logits, va_y.numpy())
    test_logits = predict_logits(model, torch.from_numpy(test.images), prepare_eval)
    test_pred = softmax(test_logits, cal["temperature"]).argmax(1)
    framed_logits = predict_logits(model, torch.from_numpy(framed_test[found_test]), prepare_eval)
    metrics = {
        "head": "emotion", "arch": f"EmotionNet(widths={widths})", "seed": SEED,
        "init": str(args.init) if args.init else None, "lr": args.lr, "budget_min": args.budget_min,
        "params": sum(p.numel() for p in model.parameters()),
        "beyond_edge": args.beyond_edge, "scene_framed": args.scene_framed,
        "train_images": len(tr_x), "val_images": len(va_x), "val_parts": val_parts,
        **({"geometry_fitted": int(usable.sum())} if beyond else {}), "framed_found": int(found.sum()),
        **({"scene_framed_found": int(copies[1][1].sum())} if args.scene_framed else {}),
        "val_accuracy": float(val_ok.mean()),
        "val_accuracy_both_framings": float(val_ok[:ends[1]].mean()),  # the figure of the cycles before
        **val_by_part,
        "test_accuracy": float((test_pred == test.labels).mean()),
        "test_accuracy_app_framed": float((framed_logits.argmax(1) == test.labels[found_test]).mean()),
        "test_accuracy_own_framing_same_faces": float((test_pred[found_test] == test.labels[found_test]).mean()),
        **cal, "epochs": history, "train_wall_s": round(time.time() - t0, 1),
    }
    export(model, cal["temperature"], args.out,
           {"arch": "EmotionNet", "widths": args.widths, "labels": ",".join(EMOTIONS), "input": "gray 44x44 [-1,1]"})
    write_metrics(metrics, args.out, continued=args.init is not None)


if __name__ == "__main__":
    main()
