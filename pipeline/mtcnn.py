"""MTCNN's three stages on one picture, with facenet-pytorch's networks and weights, run faster.

Same algorithm as facenet-pytorch's `detect_face` (same networks, thresholds, NMS and box
regression; tests/test_detection.py compares the two), with these changes, measured in
benchmarks/latency.py:
- the image pyramid is resized from uint8 with antialiased bilinear interpolation, about 7x faster
  than the reference's float "area" resize, which took a third of the detection time;
- the networks run channels-last (max-pooling was half of their time in the reference layout);
- R-Net and O-Net run in chunks of 32 crops, padded to a few fixed sizes, so oneDNN's kernels and the
  activations stay cached;
- P-Net's 10-channel first layer and 6-channel heads run zero-padded to 16 channels (models/mtcnn_nets.py);
- it needs only torch and numpy (no torchvision import at start-up).
The P-Net pass (most of the cost) is kept in a `Pyramid`, with the R-Net and O-Net outputs of each
crop already run, so several threshold sets can be tried on one picture for little more than the
price of one (the mask check uses this).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch

from . import weights
from .models.mtcnn_nets import ONet, PNet, RNet, load_mtcnn_nets

PYRAMID_FACTOR = 0.709  # MTCNN's scale step between pyramid levels
SMALLEST_INPUT = 12  # P-Net's receptive field: the smallest level's shorter side
PNET_STRIDE = 2
NMS_BLOCK = 256  # rows of the overlap matrix computed at once
NET_CHUNK = 32  # crops per R-Net / O-Net run (see _run_padded)
PADDING_STEP = 8  # see padded_batch_size
# R-Net boxes overlapping a face already found by more than this skip O-Net in a later pass (Mtcnn.detect's
# `known`): O-Net would find that face again (the mask check's relaxed pass ran O-Net on 4 such boxes of a
# 640x480 frame's one face, 4-5 ms, only to drop its answers as duplicates).
KNOWN_FACE_IOU = 0.5


@dataclass(frozen=True)
class PyramidLevel:
    scale: float
    regression: np.ndarray  # (h, w, 4)
    face_probability: np.ndarray  # (h, w)


@dataclass(frozen=True)
class Pyramid:
    """P-Net's output over the image pyramid of one picture (threshold-independent)."""

    image: torch.Tensor  # (1, 3, H, W) uint8
    levels: tuple[PyramidLevel, ...]
    # R-Net / O-Net outputs per crop already run on this picture (see Mtcnn._run_on_crops)
    crop_outputs: dict = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class RawFaces:
    boxes: np.ndarray  # (N, 4) float32
    scores: np.ndarray  # (N,) float32
    landmarks: np.ndarray  # (N, 5, 2) float32


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float, mode: Literal["union", "min"] = "union") -> np.ndarray:
    """Greedy non-maximum suppression; indices kept, best score first. A box is dropped when its
    overlap with a kept one exceeds `threshold`. "union": intersection over union with areas
    (x2 - x1) * (y2 - y1), as torchvision's nms (the reference's stages 1 and 2); "min": intersection
    over the smaller box, pixel-inclusive (+1), as facenet-pytorch's numpy nms (its stage 3).

    Overlaps are computed a block of rows at a time, vectorised, so a picture with thousands of
    candidate windows costs a few numpy calls per block, not per kept box."""
    order = np.argsort(-scores, kind="stable")
    extra = 1.0 if mode == "min" else 0.0
    x1, y1, x2, y2 = (boxes[order, i].astype(np.float32) for i in range(4))
    areas = (x2 - x1 + extra) * (y2 - y1 + extra)
    suppressed = np.zeros(len(order), dtype=bool)
    keep = []
    for start in range(0, len(order), NMS_BLOCK):
        rows = np.arange(start, min(start + NMS_BLOCK, len(order)))
        rows = rows[~suppressed[rows]]
        if not rows.size:
            continue
        width = np.maximum(0.0, np.minimum(x2[rows, None], x2[None, start:]) - np.maximum(x1[rows, None], x1[None, start:]) + extra)
        height = np.maximum(0.0, np.minimum(y2[rows, None], y2[None, start:]) - np.maximum(y1[rows, None], y1[None, start:]) + extra)
        inter = width * height
        if mode == "min":
            overlap = inter / np.minimum(areas[rows, None], areas[None, start:])
        else:
            overlap = inter / (areas[rows, None] + areas[None, start:] - inter)
        too_close = overlap > threshold
        for row, hits in zip(rows.tolist(), too_close):
            if not suppressed[row]:
                keep.append(row)
                suppressed[start:] |= hits
    return order[np.array(keep, dtype=np.int64)]


