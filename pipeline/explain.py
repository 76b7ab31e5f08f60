"""Why?: what each tab's answer rests on. Off the default path: nothing here runs unless asked.

- Mask and emotion: a map per face for the verdict's class, mapped from the head's sub-crop back onto
  the 160x160 aligned crop. Mask: occlusion (5x5 blocks of the head's input covered with its mean, one
  batch); emotion: Grad-CAM on the head's last convolution (the last ReLU of ``net.features``). Chosen per
  head by benchmarks/explain.py (`map_method`): faithfulness (deletion test), the sanity check and time.
- Verify: occlusion of the similarity. A 4x4 grid of blocks of one face's 8x8 feature maps (after the
  embedder's repeat_2, FaceEmbedder.embed_covered; a block is about 32x32 px of the crop) is covered
  with the face's mean activation and the similarity to the other face recomputed; the map is how much
  it dropped. The stages before it run once per face, so both maps cost about 7 embeddings' worth, not
  the 52 of covering pixels (5x5), and they are more faithful than those (deletion test).
- Identify: each face's similarity to every enrolled person (top 10) beside the thresholds it was compared
  with, so "unknown" and "possible match" read as decisions.
- Emotion timeline: the largest face's 7 probabilities over the last 30 s of a live stream.

Maps are (160,160) float32 on the aligned crop; drawn with viridis (readable with colour-vision
deficiencies) and a legend. No visitor data is kept here: a timeline lives in the caller's session.
"""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFilter

from .alignment import ALIGNED_SIZE, LANDMARK_TEMPLATE_160, similarity_transform
from .device import model_call
from .embedding import covered_blocks
from .models.inception_resnet_v1 import CELLS_8_FIRST_CENTRE, CELLS_8_STRIDE
from .heads import (EMOTION_INPUT, FER_CROP, FER_SIZE, MASK_CROP, MASK_INPUT, MASK_LABELS, MASK_SOURCE, EmotionHead, MaskHead,
                    SubCrop, _Head)
from .overlay import _font, percent, similarity_text  # one font; never "100 %"; a similarity with three decimals, as everywhere

# ----------------------------------------------------------------------------------------------
# Results

VERIFY_GRID = 4  # 4x4 blocks of the 8x8 feature maps: 2x2 cells, 32 px of the crop each
HEAD_GRID = 5  # 5x5 blocks of a head's input
CHART_PEOPLE = 10
TIMELINE_SECONDS = 30.0


@dataclass(frozen=True)
class Saliency:
    """A head's map for one face: where the evidence for `explained` lies on the aligned crop."""

    map: np.ndarray = field(repr=False)  # (160,160) float32 >= 0, zero outside the head's view
    explained: str  # the class the map explains (the head's top class)
    probability: float
    runner_up: str
    runner_up_probability: float
    method: str = "grad-cam"  # or "occlusion" (map_method)
    view: SubCrop | None = None  # the part of the crop the head sees (the map is zero elsewhere)


@dataclass(frozen=True)
class VerifyMaps:
    """How much the similarity drops when each part of either face is covered."""

    similarity: float
    map_a: np.ndarray = field(repr=False)  # (160,160) float32, similarity drop (negative: covering raised it)
    map_b: np.ndarray = field(repr=False)
    embedding_a: np.ndarray = field(repr=False)  # (512,) unit vectors: their elementwise product sums to `similarity`
    embedding_b: np.ndarray = field(repr=False)
    grid: int = VERIFY_GRID


@dataclass(frozen=True)
class SimilarityChart:
    """One face's similarity to the enrolled people (best first, at most CHART_PEOPLE) and its thresholds."""

    people: list[tuple[str, float]]
    named: float  # a name at or above
    possible: float  # "possible match" at or above, below `named`
    operating_point: str
    decision: str  # the name, "possible match: NAME" or "unknown"


# ----------------------------------------------------------------------------------------------
# Mask and emotion: Grad-CAM


def view_box(head: _Head) -> SubCrop:
    """The part of the aligned crop the head's net sees (its sub-crop, then its centre crop)."""
    if isinstance(head, EmotionHead):
        return FER_CROP.inner(EMOTION_INPUT / FER_SIZE)
    return MASK_CROP.inner(MASK_INPUT / MASK_SOURCE)


