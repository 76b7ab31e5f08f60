"""Face Lab's own classification heads: face mask and facial emotion.

Every head takes the pipeline's shared aligned crop, (N,160,160,3) RGB uint8 from
`pipeline.alignment.align_faces`, and does its own sub-crop, resize, grayscale and
normalisation here, so that what a head sees at serve time matches the tightness of
the images it was trained on (see the per-head ``*_CROP`` constants).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Union

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .alignment import ALIGNED_SIZE
from .device import model_call
from .models.folding import fold_batch_norms

EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
MASK_LABELS: tuple[str, ...] = ("mask", "no_mask")
# The mask head's optional third class: a box that is not a face (shirts, walls, hands the relaxed
# detector passes box). Never a verdict; it lowers MaskPrediction.face_probability.
NOT_A_FACE = "not_a_face"

# Emotion: FER2013 images are 48x48 gray; the net sees the central 44x44 (train: random 44 crops).
FER_SIZE = 48
EMOTION_INPUT = 44
# Mask: training images are resized to 72x72 and the net sees the central 64x64.
MASK_SOURCE = 72
MASK_INPUT = 64


@dataclass(frozen=True)
class SubCrop:
    """Square box (x0, y0, side), in pixels of the 160x160 aligned crop, that frames a face the way
    a head's training images do. Measured by ``python -m training.crop_geometry``: mean MTCNN
    landmarks of each training set mapped onto the pipeline's landmark template."""

    x0: float
    y0: float
    side: float

    def inner(self, fraction: float) -> "SubCrop":
        """The centred box covering ``fraction`` of the side (the centre crop the net sees)."""
        pad = self.side * (1 - fraction) / 2
        return SubCrop(self.x0 + pad, self.y0 + pad, self.side * fraction)


# training.crop_geometry: FER2013 (141 faces) -> (13.4, 8.3, 137.4); mask set without_mask (80)
# -> (12.5, 10.3, 134.7), with_mask (76, landmarks less reliable under a mask) -> (4.0, 6.2, 149.5);
# the mask head uses the mean of its two classes (its training also varies scale by 0.8-1.25).
FER_CROP = SubCrop(13.4, 8.3, 137.4)
MASK_CROP = SubCrop(8.3, 8.3, 142.1)


def _conv_bn(i: int, o: int) -> list[nn.Module]:
    return [nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True)]


class _VGGNet(nn.Module):
    """Compact VGG-style CNN: stages of two 3x3 conv+BN+ReLU, each followed by 2x2 max-pool,
    then global average pooling and a linear classifier. Small enough for a few ms per face on a CPU."""

    def __init__(self, in_channels: int, num_classes: int, widths: tuple[int, ...], dropout: float) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = in_channels
        for w in widths:
            layers += _conv_bn(c, w) + _conv_bn(w, w) + [nn.MaxPool2d(2)]
            c = w
        self.features = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x).mean((2, 3))
        return self.classifier(self.dropout(x))


class EmotionNet(_VGGNet):
    """Input (N,1,44,44) gray in [-1,1]; output logits over EMOTIONS."""

    def __init__(self, widths: tuple[int, ...] = (24, 48, 96, 192), dropout: float = 0.3) -> None:
        super().__init__(1, len(EMOTIONS), widths, dropout)


class MaskNet(_VGGNet):
    """Input (N,3,64,64) RGB in [-1,1]; output logits over MASK_LABELS (and NOT_A_FACE with 3 classes)."""

    def __init__(self, widths: tuple[int, ...] = (16, 32, 64, 128), dropout: float = 0.3,
                 num_classes: int = len(MASK_LABELS)) -> None:
        super().__init__(3, num_classes, widths, dropout)


Weights = Union[str, Path, Mapping[str, torch.Tensor]]


@dataclass(frozen=True)
class EmotionPrediction:
    """Calibrated probabilities over EMOTIONS (sum to 1) and the most likely emotion. ``mouth_covered``:
    the mask head calls the face masked, so the expression was read from the eyes alone (the head was
    trained on uncovered faces); None when it was not checked."""

    probabilities: dict[str, float]
    top: str
    mouth_covered: bool | None = None

    @property
    def confidence(self) -> float:
        return self.probabilities[self.top]


# A mask verdict under this probability is not sure (shown as a question): the head is calibrated and has
# two classes, so it never says less than 0.5, and under 0.8 at least one such verdict in five is wrong.
MASK_SURE = 0.8


