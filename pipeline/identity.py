"""Enroll, identify, verify: what the identity tabs call. No UI code; galleries are passed in.

Usage::

    from pipeline import get_facelab
    from pipeline.gallery import open_gallery
    from pipeline.identity import enroll, identify, verify, thresholds

    lab, gallery = get_facelab(), open_gallery()       # the app keeps one InMemoryGallery per session
    result = enroll(lab, gallery, "Ada", "ada.jpg")    # EnrollResult: person, warnings, notes, crop
    for face in identify(lab, gallery, "group.jpg"):   # one Identification per face, largest first
        print(face.label, face.similarity, face.candidates)
    check = verify(lab, "a.jpg", "b.jpg", "strict")    # Verification: similarity, same_person, threshold
    thresholds("casia-webface")                         # {"balanced": 0.4..., "strict": 0.5...}

Similarities are cosine similarities of unit embeddings (-1..1). Thresholds come from the backbone's entry
in weights/manifest.json (written by training/calibrate_thresholds.py on LFW pairs):
- "balanced": the threshold with the best accuracy on LFW's 10 folds,
- "strict": the lowest threshold whose false accept rate on LFW's mismatched pairs is at most 0.1 %.
In identification a stranger is compared with every embedding of the gallery, so the false accepts add
up: `identify` raises the strict threshold with the gallery's size (`identification_threshold`) so that
a stranger is still wrongly named at most 0.1 % of the time, using the far tail of LFW impostor scores.
Every problem a user can cause raises a FaceLabError subclass whose text can be shown as it is.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

import numpy as np
from PIL import Image

from .analysis import Face, FaceLab
from .embedding import BACKBONES
from .errors import NoFaceError, WeightsError
from .gallery import Candidate, Gallery, Person, normalize_name
from .images import ImageInput
from .weights import MANIFEST_PATH

OperatingPoint = Literal["balanced", "strict"]
OPERATING_POINTS: tuple[str, ...] = ("balanced", "strict")

# Quality gate. Warnings, not refusals: the visitor decides. The numbers come from
# benchmarks/quality_thresholds.py on 40 LFW faces (benchmarks/results/quality_thresholds.json):
# - Face size: faces downscaled to 120/80/60 px wide keep a median cosine similarity of 0.98 to their
#   full-size embedding (no loss beyond resampling noise); at 40 px 0.97, at 30 px 0.93 (p10 0.88). Warn below 50.
MIN_FACE_PIXELS = 50
# - Sharpness, variance of the Laplacian over the centre of the aligned 160x160 grey crop: sharp LFW crops
#   have median 55 (p10 29); a Gaussian blur of sigma 1 gives 18 (p10 11) at similarity 0.98 to the sharp
#   embedding, sigma 1.5 gives 8 (p90 15) at 0.93 (p10 0.88), sigma 2 gives 5 at 0.86. Warn below 10.
MIN_SHARPNESS = 10.0
# - Head turn: nose offset from the eye midpoint along the eye line, in inter-eye distances (0 = frontal).
#   On LFW |yaw| has median 0.09, p95 0.29, p99 0.44, so 0.35 flags the ~2 % most turned faces. LFW shows
#   no measurable loss up to its range: of matched pairs whose more turned face is past 0.35, 0.97 are
#   accepted at the balanced threshold (0.985 overall). The warning is for turns beyond what LFW holds.
MAX_YAW_RATIO = 0.35
THUMBNAIL_SIZE = 96


@dataclass(frozen=True)
class FaceQuality:
    """What the quality gate measured on one face."""

    face_pixels: float  # width of the detected face box, original pixels
    sharpness: float  # variance of the Laplacian of the aligned grey crop
    yaw_ratio: float  # signed nose offset along the eye line / inter-eye distance
    warnings: tuple[str, ...] = ()


@dataclass
class EnrollResult:
    """One enrollment: who now holds one more embedding, and what the visitor should know."""

    person: Person  # after the enrollment (name, number of embeddings, thumbnail)
    box: np.ndarray = field(repr=False)  # the enrolled face, original picture pixels
    crop: np.ndarray = field(repr=False)  # the aligned 160x160 crop that was embedded
    quality: FaceQuality
    notes: list[str] = field(default_factory=list)  # e.g. "3 faces: enrolled the largest"

    @property
    def warnings(self) -> tuple[str, ...]:
        return self.quality.warnings


@dataclass
class Identification:
    """One face of the picture and who it most likely is (name None = unknown)."""

    box: np.ndarray = field(repr=False)
    name: str | None
    similarity: float  # of the best candidate (nan when the gallery is empty)
    candidates: list[Candidate]  # top 3, best first, whatever the threshold
    threshold: float
    operating_point: str
    crop: np.ndarray = field(repr=False, default=None)

    @property
    def label(self) -> str:
        return self.name if self.name is not None else "unknown"


@dataclass
class Verification:
    """Are the largest faces of two pictures the same person?"""

    similarity: float
    same_person: bool
    threshold: float
    operating_point: str
    crop_a: np.ndarray = field(repr=False)
    crop_b: np.ndarray = field(repr=False)
    box_a: np.ndarray = field(repr=False)
    box_b: np.ndarray = field(repr=False)
    notes: list[str] = field(default_factory=list)


def thresholds(backbone: str) -> dict[str, float]:
    """{"balanced": t, "strict": t} for a backbone ('casia-webface' or 'vggface2'), from the manifest."""
    calibrated = _calibration(backbone)
    try:
        return {point: float(calibrated[point]["threshold"]) for point in OPERATING_POINTS}
    except (KeyError, TypeError, ValueError):
        raise WeightsError(
            f"The weights manifest has no verification thresholds for {backbone}; "
            f"run `python -m training.calibrate_thresholds`."
        ) from None


def _calibration(backbone: str) -> dict:
    """The backbone's "thresholds" entry of the manifest. identify runs on every live frame, so the file
    is parsed again only when it changed (training/calibrate_thresholds.py rewrites it)."""
    if backbone not in BACKBONES:
        raise ValueError(f"unknown backbone {backbone!r}; choose one of {sorted(BACKBONES)}")
    return _read_calibration(BACKBONES[backbone], MANIFEST_PATH.stat().st_mtime_ns)


@lru_cache(maxsize=8)
def _read_calibration(model_name: str, manifest_mtime_ns: int) -> dict:
    entry = json.loads(MANIFEST_PATH.read_text(encoding="utf-8"))["models"].get(model_name, {})
    return entry.get("thresholds") or {}


def threshold_for(lab: FaceLab, operating_point: str) -> float:
    """The pair threshold of an operating point for the lab's backbone (what verify compares with)."""
    return _pair_threshold(lab.embedder.backbone, operating_point)


