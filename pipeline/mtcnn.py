"""MTCNN's three stages on one picture, with facenet-pytorch's networks and weights, run faster.

Same algorithm as facenet-pytorch's `detect_face` (same networks, thresholds, NMS and box
regression), with three changes measured in benchmarks/latency.py:
- the image pyramid is resized from uint8 with antialiased bilinear interpolation, about 7x faster
  than the reference's float "area" resize, which took a third of the detection time;
- P-Net runs channels-last;
- the R-Net and O-Net crops are resized the same way.
The P-Net pass (most of the cost) is kept in a `Pyramid`, so several threshold sets can be tried
on one picture for the price of one (the mask check uses this).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from facenet_pytorch.models.utils.detect_face import batched_nms_numpy, bbreg, generateBoundingBox, rerec
from torchvision.ops import batched_nms

PYRAMID_FACTOR = 0.709  # MTCNN's scale step between pyramid levels
SMALLEST_INPUT = 12  # P-Net's receptive field: the smallest level's shorter side


@dataclass(frozen=True)
class PyramidLevel:
    scale: float
    regression: torch.Tensor  # (1, 4, h, w)
    face_probability: torch.Tensor  # (1, h, w)


@dataclass(frozen=True)
class Pyramid:
    """P-Net's output over the image pyramid of one picture (threshold-independent)."""

    image: torch.Tensor  # (1, 3, H, W) uint8
    levels: tuple[PyramidLevel, ...]


@dataclass(frozen=True)
class RawFaces:
    boxes: np.ndarray  # (N, 4) float32
    scores: np.ndarray  # (N,) float32
    landmarks: np.ndarray  # (N, 5, 2) float32


def _normalise(pixels: torch.Tensor) -> torch.Tensor:
    return (pixels - 127.5) * 0.0078125