@dataclass(frozen=True)
class MaskPrediction:
    """``label`` is "mask" or "no_mask"; ``mask_probability`` is the calibrated P(mask) given that the box
    is a face; ``face_probability`` is P(the box is a face at all), 1.0 from a two-class head."""

    label: str
    mask_probability: float
    face_probability: float = 1.0

    @property
    def probability(self) -> float:
        """Probability of ``label``."""
        return self.mask_probability if self.label == "mask" else 1.0 - self.mask_probability

    @property
    def surely_masked(self) -> bool:
        """A "mask" verdict at MASK_SURE or more: an emotion read on this face comes from the eyes alone."""
        return self.label == "mask" and self.mask_probability >= MASK_SURE


def cut_and_resize(crops: np.ndarray, box: SubCrop, size: int, gray: bool) -> torch.Tensor:
    """(N,160,160,3) uint8 aligned crops -> (N,C,size,size) float in [-1,1]: the head's sub-crop.

    Boxes reaching outside the aligned crop are edge-padded; downscaling is antialiased so the result
    looks like the small training images (FER is 48 px), not like an aliased subsample."""
    if crops.ndim != 4 or crops.shape[1:] != (ALIGNED_SIZE, ALIGNED_SIZE, 3) or crops.dtype != np.uint8:
        raise ValueError(f"expected (N,{ALIGNED_SIZE},{ALIGNED_SIZE},3) uint8 crops, got {crops.shape} {crops.dtype}")
    x = torch.from_numpy(np.ascontiguousarray(crops)).permute(0, 3, 1, 2).float()
    if gray:  # ITU-R 601 luma, as PIL's convert("L") that made the training arrays
        x = (x * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    x0, y0 = int(round(box.x0)), int(round(box.y0))
    x1, y1 = int(round(box.x0 + box.side)), int(round(box.y0 + box.side))
    pads = (max(0, -x0), max(0, x1 - ALIGNED_SIZE), max(0, -y0), max(0, y1 - ALIGNED_SIZE))
    if any(pads):
        x = F.pad(x, pads, mode="replicate")
        x0, x1, y0, y1 = x0 + pads[0], x1 + pads[0], y0 + pads[2], y1 + pads[2]
    x = x[:, :, y0:y1, x0:x1]
    x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return (x / 127.5 - 1.0).contiguous(memory_format=torch.channels_last)


def embed_in_aligned_crop(face: np.ndarray, box: SubCrop) -> np.ndarray:
    """The inverse of a head's sub-crop: place a picture that is itself a face crop (a FER image,
    a mask-dataset crop, an uploaded portrait crop) into a 160x160 aligned crop at ``box``, edges
    replicated outward. Lets such pictures go through the same `predict` as pipeline crops."""
    from PIL import Image

    img = Image.fromarray(face).convert("RGB")
    side = int(round(box.side))
    x0, y0 = int(round(box.x0)), int(round(box.y0))
    resized = np.asarray(img.resize((side, side), Image.BICUBIC))
    pad = ((max(0, y0), max(0, ALIGNED_SIZE - y0 - side)), (max(0, x0), max(0, ALIGNED_SIZE - x0 - side)), (0, 0))
    full = np.pad(resized, pad, mode="edge")
    oy, ox = max(0, -y0), max(0, -x0)
    return np.ascontiguousarray(full[oy:oy + ALIGNED_SIZE, ox:ox + ALIGNED_SIZE])


def _stage_widths(state: Mapping[str, torch.Tensor]) -> tuple[int, ...]:
    """The stage widths of a saved _VGGNet: stage i's first conv is ``features.{7 i}`` (conv, BN, ReLU,
    conv, BN, ReLU, pool per stage), so the weights say how wide a net to build."""
    widths: list[int] = []
    while (key := f"features.{7 * len(widths)}.weight") in state:
        widths.append(int(state[key].shape[0]))
    return tuple(widths)


class _Head:
    """Shared loading and batched, calibrated inference. ``predict`` holds a lock, so one head
    object can serve several threads (e.g. Gradio workers) without interleaving calls."""

    weights_name: str
    net_class: type[_VGGNet]

    def __init__(self, weights: Weights) -> None:
        if isinstance(weights, (str, Path)):
            from .weights import load_state_dict

            weights = load_state_dict(Path(weights))
        state = dict(weights)
        temperature = state.pop("temperature", None)
        # Temperature scaling fitted on the validation split; 1.0 means uncalibrated logits.
        self.temperature = float(temperature.reshape(-1)[0]) if temperature is not None else 1.0
        net = self.net_class(widths=_stage_widths(state), **self._net_options(state))
        net.load_state_dict(state, strict=True)
        fold_batch_norms(net.eval())  # exact up to rounding; 10-15 % faster per call
        self.net = net.to(memory_format=torch.channels_last)
        self._lock = threading.Lock()

    @classmethod
    def from_manifest(cls, name: str | None = None) -> "_Head":
        """Load the weights named in weights/manifest.json (local folders first, then the Hub;
        the sha256 is checked either way)."""
        from .weights import load_state_dict, resolve

        return cls(load_state_dict(resolve(name or cls.weights_name)))

    def _inputs(self, crops: np.ndarray) -> torch.Tensor:
        raise NotImplementedError

    def _net_options(self, state: Mapping[str, torch.Tensor]) -> dict:
        return {}

    def _logits(self, x: torch.Tensor, mirrored: bool = True) -> torch.Tensor:
        # The view and its mirror image, logits averaged (flip test-time augmentation): a face and its mirror
        # show the same mask and the same expression; one batch of 2N costs far less than two calls.
        if not mirrored:
            return self.net(x)
        n = len(x)
        z = self.net(torch.cat([x, x.flip(-1)]))
        return (z[:n] + z[n:]) / 2

    def predict_proba(self, crops: np.ndarray) -> np.ndarray:
        """(N,160,160,3) uint8 aligned crops -> (N,K) calibrated probabilities."""
        if len(crops) == 0:
            return np.zeros((0, len(self.labels)), np.float32)
        return self.proba_from_inputs(self._inputs(crops))

    def proba_from_inputs(self, x: torch.Tensor, calibrated: bool = True, mirrored: bool = True) -> np.ndarray:
        """Probabilities for already prepared net inputs (the training-set views used by benchmarks); with
        `mirrored` False, of these views alone, without their mirror images."""
        with self._lock, model_call(), torch.inference_mode():  # counted once it computes, not while it waits
            logits = self._logits(x.contiguous(memory_format=torch.channels_last), mirrored)
            return torch.softmax(logits / (self.temperature if calibrated else 1.0), dim=1).numpy()

    labels: tuple[str, ...]


class EmotionHead(_Head):
    """7-way facial emotion from aligned crops: grayscale FER-like 44x44 view plus its mirror image
    (flip test-time augmentation, the same views as the validation/test scoring in training)."""

    weights_name = "emotion_head"
    net_class = EmotionNet
    labels = EMOTIONS

    def _inputs(self, crops: np.ndarray) -> torch.Tensor:
        return cut_and_resize(crops, FER_CROP.inner(EMOTION_INPUT / FER_SIZE), EMOTION_INPUT, gray=True)

    def predict(self, crops: np.ndarray) -> list[EmotionPrediction]:
        out = []
        for p in self.predict_proba(crops):
            probs = {label: float(v) for label, v in zip(EMOTIONS, p)}
            out.append(EmotionPrediction(probabilities=probs, top=EMOTIONS[int(p.argmax())]))
        return out


class MaskHead(_Head):
    """Mask / no mask (and, with three classes, P(face)) from aligned crops: RGB 64x64 view plus its mirror
    image (flip TTA: validation errors 3 -> 2 of 670, face / not-a-face rates unchanged)."""

    weights_name = "mask_head"
    net_class = MaskNet

    def _inputs(self, crops: np.ndarray) -> torch.Tensor:
        return cut_and_resize(crops, MASK_CROP.inner(MASK_INPUT / MASK_SOURCE), MASK_INPUT, gray=False)

    def _net_options(self, state: Mapping[str, torch.Tensor]) -> dict:
        return {"num_classes": int(state["classifier.weight"].shape[0])}

    @property
    def labels(self) -> tuple[str, ...]:  # type: ignore[override]
        """MASK_LABELS, and NOT_A_FACE when the loaded weights have that third class."""
        return MASK_LABELS + ((NOT_A_FACE,) if self.net.classifier.out_features > len(MASK_LABELS) else ())

    @staticmethod
    def verdicts(proba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N,K) head probabilities -> ((N,2) mask / no-mask probabilities given a face, (N,) P(face))."""
        faces = proba[:, :len(MASK_LABELS)]
        total = faces.sum(1, keepdims=True)
        return faces / np.maximum(total, 1e-12), total[:, 0]

    def predict(self, crops: np.ndarray) -> list[MaskPrediction]:
        given_face, face = self.verdicts(self.predict_proba(crops))
        i = MASK_LABELS.index("mask")
        return [MaskPrediction(label=MASK_LABELS[int(p.argmax())], mask_probability=float(p[i]), face_probability=float(f))
                for p, f in zip(given_face, face)]