def _pair_threshold(backbone: str, operating_point: str) -> float:
    if operating_point not in OPERATING_POINTS:
        raise ValueError(f"operating_point must be one of {OPERATING_POINTS}, not {operating_point!r}")
    return thresholds(backbone)[operating_point]


def identification_threshold(backbone: str, operating_point: str, gallery_embeddings: int) -> float:
    """The threshold `identify` applies against a gallery of this many embeddings.

    "balanced" is the pair threshold. "strict" promises a false accept rate of at most 0.1 % per stranger;
    with n embeddings that needs a per-pair rate of 0.1 % / n, read off the calibrated impostor tail
    (log-linear between its points; beyond its last point, its last threshold)."""
    pair = _pair_threshold(backbone, operating_point)
    tail = _impostor_tail(backbone) if operating_point == "strict" else None
    if tail is None or gallery_embeddings <= 1:
        return pair
    rates, levels = tail
    wanted = np.log10(rates[0] / gallery_embeddings)
    # np.interp needs increasing x: log10 rates run from high to low.
    return max(pair, float(np.interp(-wanted, -np.log10(rates), levels)))


def _impostor_tail(backbone: str) -> tuple[np.ndarray, np.ndarray] | None:
    tail = (_calibration(backbone).get("strict") or {}).get("impostor_tail")
    if not tail:
        return None
    return np.asarray(tail["per_pair_far"], dtype=float), np.asarray(tail["threshold"], dtype=float)


def enroll(lab: FaceLab, gallery: Gallery, name: str, image: ImageInput) -> EnrollResult:
    """Add the largest face of `image` to `gallery` under `name` (a new person or one more photo of them).

    Raises InvalidNameError for an unusable name (checked before any face work), InvalidImageError for
    an unreadable picture and NoFaceError when no face is found. Small, blurry or turned faces are
    enrolled with warnings.
    """
    name = normalize_name(name)
    face, others = _largest_face(lab, image, "No face was found in this picture, so no one was enrolled. "
                                             "Use a well-lit photo where the face is clearly visible.")
    notes = [f"{others + 1} faces in the picture: enrolled the largest one."] if others else []
    quality = assess_quality(face)
    person = gallery.add(name, face.embedding, thumbnail(face.crop), backbone=lab.embedder.backbone)
    return EnrollResult(person=person, box=face.box, crop=face.crop, quality=quality, notes=notes)


