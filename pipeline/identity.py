"""Enroll, identify, verify: what the identity tabs call. No UI code; galleries are passed in.

Usage::

    from pipeline import get_facelab
    from pipeline.gallery import open_gallery
    from pipeline.identity import enroll, identify, verify, thresholds

    lab, gallery = get_facelab(), open_gallery()       # the app keeps one InMemoryGallery per session
    result = enroll(lab, gallery, "Ada", "ada.jpg")    # EnrollResult: person, warnings, notes, crop
    found = identify(lab, gallery, "group.jpg")         # Identified: faces, faces_skipped (beyond the limit)
    for face in found.faces:                           # one Identification per face, largest first
        print(face.label, face.similarity, face.candidates)
    check = verify(lab, "a.jpg", "b.jpg", "strict")    # Verification: similarity, same_person, threshold
    thresholds("casia-webface")                         # {"balanced": 0.4..., "strict": 0.5...}

Similarities are cosine similarities of unit embeddings (-1..1). The pair thresholds of the manifest
(`thresholds`, written by training/calibrate_thresholds.py on LFW pairs: "balanced" the best accuracy on
LFW's 10 folds, "strict" a false accept rate of 0.1 %) describe the backbone on LFW. Decisions use
`open_set_thresholds`, which read the impostor tail instead and adapt to the gallery:
- each operating point bounds the share of strangers given a name (STRANGER_RATE); a stranger is compared
  with every embedding of the gallery, so with n embeddings each comparison may pass at that rate / n,
  read off the impostor tail of LFW people with a single photo;
- populations differ: on rmfd_dev (East Asian public figures) different people score about 0.26 higher
  than on LFW. A gallery shows its population: where its different people resemble each other more than
  LFW's do, the thresholds rise by the excess. Until it can show it (few people; verify has no gallery),
  a comparison may pass at most at UNKNOWN_POPULATION_RATE;
- below the name, a "possible match" band (rates POSSIBLE_MATCH_FACTOR times higher): a marginal score
  is said to be one, never shown like a certain one.
Verify is identification against a gallery of one.
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
from .errors import AlreadyEnrolledError, NoFaceError, WeightsError
from .gallery import Candidate, Gallery, Person, normalize_name
from .images import ImageInput
from .overlay import similarity_text
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

# Open-set decisions, measured on LFW and rmfd_dev by benchmarks/identity_domains.py (README "Identity on two
# populations"). Per stranger's face, at most this share is given a name (on the calibration population):
STRANGER_RATE = {"balanced": 1e-2, "strict": 1e-3}
# Per comparison, at most this rate while the gallery cannot show its population. Chosen on rmfd_dev, the
# dev set: 1e-3 (LFW's strict) still let verify accept 12 % of its different-person pairs, 1e-4 about 4 %.
UNKNOWN_POPULATION_RATE = {"balanced": 1e-4, "strict": 1e-5}
POSSIBLE_MATCH_FACTOR = 10  # the "possible match" band reaches down to rates this many times higher
# How far a gallery's own population statistics are trusted: weight pairs / (pairs + PRIOR_PAIRS), pairs
# of different enrolled people (5 people: 10 pairs, half the weight). POPULATION_SAMPLE bounds the rows
# read, so a 100k gallery costs what a small one does (128 people are 8,128 pairs: plenty for a mean).
POPULATION_PRIOR_PAIRS = 10
POPULATION_SAMPLE = 128


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
    """One face of the picture and who it most likely is (name None = unknown; `possible` names the best
    candidate when its similarity lies in the "possible match" band, below `threshold`)."""

    box: np.ndarray = field(repr=False)
    name: str | None
    similarity: float  # of the best candidate (nan when the gallery is empty)
    candidates: list[Candidate]  # top 3, best first, whatever the threshold
    threshold: float  # a name at or above
    operating_point: str
    crop: np.ndarray = field(repr=False, default=None)
    possible: str | None = None
    possible_threshold: float = float("nan")  # "possible match" at or above (below `threshold`)

    @property
    def label(self) -> str:
        return self.name if self.name is not None else "unknown"


@dataclass
class Identified:
    """What `identify` found in a picture: its faces (largest first, at most the analysis limit
    FACELAB_MAX_FACES), and how many more faces it held that were not identified."""

    faces: list[Identification]
    faces_skipped: int = 0


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
    possible: bool = False  # not the same person at this point, but in the "possible match" band
    possible_threshold: float = float("nan")


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


def _check_operating_point(operating_point: str) -> None:
    if operating_point not in OPERATING_POINTS:
        raise ValueError(f"operating_point must be one of {OPERATING_POINTS}, not {operating_point!r}")


@dataclass(frozen=True)
class Population:
    """How much a gallery's different people resemble each other: their mean similarity, over this many pairs."""

    mean_similarity: float = 0.0
    pairs: int = 0