def view_mask(head: _Head) -> np.ndarray:
    """(160,160) bool: the pixels the head sees (deletion tests choose pixels only among these)."""
    return box_mask(view_box(head))


def box_mask(box: SubCrop) -> np.ndarray:
    """(160,160) bool: the pixels of the aligned crop inside `box`."""
    x0, y0 = max(0, int(round(box.x0))), max(0, int(round(box.y0)))
    x1 = min(ALIGNED_SIZE, int(round(box.x0 + box.side)))
    y1 = min(ALIGNED_SIZE, int(round(box.y0 + box.side)))
    inside = np.zeros((ALIGNED_SIZE, ALIGNED_SIZE), bool)
    inside[y0:y1, x0:x1] = True
    return inside


def grad_cam(head: _Head, crops: np.ndarray, targets: Sequence[int] | None = None, net: torch.nn.Module | None = None,
             ) -> tuple[np.ndarray, np.ndarray]:
    """Raw Grad-CAM maps (N,160,160) on the aligned crops (signed: no ReLU yet, the sanity check needs the
    raw values) and the (N,K) logits. `targets`: class per face (default the top class); `net`: another net
    of the same shape (the randomised one of the sanity check)."""
    net = net or head.net
    x = head._inputs(crops)
    n = len(x)
    views = torch.cat([x, x.flip(-1)])  # the heads' flip TTA: explain both views they average
    with head._lock, model_call():
        with torch.no_grad():  # the trunk needs no gradient: only the last activation's
            activation = net.features[:-1](views)  # the last ReLU's output, before the final max-pool
        activation = activation.detach().requires_grad_(True)
        with torch.enable_grad():
            logits = net.classifier(net.features[-1](activation).mean((2, 3)))
            logits = (logits[:n] + logits[n:]) / 2
            chosen = logits.argmax(1) if targets is None else torch.as_tensor(list(targets))
            (gradient,) = torch.autograd.grad(logits[torch.arange(n), chosen].sum(), activation)
    cam = (gradient.mean((2, 3), keepdim=True) * activation).sum(1, keepdim=True).detach()  # (V,1,h,w)
    cam = cam[:n] + cam[n:].flip(-1)  # the mirror view's map, mirrored back
    return _onto_crop(cam, view_box(head)), logits.detach().numpy()


def _onto_crop(maps: torch.Tensor, box: SubCrop) -> np.ndarray:
    """(N,1,h,w) maps over a head's input -> (N,160,160) over the aligned crop (zero outside its box)."""
    side = int(round(box.side))
    up = F.interpolate(maps.float(), size=(side, side), mode="bilinear", align_corners=False)[:, 0].numpy()
    out = np.zeros((len(maps), ALIGNED_SIZE, ALIGNED_SIZE), np.float32)
    x0, y0 = int(round(box.x0)), int(round(box.y0))
    sx, sy = max(0, -x0), max(0, -y0)
    ex, ey = min(side, ALIGNED_SIZE - x0), min(side, ALIGNED_SIZE - y0)
    out[:, y0 + sy:y0 + ey, x0 + sx:x0 + ex] = up[:, sy:ey, sx:ex]
    return out


def verdict_probabilities(head: _Head, proba: np.ndarray) -> np.ndarray:
    """(N,K) head probabilities -> those of the classes a verdict can name: the mask head's "not a face" class
    only confirms boxes, so a mask verdict (and its map) is mask or no mask, given a face."""
    return MaskHead.verdicts(proba)[0] if isinstance(head, MaskHead) else proba


def explained_classes(head: _Head, crops: np.ndarray) -> np.ndarray:
    """The class each face's verdict names (the one its map explains)."""
    return verdict_probabilities(head, head.predict_proba(crops)).argmax(1)


def map_method(head: _Head) -> str:
    """How a head's maps are made, chosen by benchmarks/explain.py: occlusion for the mask head (its Grad-CAM
    maps kept their shape when the weights were randomised), Grad-CAM for emotion (occlusion is too slow
    there for a live demo: 25 covered copies through the larger net and its mirror view)."""
    return "occlusion" if isinstance(head, MaskHead) else "grad-cam"