def box_areas(boxes: np.ndarray) -> np.ndarray:
    """(N,) areas (x2 - x1) * (y2 - y1) of (x1, y1, x2, y2) boxes, an empty box's 0, in float64."""
    boxes = np.asarray(boxes, np.float64)
    return np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)


def box_intersections(boxes: np.ndarray, others: np.ndarray) -> np.ndarray:
    """(N, M) areas of the intersections of (x1, y1, x2, y2) boxes with others, in float64."""
    boxes, others = np.asarray(boxes, np.float64), np.asarray(others, np.float64)
    width = np.minimum(boxes[:, None, 2], others[None, :, 2]) - np.maximum(boxes[:, None, 0], others[None, :, 0])
    height = np.minimum(boxes[:, None, 3], others[None, :, 3]) - np.maximum(boxes[:, None, 1], others[None, :, 1])
    return np.clip(width, 0, None) * np.clip(height, 0, None)


def box_ious(boxes: np.ndarray, others: np.ndarray) -> np.ndarray:
    """(N, M) intersection over union of (x1, y1, x2, y2) boxes with others (0 where both are empty)."""
    inter = box_intersections(boxes, others)
    union = box_areas(boxes)[:, None] + box_areas(others)[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def squares(boxes: np.ndarray) -> np.ndarray:
    """Each box grown to a square around its centre with its longer side, as MTCNN feeds its stages
    (rerec); other columns kept."""
    out = boxes.copy()
    width, height = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = np.maximum(width, height)
    out[:, 0] = boxes[:, 0] + width * 0.5 - side * 0.5
    out[:, 1] = boxes[:, 1] + height * 0.5 - side * 0.5
    out[:, 2:4] = out[:, :2] + side[:, None]
    return out


def _regress(boxes: np.ndarray, regression: np.ndarray) -> np.ndarray:
    """Apply R-Net / O-Net box regression (MTCNN's bbreg, pixel-inclusive sizes); other columns kept."""
    out = boxes.copy()
    size = np.stack([boxes[:, 2] - boxes[:, 0] + 1, boxes[:, 3] - boxes[:, 1] + 1] * 2, axis=1)
    out[:, :4] = boxes[:, :4] + regression * size
    return out


def _normalise(pixels: torch.Tensor) -> torch.Tensor:
    return (pixels - 127.5) * 0.0078125


def _resize(pixels: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    # uint8 antialiased bilinear: close to the reference's area resize, and far faster on CPU.
    if pixels.device.type != "cpu":  # CUDA's antialiased resize takes floating-point pictures only
        pixels = pixels.float()
    return torch.nn.functional.interpolate(pixels, size=size, mode="bilinear", antialias=True, align_corners=False)


def padded_batch_size(count: int) -> int:
    """The batch size a chunk of `count` crops is zero-padded to: a power of two up to PADDING_STEP, then a
    multiple of it (1, 2, 4, 8, 16, 24, 32), so that oneDNN meets only a few batch sizes while a chunk of
    17-24 crops is not run as 32 (R-Net on a 640x480 frame's 23 candidates)."""
    if count <= PADDING_STEP:
        return 1 << max(count - 1, 0).bit_length()
    return -(-count // PADDING_STEP) * PADDING_STEP


def _run_padded(net: torch.nn.Module, batch: torch.Tensor) -> tuple[np.ndarray, ...]:
    """Run `net` on the batch in chunks of at most NET_CHUNK crops, the last one zero-padded
    (`padded_batch_size`): oneDNN rebuilds its kernels for every new batch size (2-4x the cost of the
    run), so a few fixed sizes keep them cached; and a chunk's activations stay in the CPU's cache (R-Net
    on 512 crops ran 1.25x faster in chunks of 32, O-Net on 64 crops 1.4x)."""
    parts = []
    for start in range(0, len(batch), NET_CHUNK):
        chunk = batch[start : start + NET_CHUNK]
        count = len(chunk)
        padded = padded_batch_size(count)
        if padded > count:
            chunk = torch.cat([chunk, chunk.new_zeros((padded - count, *chunk.shape[1:]))])
            chunk = chunk.contiguous(memory_format=torch.channels_last)
        parts.append(tuple(output[:count] for output in net(chunk)))
    return tuple(torch.cat(outputs).cpu().numpy() for outputs in zip(*parts))


def pyramid_scales(height: int, width: int, min_face_size: int) -> list[float]:
    """MTCNN's scales: the first maps `min_face_size` to P-Net's 12 px, then steps of 0.709."""
    scale = SMALLEST_INPUT / min_face_size
    shorter = min(height, width) * scale
    scales = []
    while shorter >= SMALLEST_INPUT:
        scales.append(scale)
        scale *= PYRAMID_FACTOR
        shorter *= PYRAMID_FACTOR
    return scales


def mtcnn_nets(device: torch.device | str = "cpu") -> tuple[PNet, RNet, ONet]:
    """P-, R- and O-Net with the weights facenet-pytorch ships, sha256-checked against weights/manifest.json."""
    return load_mtcnn_nets(tuple(weights.load_named(f"mtcnn-{net}") for net in ("pnet", "rnet", "onet")), device)


class Mtcnn:
    """MTCNN's three networks; stateless between calls, so thread-safe."""

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        # channels-last: 2-3x faster max-pooling on CPU (the reference layout spends half its time there)
        self.pnet, self.rnet, self.onet = (net.to(memory_format=torch.channels_last) for net in mtcnn_nets(device))

    def picture(self, image: np.ndarray) -> torch.Tensor:
        """An RGB uint8 (H, W, 3) array as the (1, 3, H, W) uint8 tensor the stages read."""
        return torch.from_numpy(np.array(image, copy=True)).to(self.device).permute(2, 0, 1)[None]

    @torch.inference_mode()
    def pyramid(self, image: np.ndarray, min_face_size: int) -> Pyramid:
        """Run P-Net over every pyramid level of an RGB uint8 (H, W, 3) picture."""
        pixels = self.picture(image)
        height, width = image.shape[:2]
        levels = []
        for scale in pyramid_scales(height, width, min_face_size):
            size = (int(height * scale + 1), int(width * scale + 1))
            level = _normalise(_resize(pixels, size).float()).contiguous(memory_format=torch.channels_last)
            regression, probability = self.pnet(level)
            levels.append(PyramidLevel(scale, regression[0].permute(1, 2, 0).cpu().numpy(), probability[0].cpu().numpy()))
        return Pyramid(image=pixels, levels=tuple(levels))

    @torch.inference_mode()
    def detect(self, pyramid: Pyramid, thresholds: tuple[float, float, float], known: np.ndarray | None = None) -> RawFaces:
        """Stages 1 (candidates from P-Net), 2 (R-Net) and 3 (O-Net, landmarks) with these thresholds. With
        `known` (N, 5) boxes and scores of faces already found, R-Net's boxes on one of them (IoU above
        KNOWN_FACE_IOU) skip O-Net: a later pass with lower thresholds then reports only faces away from an
        earlier pass's."""
        boxes = self._candidates(pyramid, thresholds[0])
        if len(boxes):
            boxes = self._refine_with_rnet(pyramid.image, boxes, thresholds[1], pyramid.crop_outputs)
        if len(boxes) and known is not None and len(known):
            boxes = boxes[box_ious(boxes, known[:, :4]).max(axis=1) <= KNOWN_FACE_IOU]
        if not len(boxes):
            return RawFaces(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32))
        return self._finish_with_onet(pyramid.image, boxes, thresholds[2], pyramid.crop_outputs, known)

    def _candidates(self, pyramid: Pyramid, threshold: float) -> np.ndarray:
        """(N, 5) squares x1, y1, x2, y2, score from P-Net's windows above `threshold`."""
        per_level = [np.zeros((0, 9), np.float32)]
        for level in pyramid.levels:
            ys, xs = np.nonzero(level.face_probability >= threshold)
            corner = np.stack([xs, ys], axis=1).astype(np.float32)
            found = np.concatenate([
                np.floor((PNET_STRIDE * corner + 1) / level.scale),
                np.floor((PNET_STRIDE * corner + SMALLEST_INPUT) / level.scale),
                level.face_probability[ys, xs, None],
                level.regression[ys, xs],
            ], axis=1).astype(np.float32)
            per_level.append(found[nms(found[:, :4], found[:, 4], 0.5)])
        boxes = np.concatenate(per_level)
        boxes = boxes[nms(boxes[:, :4], boxes[:, 4], 0.7)]
        size = np.stack([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]] * 2, axis=1)
        return squares(np.concatenate([boxes[:, :4] + boxes[:, 5:9] * size, boxes[:, 4:5]], axis=1))

    @staticmethod
    def _crops(pixels: torch.Tensor, boxes: np.ndarray, size: int, pad_outside: bool = False
               ) -> tuple[torch.Tensor, np.ndarray]:
        """The picture inside each box at size x size, and the indices of the boxes that had pixels
        inside the picture. A box reaching past the picture's edge is clipped to it and the rest
        stretched (facenet-pytorch's stages, which `detect` matches), or with `pad_outside` kept whole
        with black outside the picture (the original MTCNN's crops: the face keeps its proportions)."""
        height, width = pixels.shape[-2:]
        crops, kept = [], []
        for index, (x1, y1, x2, y2) in enumerate(np.trunc(boxes[:, :4]).astype(int).tolist()):
            # facenet-pytorch's 1-based inclusive box -> 0-based slice, clipped to the picture
            left, top, right, bottom = max(x1, 1) - 1, max(y1, 1) - 1, min(x2, width), min(y2, height)
            if right <= left or bottom <= top:
                continue
            region = pixels[..., top:bottom, left:right]
            if pad_outside and (left, top, right, bottom) != (x1 - 1, y1 - 1, x2, y2):
                whole = region.new_zeros((*region.shape[:2], y2 - y1 + 1, x2 - x1 + 1))
                whole[..., top - (y1 - 1):bottom - (y1 - 1), left - (x1 - 1):right - (x1 - 1)] = region
                region = whole
            crops.append(_resize(region, (size, size)))
            kept.append(index)
        if not crops:
            return torch.zeros(0, 3, size, size), np.zeros(0, dtype=np.int64)
        crops = _normalise(torch.cat(crops).float()).contiguous(memory_format=torch.channels_last)
        return crops, np.array(kept, dtype=np.int64)

    def _run_on_crops(self, net: torch.nn.Module, pixels: torch.Tensor, boxes: np.ndarray, size: int,
                      memo: dict | None = None, pad_outside: bool = False) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        """`net` on each box's crop at size x size: the indices of the boxes with pixels in the picture,
        and the net's outputs for those boxes. With `memo` (one per picture), a crop already run (same
        integer box and size, so the same pixels) is not run again: the mask check's low-threshold pass
        meets every candidate of the normal pass again."""
        memo = {} if memo is None else memo
        keys = [(size, pad_outside, *box) for box in np.trunc(boxes[:, :4]).astype(int).tolist()]
        todo = list(dict.fromkeys(key for key in keys if key not in memo))
        if todo:
            crops, kept = self._crops(pixels, np.array([key[2:] for key in todo], dtype=np.float32), size, pad_outside)
            outputs = _run_padded(net, crops) if len(kept) else ()
            memo.update(dict.fromkeys(todo))  # None: no pixel in the picture
            for row, index in enumerate(kept.tolist()):
                memo[todo[index]] = tuple(output[row] for output in outputs)
        kept = np.array([index for index, key in enumerate(keys) if memo[key] is not None], dtype=np.int64)
        if not len(kept):
            return kept, ()
        return kept, tuple(np.stack(column) for column in zip(*(memo[keys[index]] for index in kept)))

    def _refine_with_rnet(self, pixels: torch.Tensor, boxes: np.ndarray, threshold: float, memo: dict) -> np.ndarray:
        kept, outputs = self._run_on_crops(self.rnet, pixels, boxes, 24, memo)
        if not len(kept):
            return boxes[:0]
        regression, scores = outputs
        keep = scores > threshold
        boxes = np.concatenate([boxes[kept][keep, :4], scores[keep, None]], axis=1)
        pick = nms(boxes[:, :4], boxes[:, 4], 0.7)
        return squares(_regress(boxes[pick], regression[keep][pick]))

    @torch.inference_mode()
    def onet_at(self, pixels: torch.Tensor, boxes: np.ndarray, memo: dict | None = None,
                pad_outside: bool = False) -> RawFaces:
        """O-Net alone on each square box (N, 4), in order, without thresholds or NMS: regressed box,
        score and landmarks (score 0 where a box has no pixel in the picture). Stage 3 of `detect`,
        and, with `pad_outside` (see `_crops`), what a tracker needs to re-locate known faces."""
        kept, outputs = self._run_on_crops(self.onet, pixels, boxes, 48, memo, pad_outside)
        scores = np.zeros(len(boxes), np.float32)
        landmarks = np.zeros((len(boxes), 5, 2), np.float32)
        regression = np.zeros((len(boxes), 4), np.float32)
        if len(kept):
            regression[kept], points, scores[kept] = outputs
            width = boxes[kept, 2] - boxes[kept, 0] + 1
            height = boxes[kept, 3] - boxes[kept, 1] + 1
            landmarks[kept] = np.stack([width[:, None] * points[:, :5] + boxes[kept, :1] - 1,
                                        height[:, None] * points[:, 5:] + boxes[kept, 1:2] - 1], axis=2)
        return RawFaces(_regress(boxes[:, :4], regression).astype(np.float32), scores, landmarks)

    def _finish_with_onet(self, pixels: torch.Tensor, boxes: np.ndarray, threshold: float, memo: dict,
                          known: np.ndarray | None = None) -> RawFaces:
        found = self.onet_at(pixels, boxes, memo)
        keep = found.scores > threshold
        boxes, scores, landmarks = found.boxes[keep], found.scores[keep], found.landmarks[keep]
        if known is None or not len(known):
            pick = nms(boxes, scores, 0.7, "min")
        else:
            # The faces already found take part with their scores, as their own boxes did when O-Net ran on them
            # too: a box around one of them (a whole scene around a face) that scores lower is dropped, one that
            # scores higher (a whole close-up around a small box on its mask's pattern) is kept, as they were then.
            first = nms(np.concatenate([known[:, :4], boxes]), np.concatenate([known[:, 4], scores]), 0.7, "min")
            pick = first[first >= len(known)] - len(known)
        return RawFaces(boxes[pick], scores[pick], landmarks[pick])
