"""Metrics and helpers shared by the head benchmarks (benchmarks/emotion.py, benchmarks/mask.py)."""
from __future__ import annotations

import time
from typing import Callable, Sequence

import numpy as np
from PIL import Image


def classification_report(y: np.ndarray, pred: np.ndarray, labels: Sequence[str]) -> dict:
    """Accuracy, macro-F1, per-class recall/precision and the confusion matrix (rows = truth)."""
    k = len(labels)
    cm = np.bincount(y * k + pred, minlength=k * k).reshape(k, k)
    tp = np.diag(cm).astype(float)
    recall = tp / np.maximum(cm.sum(1), 1)
    precision = tp / np.maximum(cm.sum(0), 1)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    return {"accuracy": float(tp.sum() / cm.sum()), "macro_f1": float(f1.mean()),
            "per_class_recall": {l: round(float(r), 4) for l, r in zip(labels, recall)},
            "per_class_precision": {l: round(float(p), 4) for l, p in zip(labels, precision)},
            "confusion_matrix": cm.tolist(), "n": int(cm.sum())}


def ms_per_face(fn: Callable[[np.ndarray], object], crops: np.ndarray, repeats: int = 9) -> tuple[float, float]:
    """Warm wall time per face of ``fn(crops)``: (median, best) over repeats after two warm-up calls.
    On a shared CPU the best run is the closer estimate of the cost on an idle one."""
    fn(crops)
    fn(crops)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn(crops)
        times.append(time.perf_counter() - t)
    return float(np.median(times) / len(crops) * 1000), float(np.min(times) / len(crops) * 1000)


def paste_on_canvas(face: Image.Image, background: Image.Image, rng: np.random.Generator | None = None,
                    face_side: int = 160, canvas: int = 480, *, spot: tuple[int, int, int, int] | None = None
                    ) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A 'scene': the face picture resized to ``face_side`` px and pasted at a random spot (``rng``)
    of a ``canvas``-px crop of a real face-free photo, or at ``spot`` (crop x, crop y, face x, face y; the
    face wholly on the canvas). Returns (RGB uint8, pasted box x1,y1,x2,y2)."""
    bg = background.convert("RGB")
    scale = canvas / min(bg.size)
    bg = bg.resize((max(canvas, round(bg.width * scale)), max(canvas, round(bg.height * scale))), Image.BILINEAR)
    if spot is None:
        if rng is None:
            raise ValueError("paste_on_canvas needs an rng for a random spot, or a spot")
        bx, by = rng.integers(0, bg.width - canvas + 1), rng.integers(0, bg.height - canvas + 1)
        x, y = rng.integers(0, canvas - face_side + 1, size=2)
    else:
        bx, by, x, y = spot
        if not (0 <= bx <= bg.width - canvas and 0 <= by <= bg.height - canvas
                and 0 <= x <= canvas - face_side and 0 <= y <= canvas - face_side):
            raise ValueError(f"spot {spot} puts the canvas or the face off the picture")
    scene = bg.crop((int(bx), int(by), int(bx) + canvas, int(by) + canvas))
    scene.paste(face.convert("RGB").resize((face_side, face_side), Image.BICUBIC), (int(x), int(y)))
    return np.asarray(scene), (int(x), int(y), int(x) + face_side, int(y) + face_side)


def hits_box(det_box: np.ndarray, target: tuple[int, int, int, int]) -> bool:
    """A detection counts for the pasted face when its centre is inside the pasted picture and its
    size is plausible for a face in it (so a whole-canvas box does not count)."""
    cx, cy = (det_box[0] + det_box[2]) / 2, (det_box[1] + det_box[3]) / 2
    side = target[2] - target[0]
    w = det_box[2] - det_box[0]
    return target[0] <= cx <= target[2] and target[1] <= cy <= target[3] and 0.2 * side <= w <= 1.3 * side


def plot_confusion(cm: np.ndarray, labels: Sequence[str], title: str, path: str) -> None:
    """Row-normalised confusion matrix as a PNG (matplotlib from requirements-dev.txt)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(cm, float)
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1.1 * len(labels) + 2, 1.0 * len(labels) + 1.5))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, f"{norm[i, j]:.2f}\n{int(cm[i, j])}", ha="center", va="center", fontsize=7,
                    color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