def explain_head(head: _Head, crops: np.ndarray) -> list[Saliency]:
    """One map per head crop (`Face.crop_for_heads`), for the verdict's class, with the runner-up class named."""
    if len(crops) == 0:
        return []
    method = map_method(head)
    if method == "occlusion":  # its batch holds the uncovered inputs: their probabilities come with the maps
        raw, proba = occlusion_maps(head, crops)
    else:
        proba = verdict_probabilities(head, head.predict_proba(crops))
        raw, _ = grad_cam(head, crops, targets=proba.argmax(1))
    labels = MASK_LABELS if isinstance(head, MaskHead) else head.labels
    out = []
    for heat, p in zip(raw, proba):
        first, second = np.argsort(-p)[:2]
        out.append(Saliency(map=np.maximum(heat, 0), explained=labels[first], probability=float(p[first]),
                            runner_up=labels[second], runner_up_probability=float(p[second]), method=method,
                            view=view_box(head)))
    return out


def occlusion_maps(head: _Head, crops: np.ndarray, targets: Sequence[int] | None = None, grid: int = HEAD_GRID,
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Raw occlusion maps (N,160,160) on the aligned crops: how much the verdict's probability (of `targets`,
    default the top class) drops when one block of the head's input is covered with that input's mean,
    mapped back onto the crop (zero outside the head's view); and the (N,K) verdict probabilities of the
    uncovered crops, as the head gives them. The covered copies go through the head's main view alone: with its
    mirror view too, a mask map took 84 ms a face (benchmarks/explain.py; target 60)."""
    if len(crops) == 0:
        return (np.zeros((0, ALIGNED_SIZE, ALIGNED_SIZE), np.float32),
                verdict_probabilities(head, np.zeros((0, len(head.labels)), np.float32)))
    x = head._inputs(crops)
    n = len(x)
    served = verdict_probabilities(head, head.proba_from_inputs(x))
    chosen = served.argmax(1) if targets is None else np.asarray(targets)
    proba = verdict_probabilities(head, head.proba_from_inputs(covered_blocks(x, grid), mirrored=False))
    scores = proba.reshape(n, 1 + grid * grid, -1)[np.arange(n), :, chosen]  # (n, 1 + grid^2)
    drops = (scores[:, :1] - scores[:, 1:]).reshape(n, 1, grid, grid)
    return _onto_crop(torch.from_numpy(drops), view_box(head)), served


# ----------------------------------------------------------------------------------------------
# Verify: occlusion of the similarity


def verify_maps(embed_covered: Callable[[np.ndarray, int], np.ndarray], crop_a: np.ndarray, crop_b: np.ndarray,
                grid: int = VERIFY_GRID) -> VerifyMaps:
    """Occlusion maps of the similarity on both crops, from `FaceEmbedder.embed_covered`: how much the
    similarity drops when one block of a face's feature maps is covered, the other face left whole."""
    vectors = embed_covered(np.stack([crop_a, crop_b]), grid)  # (2, 1 + grid^2, 512)
    a, b = vectors[0, 0], vectors[1, 0]
    similarity = float(a @ b)
    drops = [similarity - vectors[0, 1:] @ b, similarity - vectors[1, 1:] @ a]
    maps = [cells_onto_crop(d.reshape(grid, grid)) for d in drops]
    return VerifyMaps(similarity=similarity, map_a=maps[0], map_b=maps[1], embedding_a=a, embedding_b=b, grid=grid)


def cells_onto_crop(values: np.ndarray) -> np.ndarray:
    """A (g,g) grid over the embedder's 8x8 feature maps -> (160,160) over the crop: bilinear over the
    pixels those cells are centred on (13..141), edge values beyond."""
    low = CELLS_8_FIRST_CENTRE - CELLS_8_STRIDE // 2
    side = 8 * CELLS_8_STRIDE
    inner = F.interpolate(torch.from_numpy(np.asarray(values, np.float32))[None, None], size=(side, side), mode="bilinear",
                          align_corners=False)[0, 0].numpy()
    return np.pad(inner, ((low, ALIGNED_SIZE - low - side),) * 2, mode="edge")


# ----------------------------------------------------------------------------------------------
# Deletion test (faithfulness): blur the most salient pixels, or as many random ones


def blur_pixels(crop: np.ndarray, chosen: np.ndarray, radius: float = 6.0) -> np.ndarray:
    """The crop with the `chosen` pixels (bool (160,160)) replaced by a Gaussian blur of the crop: the
    information there is removed without drawing a new edge the net could read."""
    blurred = np.asarray(Image.fromarray(crop).filter(ImageFilter.GaussianBlur(radius)))
    out = crop.copy()
    out[chosen] = blurred[chosen]
    return out


def top_pixels(heat: np.ndarray, share: float, inside: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
    """Bool (160,160): the `share` of the pixels in `inside` with the highest `heat` (random ones when `rng`
    is given instead of a map's order; ties broken at random either way)."""
    values = heat[inside].astype(np.float64)
    jitter = (rng or np.random.default_rng(0)).random(values.shape)
    order = np.argsort(-(jitter if rng is not None else values + 1e-9 * (values.std() + 1e-12) * jitter))
    count = int(round(share * values.size))
    flat = np.zeros(values.size, bool)
    flat[order[:count]] = True
    out = np.zeros(heat.shape, bool)
    out[inside] = flat
    return out


def rank_correlation(first: np.ndarray, second: np.ndarray) -> float:
    """Spearman's rank correlation of two maps' pixels (ties share their mean rank; 0 when either map is
    constant, which shares no structure with anything)."""
    if np.ptp(first) == 0 or np.ptp(second) == 0:
        return 0.0
    ranks = [_ranks(np.asarray(m, np.float64).ravel()) for m in (first, second)]
    return float(np.corrcoef(*ranks)[0, 1])


def _ranks(values: np.ndarray) -> np.ndarray:
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return ((ends - (counts - 1) / 2)[inverse]).astype(np.float64)


# ----------------------------------------------------------------------------------------------
# Identify: similarity to every enrolled person


def similarity_charts(identifications: Sequence) -> list[SimilarityChart]:
    """Charts from `pipeline.identity.identify_faces(..., k=CHART_PEOPLE)` results (candidates are one per
    person, best first; thresholds as the decision used them)."""
    charts = []
    for match in identifications:
        decision = match.name or (f"possible match: {match.possible}" if match.possible else "unknown")
        charts.append(SimilarityChart(people=[(c.name, float(c.similarity)) for c in match.candidates[:CHART_PEOPLE]],
                                      named=float(match.threshold), possible=float(match.possible_threshold),
                                      operating_point=match.operating_point, decision=decision))
    return charts


# ----------------------------------------------------------------------------------------------
# Live emotion timeline


@dataclass
class EmotionTimeline:
    """The largest face's probabilities per frame, kept for `seconds` (a visitor's session holds one)."""

    seconds: float = TIMELINE_SECONDS
    points: deque = field(default_factory=deque)  # (monotonic time, {emotion: probability})
    last_key: object = None

    def add(self, probabilities: dict[str, float], now: float | None = None, key: object = None) -> bool:
        """Add a point; with `key` (e.g. the frame's face), a point whose key was the last one added is
        skipped (a sampler that ticks faster than frames arrive adds each frame once). Whether it was added."""
        if key is not None and key == self.last_key:
            return False
        self.last_key = key
        now = time.monotonic() if now is None else now
        self.points.append((now, dict(probabilities)))
        while self.points and self.points[0][0] < now - self.seconds:
            self.points.popleft()
        return True

    def rows(self, now: float | None = None) -> list[tuple[float, str, float]]:
        """(seconds relative to now, <= 0; emotion; probability) per point and emotion: long format for a line plot."""
        now = time.monotonic() if now is None else now
        return [(round(t - now, 2), emotion, p) for t, probs in self.points for emotion, p in probs.items()]


# ----------------------------------------------------------------------------------------------
# Drawing (colour-blind-safe viridis; every map carries its legend)

# matplotlib's viridis at 17 evenly spaced points (matplotlib is not an app dependency).
VIRIDIS = np.array([(68, 1, 84), (72, 24, 106), (71, 45, 123), (66, 64, 134), (59, 82, 139), (51, 99, 141),
                    (44, 114, 142), (38, 130, 142), (33, 145, 140), (31, 160, 136), (40, 174, 128), (63, 188, 115),
                    (94, 201, 98), (132, 212, 75), (173, 220, 48), (216, 226, 25), (253, 231, 37)], np.float32)
# Okabe-Ito colours (distinguishable with every common colour-vision deficiency) for the charts.
OI_BLUE, OI_ORANGE, OI_VERMILLION, GREY, INK = (0, 114, 178), (230, 159, 0), (213, 94, 0), (150, 150, 150), (30, 30, 30)


def viridis(values: np.ndarray) -> np.ndarray:
    """Values in [0,1] -> uint8 RGB."""
    position = np.clip(values, 0, 1) * (len(VIRIDIS) - 1)
    low = np.floor(position).astype(int).clip(0, len(VIRIDIS) - 2)
    frac = (position - low)[..., None]
    return (VIRIDIS[low] * (1 - frac) + VIRIDIS[low + 1] * frac).round().astype(np.uint8)


def normalised(heat: np.ndarray) -> np.ndarray:
    """The positive part of a map over its maximum (all zero when nothing is positive)."""
    positive = np.maximum(heat, 0)
    top = float(positive.max())
    return positive / top if top > 0 else positive


def blend(picture: np.ndarray, heat01: np.ndarray, alpha: float = 0.55, region: np.ndarray | None = None) -> np.ndarray:
    """The picture in grey under the coloured map (grey, so that the map's colours are the only colours);
    outside `region` (bool), where nothing was explained, grey alone."""
    grey = picture.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    out = np.repeat(grey.round().astype(np.uint8)[..., None], 3, axis=2)
    inside = np.ones(grey.shape, bool) if region is None else region  # colour only where explained (cheap on a big picture)
    out[inside] = ((1 - alpha) * grey[inside][:, None] + alpha * viridis(heat01[inside])).round().astype(np.uint8)
    return out


MIN_OVERVIEW_SIDE = 240  # a small picture's map is enlarged (whole pixels, up to 8x) to at least this,
MAX_OVERVIEW_SIDE = 1600  # but never past this on its longer side (a 40x3000 strip stays as it is)
LEGEND_MIN_HEIGHT = 120  # room for both ends' words


def legend(height: int, low: str = "less", high: str = "more evidence", width: int = 150) -> np.ndarray:
    """A vertical colour bar with its two ends named."""
    out = Image.new("RGB", (width, height), (255, 255, 255))
    bar = viridis(np.linspace(1, 0, height - 20)[:, None].repeat(16, 1))
    out.paste(Image.fromarray(bar), (4, 10))
    draw = ImageDraw.Draw(out)
    draw.text((26, 8), high, fill=INK, font=_font(13))
    draw.text((26, height - 24), low, fill=INK, font=_font(13))
    return np.asarray(out)


def with_caption(picture: np.ndarray, lines: Sequence[str], size: int = 14) -> np.ndarray:
    """The picture with text lines under it."""
    height = picture.shape[0] + (size + 6) * len(lines) + 6
    out = Image.new("RGB", (max(picture.shape[1], 200), height), (255, 255, 255))
    out.paste(Image.fromarray(picture), (0, 0))
    draw = ImageDraw.Draw(out)
    for i, line in enumerate(lines):
        draw.text((4, picture.shape[0] + 4 + i * (size + 6)), line, fill=INK, font=_font(size))
    return np.asarray(out)


def row(pictures: Sequence[np.ndarray], gap: int = 8) -> np.ndarray:
    """Pictures side by side on white, top-aligned."""
    return np.ascontiguousarray(np.swapaxes(stack([np.swapaxes(p, 0, 1) for p in pictures], gap), 0, 1))


def _onto_picture(values: np.ndarray, landmarks: np.ndarray, shape: tuple[int, ...], resample) -> tuple[tuple[int, int], np.ndarray]:
    """A (160,160) array over a landmark-aligned crop (the heads' framing, pipeline.alignment) warped back onto
    the picture: (x0, y0) and the warped patch of the picture's box the crop covers."""
    forward = similarity_transform(np.asarray(landmarks, np.float64), LANDMARK_TEMPLATE_160)  # picture -> crop
    inverse = np.linalg.inv(np.vstack([forward, [0, 0, 1]]))[:2]  # crop -> picture
    corners = inverse @ np.array([[0, ALIGNED_SIZE, 0, ALIGNED_SIZE], [0, 0, ALIGNED_SIZE, ALIGNED_SIZE], [1, 1, 1, 1]])
    x0, y0 = np.floor(corners.min(1)).astype(int).clip(0, None)
    x1, y1 = np.minimum(np.ceil(corners.max(1)).astype(int), (shape[1], shape[0]))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return (0, 0), np.zeros((0, 0), values.dtype)
    shifted = forward @ np.array([[1, 0, x0], [0, 1, y0], [0, 0, 1]], np.float64)  # patch pixel -> crop pixel
    image = Image.fromarray(values.astype(np.float32), mode="F")
    patch = image.transform((x1 - x0, y1 - y0), Image.AFFINE, shifted.flatten().tolist(), resample=resample)
    return (x0, y0), np.asarray(patch)


def maps_on_picture(picture: np.ndarray, landmarks: Sequence[np.ndarray], maps01: Sequence[np.ndarray],
                    views: Sequence[SubCrop | None] | None = None) -> np.ndarray:
    """The picture in grey with each face's map where its head crop came from (warped back through the
    landmark alignment; with `views`, only the part the head saw), and a legend at the right."""
    heat = np.zeros(picture.shape[:2], np.float32)
    region = np.zeros(picture.shape[:2], bool)
    for points, map01, view in zip(landmarks, maps01, views or [None] * len(landmarks)):
        seen = box_mask(view) if view is not None else np.ones((ALIGNED_SIZE, ALIGNED_SIZE), bool)
        (x0, y0), warped = _onto_picture(map01, points, picture.shape, Image.BILINEAR)
        if warped.size == 0:
            continue
        _, inside = _onto_picture(seen.astype(np.float32), points, picture.shape, Image.NEAREST)
        h, w = warped.shape
        heat[y0:y0 + h, x0:x0 + w] = np.maximum(heat[y0:y0 + h, x0:x0 + w], warped)
        region[y0:y0 + h, x0:x0 + w] |= inside > 0.5
    shown = blend(picture, heat, alpha=0.5, region=region)
    shorter = min(shown.shape[:2])
    if shorter < MIN_OVERVIEW_SIDE:  # a thumbnail-sized picture (a 36x36 face) drew a 36-px map, its legend's words overlapping
        factor = max(1, min(-(-MIN_OVERVIEW_SIDE // shorter), 8, MAX_OVERVIEW_SIDE // max(shown.shape[:2])))
        shown = np.asarray(Image.fromarray(shown).resize((shown.shape[1] * factor, shown.shape[0] * factor), Image.NEAREST))
    return row([shown, legend(max(min(shown.shape[0], 320), LEGEND_MIN_HEIGHT))])


def saliency_panel(crop: np.ndarray, saliency: Saliency, number: int,
                   word: Callable[[str], str] = lambda label: label.replace("_", " ")) -> np.ndarray:
    """One face: its aligned crop, the map over it, and what it explains."""
    region = box_mask(saliency.view) if saliency.view is not None else None
    top = row([crop, blend(crop, normalised(saliency.map), region=region), legend(ALIGNED_SIZE, width=120)])
    return with_caption(top, [f"face {number}: map of {word(saliency.explained)} ({percent(saliency.probability)})",
                              f"runner-up: {word(saliency.runner_up)} ({percent(saliency.runner_up_probability)})"])


def verify_panel(crop_a: np.ndarray, crop_b: np.ndarray, maps: VerifyMaps) -> np.ndarray:
    """Both crops with their occlusion maps, on one scale (the larger drop of the two is the top colour)."""
    top = max(float(np.maximum(maps.map_a, 0).max()), float(np.maximum(maps.map_b, 0).max()), 1e-6)
    tiles = [blend(crop, np.maximum(m, 0) / top) for crop, m in ((crop_a, maps.map_a), (crop_b, maps.map_b))]
    body = row([crop_a, tiles[0], tiles[1], crop_b, legend(ALIGNED_SIZE, "no drop", f"drop {top:.2f}", width=130)])
    return with_caption(body, [f"similarity {similarity_text(maps.similarity)}; colour: how much it drops when the network's "
                               f"view of that part is covered ({maps.grid}x{maps.grid} blocks)"])


def barcodes(maps: VerifyMaps, width: int = 640) -> np.ndarray:
    """The two embeddings and their elementwise product as 512-column barcodes (viridis over each row's
    range, centre = 0), and the product's running sum, which ends at the similarity."""
    a, b = maps.embedding_a, maps.embedding_b
    product = a * b
    rows_ = [("first", a), ("second", b), ("product", product)]  # the photos as Verify's inputs name them
    left, bar_h, gap = 70, 28, 22
    chart_h = 90
    height = len(rows_) * (bar_h + gap) + chart_h + 40
    out = Image.new("RGB", (left + width + 10, height), (255, 255, 255))
    draw = ImageDraw.Draw(out)
    font = _font(13)
    for i, (name, values) in enumerate(rows_):
        scale = float(np.abs(values).max()) or 1.0
        colours = viridis((values / scale + 1) / 2)  # centre of the colour bar = 0
        strip = np.repeat(np.repeat(colours[None], bar_h, 0), 1, 1)
        strip = np.asarray(Image.fromarray(strip).resize((width, bar_h), Image.NEAREST))
        y = 10 + i * (bar_h + gap)
        out.paste(Image.fromarray(strip), (left, y))
        draw.text((4, y + 6), name, fill=INK, font=font)
        draw.text((left, y + bar_h + 2), f"dark {-scale:+.2f} ... 0 ... {scale:+.2f} light", fill=INK, font=_font(13))
    running = np.cumsum(product)
    y0 = 10 + len(rows_) * (bar_h + gap)
    low, high = min(0.0, float(running.min())), max(0.05, float(running.max()))
    ys = y0 + chart_h - (running - low) / (high - low) * chart_h
    xs = left + np.arange(len(running)) * width / (len(running) - 1)
    draw.line((left, y0 + chart_h - (0 - low) / (high - low) * chart_h, left + width, y0 + chart_h - (0 - low) / (high - low) * chart_h), fill=GREY)
    draw.line(list(zip(xs.tolist(), ys.tolist())), fill=OI_BLUE, width=2)
    draw.text((4, y0 + chart_h / 2 - 8), "sum", fill=INK, font=font)
    draw.text((left, y0 + chart_h + 8), "running sum of the product over the 512 numbers: ends at "
                                        f"{similarity_text(running[-1])} "
                                        f"= the cosine similarity", fill=INK, font=font)
    return np.asarray(out)


GLYPH_PAD = 3  # pixels each side of a glyph's advance for strokes that overhang it


@lru_cache(maxsize=1024)
def _glyph(char: str, size: int) -> tuple[np.ndarray, int]:
    """One character as an "L" array one line high (with room for overhangs), and its advance. Text is
    most of a chart's cost, so glyphs are drawn once; only single characters are cached (process-wide),
    never a whole label, so a visitor's names leave nothing behind."""
    font = _font(size)
    advance = int(round(font.getlength(char)))
    mask = Image.new("L", (advance + 2 * GLYPH_PAD, size + size // 2 + 2))
    ImageDraw.Draw(mask).text((GLYPH_PAD, 0), char, fill=255, font=font)
    return np.asarray(mask), advance


def _text_mask(text: str, size: int) -> Image.Image:
    """`text` as an "L" mask, assembled from cached glyphs (no kerning: a chart's labels do not need it)."""
    glyphs = [_glyph(char, size) for char in text]
    height = glyphs[0][0].shape[0] if glyphs else 1
    out = np.zeros((height, sum(advance for _, advance in glyphs) + 2 * GLYPH_PAD), np.uint8)
    x = 0
    for mask, advance in glyphs:
        np.maximum(out[:, x:x + mask.shape[1]], mask, out=out[:, x:x + mask.shape[1]])
        x += advance
    return Image.fromarray(out)


def _label(picture: Image.Image, x: float, y: float, text: str, size: int = 13, colour=INK, centre: bool = False) -> None:
    """`text` at (x, y) (its centre at x with `centre`)."""
    mask = _text_mask(text, size)
    left = x - mask.width // 2 if centre else x - GLYPH_PAD  # the mask starts GLYPH_PAD before the first glyph
    picture.paste(colour, (int(left), int(y)), mask)


def similarity_chart_picture(chart: SimilarityChart, number: int, width: int = 560) -> np.ndarray:
    """Horizontal bars (similarity per enrolled person, best first) with the two thresholds as lines: a bar
    reaching the solid line is named, the dashed line a possible match, below it unknown. Bars start at 0 (a
    negative similarity goes left of it) on a labelled axis: drawn from the scale's left end, 0.01 looked a
    third of 0.42 and -0.16 looked positive. Colours are Okabe-Ito's (blue named, orange possible match, grey
    below), and the lines are labelled."""
    people = chart.people or [("(no one enrolled)", float("nan"))]
    left, right, bar_h, top_pad = 170, 20, 20, 34
    bottom = top_pad + len(people) * (bar_h + 6)
    out = Image.new("RGB", (width, bottom + 58), (255, 255, 255))
    draw = ImageDraw.Draw(out)
    low, high = -0.2, 1.0
    x_of = lambda v: left + (width - left - right) * (min(max(v, low), high) - low) / (high - low)  # noqa: E731
    _label(out, 4, 8, f"face {number}: {chart.decision} ({chart.operating_point} operating point)")
    draw.line((x_of(0), top_pad - 6, x_of(0), bottom), fill=GREY, width=1)  # where the bars start
    draw.line((x_of(low), bottom, x_of(high), bottom), fill=INK, width=1)
    for tick in (-0.2, 0.0, 0.2, 0.4, 0.6, 0.8, 1.0):
        draw.line((x_of(tick), bottom, x_of(tick), bottom + 4), fill=INK, width=1)
        _label(out, x_of(tick), bottom + 5, f"{tick:g}", 11, centre=True)
    for i, (name, similarity) in enumerate(people):
        y = top_pad + i * (bar_h + 6)
        _label(out, 4, y + 4, name if len(name) <= 22 else name[:21] + "...")
        if similarity != similarity:
            continue
        colour = OI_BLUE if similarity >= chart.named else OI_ORANGE if similarity >= chart.possible else GREY
        start, end = sorted((x_of(0), x_of(similarity)))
        draw.rectangle((start, y, max(end, start + 1), y + bar_h), fill=colour)
        _label(out, max(x_of(0), x_of(similarity)) + 3, y + 4, similarity_text(similarity))
    for value, text, dashed in ((chart.named, "name", False), (chart.possible, "possible match", True)):
        x = x_of(value)
        _line(draw, (x, top_pad - 6), (x, bottom), dashed)
        # Each line's label starts with a piece of that line, so which is solid and which dashed needs no legend.
        label, y = f"{text} >= {similarity_text(value)}", bottom + 22 + (16 if dashed else 0)
        text_left = x - _text_mask(label, 12).width // 2
        _line(draw, (text_left - 26, y + 7), (text_left - 4, y + 7), dashed)
        _label(out, x, y, label, 12, centre=True)
    return np.asarray(out)


def _line(draw: ImageDraw.ImageDraw, start: tuple[float, float], end: tuple[float, float], dashed: bool) -> None:
    """A line from `start` to `end` (x, y), 2 px wide: solid, or dashed 4 px on, 4 px off."""
    (x0, y0), (x1, y1) = start, end
    length = max(float(np.hypot(x1 - x0, y1 - y0)), 1e-6)
    pieces = [(a, min(a + 4.0, length)) for a in np.arange(0.0, length, 8.0)] if dashed else [(0.0, length)]
    for a, b in pieces:
        draw.line((x0 + (x1 - x0) * a / length, y0 + (y1 - y0) * a / length,
                   x0 + (x1 - x0) * b / length, y0 + (y1 - y0) * b / length), fill=INK, width=2)


def stack(pictures: Sequence[np.ndarray], gap: int = 10) -> np.ndarray:
    """Pictures one above the other on white, left-aligned."""
    width = max(p.shape[1] for p in pictures)
    height = sum(p.shape[0] for p in pictures) + gap * (len(pictures) - 1)
    out = np.full((height, width, 3), 255, np.uint8)
    y = 0
    for p in pictures:
        out[y:y + p.shape[0], :p.shape[1]] = p
        y += p.shape[0] + gap
    return out
