"""The facade every caller uses: detect and align once, then embed and run the heads asked for.

Models are process-wide and loaded lazily (each on first use, once, under a lock); nothing a visitor
sends is kept here. Galleries are passed in by the caller (see pipeline.gallery).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any, Callable

import numpy as np
import torch

from .alignment import AlignmentMethod, align_faces
from .detection import Detection, DetectorConfig, FaceDetector, box_area
from .device import configure_cpu_threads, select_device
from .embedding import BACKBONES, FaceEmbedder
from .errors import FaceLabError, WeightsError
from .heads import NOT_A_FACE, EmotionHead, EmotionPrediction, MaskHead, MaskPrediction
from .images import ImageInput, load_rgb
from .mask_detection import FaceCheck, MaskedFaceSearch, detect_faces_masked
from .settings import Settings
from .settings import current as current_settings

log = logging.getLogger(__name__)

DEFAULT_BACKBONE = "vggface2"
# The heads' framing: their sub-crops (pipeline.heads FER_CROP / MASK_CROP) were measured on, and they are
# trained with, faces aligned to the landmark template, whatever alignment the embedder uses.
HEAD_ALIGNMENT: AlignmentMethod = "landmarks"


@dataclass
class Face:
    """One face in the original picture's pixel coordinates, with whatever was computed for it. Its aligned
    crops are cut from `picture` when first asked for: a mask check never pays for the embedder's crop, nor
    a live identify stream for the heads'."""

    box: np.ndarray = field(repr=False)  # (4,) x1, y1, x2, y2
    landmarks: np.ndarray = field(repr=False)  # (5, 2)
    score: float
    picture: np.ndarray = field(repr=False)  # the RGB picture the face was found in (not copied)
    alignment: AlignmentMethod = field(default="box", repr=False)  # the embedder's (FaceLab.alignment)
    embedding: np.ndarray | None = field(default=None, repr=False)  # (512,) float32, unit length
    mask: MaskPrediction | None = None
    emotion: EmotionPrediction | None = None
    _crops: dict[str, np.ndarray] = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def area(self) -> float:
        return box_area(self.box)

    @property
    def crop(self) -> np.ndarray:
        """(160, 160, 3) uint8, aligned as the embedder wants."""
        return self._aligned(self.alignment)

    @property
    def crop_for_heads(self) -> np.ndarray:
        """(160, 160, 3) uint8, aligned as the heads want (HEAD_ALIGNMENT). Never the embedder's box crop when
        that differs: the heads read it 7 points worse on FER2013 (0.600 vs 0.653 on 1,339 test faces), since
        it stretches the face to the box's shape, which their sub-crops were not measured on."""
        return self._aligned(HEAD_ALIGNMENT)

    def _aligned(self, method: AlignmentMethod) -> np.ndarray:
        if method not in self._crops:
            detection = Detection(box=self.box, landmarks=self.landmarks, score=self.score)
            self._crops[method] = align_faces(self.picture, [detection], method)[0]
        return self._crops[method]


@dataclass
class Analysis:
    """Everything found in one picture. `faces` is sorted largest first."""

    faces: list[Face]
    image: np.ndarray = field(repr=False)  # the normalised RGB picture the boxes refer to
    faces_skipped: int = 0  # faces beyond the limit (`max_faces`), not analysed

    @property
    def largest(self) -> Face | None:
        return self.faces[0] if self.faces else None


class _Lazy:
    """A value built on first use, once, even when several threads ask at the same moment."""

    def __init__(self, build: Callable[[], Any]) -> None:
        self._build = build
        self._value: Any = None
        self._lock = threading.Lock()

    def get(self) -> Any:
        if self._value is None:
            with self._lock:
                if self._value is None:
                    self._value = self._build()
        return self._value