def _resize(pixels: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    # uint8 antialiased bilinear: close to the reference's area resize, and far faster on CPU.
    return torch.nn.functional.interpolate(pixels, size=size, mode="bilinear", antialias=True, align_corners=False)


def _run_padded(net: torch.nn.Module, batch: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Run `net` on the batch zero-padded to a power-of-two size: oneDNN rebuilds its kernels for
    every new batch size (2-4x the cost of the run), so a few fixed sizes keep them cached."""
    count = len(batch)
    padded = 1 << max(count - 1, 0).bit_length()
    if padded > count:
        batch = torch.cat([batch, batch.new_zeros((padded - count, *batch.shape[1:]))])
        batch = batch.contiguous(memory_format=torch.channels_last)
    return tuple(output[:count] for output in net(batch))


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


class Mtcnn:
    """The three networks of a facenet-pytorch `MTCNN`; stateless between calls, so thread-safe."""

    def __init__(self, pnet: torch.nn.Module, rnet: torch.nn.Module, onet: torch.nn.Module,
                 device: torch.device) -> None:
        # channels-last: 2-3x faster max-pooling on CPU (the reference layout spends half its time there)
        self.pnet, self.rnet, self.onet = (net.eval().to(memory_format=torch.channels_last) for net in (pnet, rnet, onet))
        self.device = device

    @torch.inference_mode()
    def pyramid(self, image: np.ndarray, min_face_size: int) -> Pyramid:
        """Run P-Net over every pyramid level of an RGB uint8 (H, W, 3) picture."""
        pixels = torch.from_numpy(np.array(image, copy=True)).to(self.device).permute(2, 0, 1)[None]
        height, width = image.shape[:2]
        levels = []
        for scale in pyramid_scales(height, width, min_face_size):
            size = (int(height * scale + 1), int(width * scale + 1))
            level = _normalise(_resize(pixels, size).float()).contiguous(memory_format=torch.channels_last)
            regression, probabilities = self.pnet(level)
            levels.append(PyramidLevel(scale, regression, probabilities[:, 1]))
        return Pyramid(image=pixels, levels=tuple(levels))

    @torch.inference_mode()
    def detect(self, pyramid: Pyramid, thresholds: tuple[float, float, float]) -> RawFaces:
        """Stages 1 (candidates from P-Net), 2 (R-Net) and 3 (O-Net, landmarks) with these thresholds."""
        boxes = self._candidates(pyramid, thresholds[0])
        if len(boxes):
            boxes = self._refine_with_rnet(pyramid.image, boxes, thresholds[1])
        if not len(boxes):
            return RawFaces(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32))
        return self._finish_with_onet(pyramid.image, boxes, thresholds[2])

    def _candidates(self, pyramid: Pyramid, threshold: float) -> torch.Tensor:
        per_level = [torch.zeros(0, 9)]
        for level in pyramid.levels:
            found, image_index = generateBoundingBox(level.regression, level.face_probability, level.scale, threshold)
            keep = batched_nms(found[:, :4], found[:, 4], image_index, 0.5)
            per_level.append(found[keep])
        boxes = torch.cat(per_level)
        boxes = boxes[batched_nms(boxes[:, :4], boxes[:, 4], torch.zeros(len(boxes), dtype=torch.int64), 0.7)]
        width, height = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        shifted = torch.stack([boxes[:, 0] + boxes[:, 5] * width, boxes[:, 1] + boxes[:, 6] * height,
                               boxes[:, 2] + boxes[:, 7] * width, boxes[:, 3] + boxes[:, 8] * height, boxes[:, 4]], 1)
        return rerec(shifted)

    @staticmethod
    def _crops(pixels: torch.Tensor, boxes: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The picture inside each box (clipped to the picture, as facenet-pytorch does) at size x size.
        Returns the crops and the boxes that had pixels inside the picture."""
        height, width = pixels.shape[-2:]
        crops, kept = [], []
        for index, (x1, y1, x2, y2) in enumerate(boxes[:, :4].trunc().int().tolist()):
            # facenet-pytorch's 1-based inclusive box -> 0-based slice, clipped to the picture
            left, top, right, bottom = max(x1, 1) - 1, max(y1, 1) - 1, min(x2, width), min(y2, height)
            if right > left and bottom > top:
                region = pixels[..., top:bottom, left:right]
                crops.append(_resize(region, (size, size)))
                kept.append(index)
        if not crops:
            return torch.zeros(0, 3, size, size), boxes[:0]
        crops = _normalise(torch.cat(crops).float()).contiguous(memory_format=torch.channels_last)
        return crops, boxes[kept]

    def _refine_with_rnet(self, image: torch.Tensor, boxes: torch.Tensor, threshold: float) -> torch.Tensor:
        crops, boxes = self._crops(image, boxes, 24)
        regression, probabilities = _run_padded(self.rnet, crops)
        scores = probabilities[:, 1]
        keep = scores > threshold
        boxes = torch.cat((boxes[keep, :4], scores[keep, None]), 1)
        regression = regression[keep]
        pick = batched_nms(boxes[:, :4], boxes[:, 4], torch.zeros(len(boxes), dtype=torch.int64), 0.7)
        return rerec(bbreg(boxes[pick], regression[pick]))

    def _finish_with_onet(self, image: torch.Tensor, boxes: torch.Tensor, threshold: float) -> RawFaces:
        crops, boxes = self._crops(image, boxes, 48)
        regression, points, probabilities = _run_padded(self.onet, crops)
        scores = probabilities[:, 1]
        keep = scores > threshold
        boxes, points, regression = torch.cat((boxes[keep, :4], scores[keep, None]), 1), points[keep], regression[keep]
        width, height = boxes[:, 2] - boxes[:, 0] + 1, boxes[:, 3] - boxes[:, 1] + 1
        landmarks = torch.stack((width[:, None] * points[:, :5] + boxes[:, :1] - 1,
                                 height[:, None] * points[:, 5:] + boxes[:, 1:2] - 1), dim=2)
        boxes = bbreg(boxes, regression)
        pick = batched_nms_numpy(boxes[:, :4], boxes[:, 4], torch.zeros(len(boxes), dtype=torch.int64), 0.7, "Min")
        boxes, landmarks = boxes[pick].cpu().numpy(), landmarks[pick].cpu().numpy()
        return RawFaces(boxes[:, :4].astype(np.float32), boxes[:, 4].astype(np.float32), landmarks.astype(np.float32))