def identify(lab: FaceLab, gallery: Gallery, image: ImageInput, operating_point: str = "balanced", k: int = 3) -> list[Identification]:
    """Every face of `image` (largest first) with its best match in `gallery`, or "unknown" below the threshold.

    A picture without faces gives an empty list.
    """
    threshold = identification_threshold(lab.embedder.backbone, operating_point, gallery.embedding_count)
    analysis = lab.analyze(image, embed=True)
    if not analysis.faces:
        return []
    results = gallery.search_many(np.stack([face.embedding for face in analysis.faces]), k, lab.embedder.backbone)
    identifications = []
    for face, candidates in zip(analysis.faces, results):
        best = candidates[0] if candidates else None
        known = best is not None and best.similarity >= threshold
        identifications.append(Identification(
            box=face.box, name=best.name if known else None,
            similarity=best.similarity if best else float("nan"), candidates=candidates,
            threshold=threshold, operating_point=operating_point, crop=face.crop,
        ))
    return identifications


def verify(lab: FaceLab, image_a: ImageInput, image_b: ImageInput, operating_point: str = "balanced") -> Verification:
    """Compare the largest face of each picture. Raises NoFaceError naming the picture without a face."""
    threshold = threshold_for(lab, operating_point)
    notes = []
    faces = []
    for label, image in (("first", image_a), ("second", image_b)):
        face, others = _largest_face(lab, image, f"No face was found in the {label} picture.")
        if others:
            notes.append(f"{others + 1} faces in the {label} picture: used the largest one.")
        notes.extend(f"{label.capitalize()} picture: {warning}" for warning in assess_quality(face).warnings)
        faces.append(face)
    similarity = float(np.clip(faces[0].embedding @ faces[1].embedding, -1.0, 1.0))
    return Verification(
        similarity=similarity, same_person=similarity >= threshold, threshold=threshold,
        operating_point=operating_point, crop_a=faces[0].crop, crop_b=faces[1].crop,
        box_a=faces[0].box, box_b=faces[1].box, notes=notes,
    )


def assess_quality(face: Face) -> FaceQuality:
    """Size, sharpness and head turn of one analysed face, with a warning for each that is poor."""
    width = float(face.box[2] - face.box[0])
    sharpness = laplacian_variance(face.crop)
    yaw = yaw_ratio(face.landmarks)
    warnings = []
    if width < MIN_FACE_PIXELS:
        warnings.append(f"The face is small ({width:.0f} px wide); recognition is more reliable above "
                        f"{MIN_FACE_PIXELS} px. Move closer or use a larger picture.")
    if sharpness < MIN_SHARPNESS:
        warnings.append("The face looks blurry; a sharper photo will match more reliably.")
    if abs(yaw) > MAX_YAW_RATIO:
        warnings.append("The head is turned to the side; a photo facing the camera will match more reliably.")
    return FaceQuality(face_pixels=width, sharpness=sharpness, yaw_ratio=yaw, warnings=tuple(warnings))


def laplacian_variance(crop: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian over the crop's central 60 % (eyes to mouth): low when blurry.

    Only the centre: the crop's borders can hold the picture's edge (filled black by the alignment) or
    a hard background edge, which read as "sharp" however blurry the face is.
    """
    side = crop.shape[0]
    crop = crop[side // 5 : side - side // 5, side // 5 : side - side // 5]
    grey = crop.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    laplacian = grey[:-2, 1:-1] + grey[2:, 1:-1] + grey[1:-1, :-2] + grey[1:-1, 2:] - 4 * grey[1:-1, 1:-1]
    return float(laplacian.var())


def yaw_ratio(landmarks: np.ndarray) -> float:
    """How far the nose sits from the eye midpoint along the eye line, in inter-eye distances.

    About 0 for a frontal face, growing towards +-0.5 and beyond as the head turns (the nose moves
    towards one eye in the picture). Roll does not change it: it is measured along the eye line.
    """
    left_eye, right_eye, nose = (np.asarray(point, np.float64) for point in landmarks[:3])
    eye_line = right_eye - left_eye
    distance = float(np.hypot(*eye_line))
    if distance < 1e-6:
        return float("inf")  # eyes on top of each other: a profile
    return float((nose - (left_eye + right_eye) / 2) @ eye_line / distance**2)


def thumbnail(crop: np.ndarray, size: int = THUMBNAIL_SIZE) -> bytes:
    """A small JPEG of the aligned face for the gallery list (the photo itself is never stored)."""
    buffer = io.BytesIO()
    Image.fromarray(crop).resize((size, size), Image.BILINEAR).save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def _largest_face(lab: FaceLab, image: ImageInput, no_face_message: str) -> tuple[Face, int]:
    """The largest face, embedded (only it: others are counted, not embedded), and how many others."""
    analysis = lab.analyze(image, embed=True, max_faces=1)
    if analysis.largest is None:
        raise NoFaceError(no_face_message)
    return analysis.largest, analysis.faces_skipped