class FaceLab:
    """Process-wide models behind one `analyze` call."""

    def __init__(
        self,
        backbone: str | None = None,
        device: torch.device | str | None = None,
        detector_config: DetectorConfig | None = None,
        alignment: AlignmentMethod = "box",
        settings: Settings | None = None,
    ) -> None:
        self._settings = settings
        self.device = torch.device(device) if device is not None else select_device(self.settings.device)
        if self.device.type == "cpu":
            configure_cpu_threads(self.settings.threads)
        self.alignment = alignment
        self.preferred_backbone = backbone or self.settings.backbone or DEFAULT_BACKBONE
        if self.preferred_backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {self.preferred_backbone!r}; choose one of {sorted(BACKBONES)}")
        self._detector = _Lazy(lambda: FaceDetector(detector_config, self.device))
        self._embedder = _Lazy(self._load_embedder)
        self._mask_head = _Lazy(lambda: MaskHead.from_manifest())
        self._emotion_head = _Lazy(lambda: EmotionHead.from_manifest())

    @property
    def settings(self) -> Settings:
        """The Settings it was given, else the process's as they are now (pipeline.settings.reload() counts).
        Device, threads and backbone are chosen from them when it is built; the precision when the embedder
        loads; the faces analysed per picture (max_faces) at each `analyze`."""
        return self._settings or current_settings()

    @property
    def detector(self) -> FaceDetector:
        return self._detector.get()

    @property
    def embedder(self) -> FaceEmbedder:
        return self._embedder.get()

    @property
    def mask_head(self) -> MaskHead:
        return self._mask_head.get()

    @property
    def emotion_head(self) -> EmotionHead:
        return self._emotion_head.get()

    def _load_embedder(self) -> FaceEmbedder:
        # Prefer the configured backbone; fall back to the other one rather than leave identity tabs dead.
        order = [self.preferred_backbone] + [name for name in BACKBONES if name != self.preferred_backbone]
        failures, publics = [], []
        for backbone in order:
            try:
                embedder = FaceEmbedder.from_backbone(backbone, device=self.device, precision=self.settings.precision)
            except FaceLabError as exc:  # missing weights, or a precision (FACELAB_PRECISION) it lacks
                failures.append(f"{backbone}: {exc}")
                publics.append(getattr(exc, "public", "its weights could not be loaded"))
                log.warning("backbone %s unavailable: %s", backbone, exc)
                continue
            if backbone != self.preferred_backbone:
                log.warning("using backbone %s because %s is unavailable", backbone, self.preferred_backbone)
            return embedder
        raise WeightsError("No face embedder could be loaded. " + " | ".join(failures),
                           public="; ".join(dict.fromkeys(publics)))

    def detect(self, image: ImageInput, config: DetectorConfig | None = None) -> tuple[np.ndarray, list[Detection]]:
        """Normalise the input and find its faces (largest first)."""
        rgb = load_rgb(image, self.settings)
        return rgb, self.detector.detect(rgb, config)

    def analyze(
        self,
        image: ImageInput,
        *,
        embed: bool = False,
        mask: bool = False,
        emotion: bool = False,
        max_faces: int | None = None,
        detector_config: DetectorConfig | None = None,
    ) -> Analysis:
        """Detect and align every face (up to `max_faces`, largest first; None: the settings' max_faces,
        FACELAB_MAX_FACES, which bounds memory and time per request), then run what is asked.

        With `mask=True` the detector also looks for masked faces, which MTCNN alone often misses
        (pipeline.mask_detection).
        """
        rgb = load_rgb(image, self.settings)
        if mask:
            detections = self.detect_masked(rgb, detector_config)
        else:
            detections = self.detector.detect(rgb, detector_config)
        kept = detections[:self.settings.max_faces if max_faces is None else max_faces]
        faces = self.faces_from(rgb, kept)
        self.describe(faces, embed=embed, mask=mask, emotion=emotion)
        return Analysis(faces=faces, image=rgb, faces_skipped=len(detections) - len(kept))

    def faces_from(self, rgb: np.ndarray, detections: list[Detection]) -> list[Face]:
        """A Face per detection, in order; its crops are cut when first used (Face.crop, Face.crop_for_heads)."""
        return [Face(box=d.box, landmarks=d.landmarks, score=d.score, picture=rgb, alignment=self.alignment)
                for d in detections]

    def describe(self, faces: list[Face], *, embed: bool = False, mask: bool = False, emotion: bool = False) -> None:
        """Fill in embeddings and head results for faces whose aligned crops are known, batched."""
        if not faces:
            return
        if embed:
            for face, vector in zip(faces, self.embedder.embed(np.stack([face.crop for face in faces]))):
                face.embedding = vector
        if not (mask or emotion):
            return
        crops = np.stack([face.crop_for_heads for face in faces])
        if mask:
            for face, prediction in zip(faces, self.mask_head.predict(crops)):
                face.mask = prediction
        if emotion:
            covered = self._mouths_covered(faces, crops)
            for face, prediction, mouth in zip(faces, self.emotion_head.predict(crops), covered):
                face.emotion = replace(prediction, mouth_covered=mouth)

    def detect_masked(self, rgb: np.ndarray, config: DetectorConfig | None = None,
                      search: MaskedFaceSearch | None = None) -> list[Detection]:
        """The mask check's faces (pipeline.mask_detection; `search`'s options, default the app's), confirmed
        by the mask head when it can tell a face from a shirt or a wall."""
        return detect_faces_masked(self.detector, rgb, search, config=config, face_check=self._face_check())

    def _face_check(self) -> FaceCheck | None:
        """The mask head's P(face) for boxes the relaxed detector passes add, when it has learned "not a face"."""
        if NOT_A_FACE not in self.mask_head.labels:
            return None

        def face_probabilities(rgb: np.ndarray, detections: list[Detection]) -> list[float]:
            crops = align_faces(rgb, detections, HEAD_ALIGNMENT)
            return [prediction.face_probability for prediction in self.mask_head.predict(crops)]

        return face_probabilities

    def _mouths_covered(self, faces: list[Face], crops: np.ndarray) -> list[bool | None]:
        """Per face, whether a mask hides its mouth (an emotion read from the eyes alone must say so): a sure
        mask verdict (`MaskPrediction.surely_masked`; an unsure one, such as "mask? 68 %" on a gray photo of a bare
        face, is no reason to doubt the expression), the one already computed, else the mask head's (about 2 ms a
        face); None for every face when the mask head cannot be loaded (the emotion is still given)."""
        if all(face.mask is not None for face in faces):
            return [face.mask.surely_masked for face in faces]
        try:
            return [prediction.surely_masked for prediction in self.mask_head.predict(crops)]
        except FaceLabError as exc:
            log.warning("mouth-covered check skipped: %s", exc)
            return [None] * len(faces)


@lru_cache(maxsize=None)
def get_facelab() -> FaceLab:
    """The process-wide FaceLab, built from the process's settings (pipeline/settings.py)."""
    return FaceLab()