@dataclass(frozen=True)
class OpenSetThresholds:
    """The two similarities a decision compares with."""

    named: float  # at or above: the name (verify: same person)
    possible: float  # at or above, below `named`: "possible match"


def gallery_population(gallery: Gallery) -> Population:
    """Mean similarity between different enrolled people: one embedding each (their first), from the gallery's
    first POPULATION_SAMPLE rows. For m unit vectors, the sum over ordered pairs i != j is |sum v|^2 - m."""
    vectors, owners = gallery.sample(POPULATION_SAMPLE)
    vectors = vectors[np.unique(owners, return_index=True)[1]]
    people = len(vectors)
    if people < 2:
        return Population()
    total = vectors.sum(axis=0)
    return Population(mean_similarity=(float(total @ total) - people) / (people * (people - 1)),
                      pairs=people * (people - 1) // 2)


def open_set_thresholds(backbone: str, operating_point: str, comparisons: int,
                        population: Population = Population()) -> OpenSetThresholds:
    """The thresholds for a face compared with `comparisons` embeddings (verify: 1) of a gallery whose
    different people have `population`'s mean similarity (see the module docstring)."""
    _check_operating_point(operating_point)
    trusted = population.pairs / (population.pairs + POPULATION_PRIOR_PAIRS)
    tail = _open_set_tail(backbone)
    if tail is None:  # no impostor tail (an uncalibrated backbone): its pair thresholds, raised the same way
        pair = thresholds(backbone)
        shift = trusted * max(0.0, population.mean_similarity)
        return OpenSetThresholds(named=pair[operating_point] + shift, possible=min(pair.values()) + shift)
    rates, levels, lfw_mean = tail
    shift = max(0.0, population.mean_similarity - lfw_mean)

    def at(per_face: float, cautious: float) -> float:
        per_pair = per_face / max(comparisons, 1)
        # np.interp needs increasing x: log10 rates run from high to low. Beyond the tail: its last point.
        level = lambda rate: float(np.interp(-np.log10(rate), -np.log10(rates), levels))  # noqa: E731
        return trusted * (level(per_pair) + shift) + (1 - trusted) * level(min(per_pair, cautious))

    rate, cautious = STRANGER_RATE[operating_point], UNKNOWN_POPULATION_RATE[operating_point]
    return OpenSetThresholds(named=at(rate, cautious),
                             possible=at(POSSIBLE_MATCH_FACTOR * rate, POSSIBLE_MATCH_FACTOR * cautious))


def identification_threshold(backbone: str, operating_point: str, gallery_embeddings: int,
                             population: Population = Population()) -> float:
    """The similarity `identify` names someone at, against a gallery of this many embeddings."""
    return open_set_thresholds(backbone, operating_point, gallery_embeddings, population).named


def verify_thresholds(backbone: str) -> dict[str, float]:
    """{"balanced": t, "strict": t}: the similarity at which verify says "same person", per operating point."""
    return {point: open_set_thresholds(backbone, point, 1).named for point in OPERATING_POINTS}


def _open_set_tail(backbone: str) -> tuple[np.ndarray, np.ndarray, float] | None:
    tail = _calibration(backbone).get("open_set")
    if not tail:
        return None
    return (np.asarray(tail["per_pair_far"], dtype=float), np.asarray(tail["threshold"], dtype=float),
            float(tail["mean_similarity"]))


def enroll(lab: FaceLab, gallery: Gallery, name: str, image: ImageInput, enroll_anyway: bool = False) -> EnrollResult:
    """Add the largest face of `image` to `gallery` under `name` (a new person or one more photo of them).

    Raises InvalidNameError for an unusable name (checked before any face work), InvalidImageError for
    an unreadable picture and NoFaceError when no face is found. Small, blurry or turned faces are
    enrolled with warnings. A face that `identify` would name as someone else at the strict point is
    refused with AlreadyEnrolledError unless `enroll_anyway`: the same photo left in the form, or the
    wrong file picked, would otherwise quietly give one person two names; one that only the balanced point
    names as someone else is enrolled with a note that says so.
    """
    typed = normalize_name(name)
    name = spelling_enrolled(gallery, typed)
    face, others = _largest_face(lab, image, "No face was found in this picture, so no one was enrolled. "
                                             "Use a well-lit photo where the face is clearly visible.")
    notes = [f"{others + 1} faces in the picture: enrolled the largest one."] if others else []
    if name != typed:
        notes.append(f"Added to {name}, as the name is already spelt in the gallery.")
    notes += _notes_if_someone_else(lab, gallery, name, face, enroll_anyway)
    quality = assess_quality(face)
    person = gallery.add(name, face.embedding, thumbnail(face.crop), backbone=lab.embedder.backbone)
    return EnrollResult(person=person, box=face.box, crop=face.crop, quality=quality, notes=notes)


def spelling_enrolled(gallery: Gallery, name: str) -> str:
    """`name` as the gallery already spells it when it holds the same name in other capitals ("Tony Blair" for
    "tony blair"): one person, where two names made identify answer with either; else `name`."""
    if name in gallery:
        return name
    folded = name.casefold()
    return next((person.name for person in gallery.people() if person.name.casefold() == folded), name)


def _notes_if_someone_else(lab: FaceLab, gallery: Gallery, name: str, face: Face, enroll_anyway: bool) -> list[str]:
    """Enroll's note when identify names this face as someone other than `name`: AlreadyEnrolledError instead
    when it does so at the strict point (unless `enroll_anyway`); a note when only the balanced point does (or
    the visitor enrolls anyway), where two people who look alike also meet: one person under two names silently
    made identify answer with either. No note: []."""
    if not len(gallery):
        return []
    for point in ("strict", "balanced"):
        match = identify_faces(lab, gallery, [face], point, k=1)[0]
        if match.name is None or match.name == name:
            continue
        said = (f"similarity {similarity_text(match.similarity)}, {point} threshold "
                f"{similarity_text(match.threshold)}")
        if point == "strict" and not enroll_anyway:
            raise AlreadyEnrolledError(
                f"This face already matches {match.name} in the gallery ({said}), so it was not enrolled as {name}. "
                f"If it really is a different person, tick \"Enroll anyway\" and enroll again.", match=match.name)
        return [f"This face also matches {match.name} ({said}): if it is the same person, delete one of the two "
                f"names."]
    return []


def identify(lab: FaceLab, gallery: Gallery, image: ImageInput, operating_point: str = "balanced", k: int = 3) -> Identified:
    """Every face of `image` (largest first, up to the analysis limit) with its best match in `gallery`: a name,
    a possible match or unknown; `faces_skipped` counts the faces beyond the limit.

    A picture without faces gives no faces.
    """
    _check_operating_point(operating_point)
    analysis = lab.analyze(image, embed=True)
    return Identified(identify_faces(lab, gallery, analysis.faces, operating_point, k), analysis.faces_skipped)


def identify_faces(lab: FaceLab, gallery: Gallery, faces: list[Face], operating_point: str = "balanced",
                   k: int = 3) -> list[Identification]:
    """`identify` for faces already found and aligned (a live frame's); embeds those not embedded yet."""
    if not faces:
        return []
    lab.describe([face for face in faces if face.embedding is None], embed=True)
    backbone = lab.embedder.backbone
    levels = open_set_thresholds(backbone, operating_point, gallery.embedding_count, gallery_population(gallery))
    results = gallery.search_many(np.stack([face.embedding for face in faces]), k, backbone)
    identifications = []
    for face, candidates in zip(faces, results):
        best = candidates[0] if candidates else None
        name, possible = decide(best, levels)
        identifications.append(Identification(
            box=face.box, name=name, similarity=best.similarity if best else float("nan"), candidates=candidates,
            threshold=levels.named, operating_point=operating_point, crop=face.crop,
            possible=possible, possible_threshold=levels.possible,
        ))
    return identifications


def decide(best: Candidate | None, levels: OpenSetThresholds) -> tuple[str | None, str | None]:
    """(name, possible match) for a face whose best candidate is `best`: at most one of them is set."""
    if best is None or best.similarity < levels.possible:
        return None, None
    return (best.name, None) if best.similarity >= levels.named else (None, best.name)


def verify(lab: FaceLab, image_a: ImageInput, image_b: ImageInput, operating_point: str = "balanced") -> Verification:
    """Compare the largest face of each picture. Raises NoFaceError naming the picture without a face."""
    levels = open_set_thresholds(lab.embedder.backbone, operating_point, 1)
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
        similarity=similarity, same_person=similarity >= levels.named, threshold=levels.named,
        operating_point=operating_point, crop_a=faces[0].crop, crop_b=faces[1].crop,
        box_a=faces[0].box, box_b=faces[1].box, notes=notes,
        possible=levels.possible <= similarity < levels.named, possible_threshold=levels.possible,
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
