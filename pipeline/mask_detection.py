"""Finding masked faces: MTCNN was trained on unmasked faces and misses many masked ones.

`detect_faces_masked` is the mask path's detector, in steps that each run only when the ones before
found nothing (benchmarks/mask.py measures the result: no_face_rate, phantom_boxes):
1. the normal pass, and a second pass with lower thresholds (sharing the first pass's P-Net work, and skipping
   O-Net on the faces the first found: `FaceDetector.detect_passes`' `new_faces_only`) whose
   extra faces are added when they are new (not overlapping a face already found, nor lying largely
   inside one) and confirmed as faces (`confirmed_faces`: the relaxed pass also boxes shirts, walls,
   hands, a helmet ring);
2. close-ups: a pass that finds nothing runs again on the picture inside a border, since a face that
   fills the picture lacks the margin MTCNN's windows need (the detector's own retry, as in every tab:
   `DetectorConfig.retry_with_border`);
3. the relaxed pass once more on an interleaved pyramid, whose scales fall between the first pyramid's
   (`MaskedFaceSearch.interleaved_pass`), its faces confirmed as the second pass's are;
4. in a picture that is not square, steps 1 and 2 once more on its centred square alone when the face check
   finds that square face-like (`MaskedFaceSearch.centre_square_min_face_probability`): a face that fills a
   tall or wide picture's middle is often missed beside the rest of the picture;
5. the centre-crop fallback: the largest centred square of the picture taken as one face, with landmarks
   at the mean positions measured on face-crop datasets, when O-Net, run on that square, rates it as
   face-like enough (`MaskedFaceSearch.fallback_min_score`), or the face check alone is sure of it
   (`fallback_min_face_probability`); the face is marked as assumed (`is_assumed`), so callers can say
   that the whole picture was judged.
With a `FaceCheck` (the mask head's learned "not a face" class, passed by `FaceLab.detect_masked`), the
faces of the relaxed passes and the centre square must also pass it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import cache
from typing import Callable, Protocol

import numpy as np

from .alignment import face_axes
from .detection import DetectorConfig, Detection, FaceDetector, iou, share_inside
from .mtcnn import PYRAMID_FACTOR

# Mean MTCNN landmarks in face-crop pictures, as fractions of the picture side (training.crop_geometry:
# mean over the mask set's with_mask and without_mask crops): eyes, nose, mouth corners.
FACE_CROP_LANDMARKS = np.array([[0.326, 0.384], [0.686, 0.381], [0.502, 0.591], [0.350, 0.760], [0.658, 0.760]],
                               dtype=np.float32)
WHOLE_PICTURE_SCORE = 0.0  # marks a face that was assumed, not detected


@dataclass(frozen=True)
class MaskedFaceSearch:
    """Options of `detect_faces_masked`."""

    # Second pass: lower stage thresholds and final score; None: no second pass. MTCNN's early stages drop
    # many masked faces (most of all under a skin-coloured mask, a face without nose or mouth) before O-Net
    # sees them. Chosen with min_rescore and min_face_probability on the dev sets of benchmarks/mask_search.py
    # (400 LFW pictures of people outside benchmarks/mask.py's sample, with a drawn mask and without; mask/val
    # close-ups; object close-ups): masked faces found 384 -> 387 of 400 against 0.5 / 0.8 with the same
    # face check, boxes beside the subject 1 -> 0, about 5 % more time a picture. Lower P-Net / R-Net bars were
    # tried there too (0.3 / 0.3 and 0.2 / 0.3): 2 more of 270 masked validation pictures found in scenes and 0-2
    # more of the 400 LFW faces, for 13-40 % more time a picture (results/mask_search.json).
    second_pass_thresholds: tuple[float, float, float] | None = (0.4, 0.4, 0.4)
    second_pass_min_score: float = 0.7
    max_overlap: float = 0.3  # IoU above which a second-pass face duplicates a first-pass one
    # Share of a second-pass face's box inside a first-pass face above which it is a part of that face
    # (hair, a cheek: on the group photo a low-scoring box on one man's hair lay 42 % inside his face).
    max_inside: float = 0.3
    # A second-pass face beside faces of the first pass must be at least this share of the largest one's
    # width: the phantoms the relaxed pass adds are small patches of texture (the astronaut's helmet ring
    # was a third of her face's width), while faces in one picture are mostly of similar size.
    min_width_vs_largest: float = 0.5
    # O-Net's score on a second-pass face's own box (squared, black outside the picture, as the tracker
    # re-locates faces) at least this. In an exploration of the second pass's extra boxes (examples, 100
    # masked test faces in scenes, 255 no-mask test pictures, 120 LFW pictures with and without a drawn mask)
    # slivers of a face at the picture's edge and blurred background patches fell to 0.03 there, while the
    # 11 masked faces kept 0.26 or more; the landmark check rejected none of those boxes. With the stricter
    # face check behind it, 0.05 (as in the dev run above).
    min_rescore: float = 0.05
    # Centre-crop fallback: taken when O-Net scores the centred square at least this (None: never). In an
    # exploration on 50 test pictures x the 4 shapes of benchmarks/mask.py's close-ups, those left to the
    # fallback scored 0.72, 0.985, 0.986, 0.987 (0.003-0.06: a 29 px cartoon, a posterised smear no step finds);
    # 205 face-free squares (random crops of the misc/ photos and no_face.jpg) scored at most 0.85.
    fallback_min_score: float | None = 0.9
    # With a face check (the mask head's "not a face" class, `FaceCheck`): a second-pass face or the
    # centre square is labelled only when the check also gives it at least this P(face).
    # 0.9: on the dev sets with the lower second pass, 0.5 let one box beside a subject through
    # (Muhammad_Ali_0005; with the old pass 0.2 let a blurred photographer behind his camera through,
    # Betsy_Smith_0001) while 0.9 lost one masked face of 400 (387 vs 388) and no close-up; a shirt and a hand
    # on the group photo of ../shared/data/misc that the lower pass boxes score 0.80-0.85.
    min_face_probability: float = 0.9
    # The centre square is also taken, whatever O-Net says, when the face check gives it at least this (None:
    # O-Net must agree). Most masked close-ups that no step finds score low with O-Net (median 0.12 on the
    # 190 of 3,480 dev close-ups missed: mask/train and mask/val pictures in benchmarks/mask.py's shapes),
    # but the mask head, taught objects and textures too, calls them faces: 100 of the 190 at 0.9, while 3 of
    # 1,875 held-out LFW background squares and none of 2,380 object close-ups reach it (at 0.5: 141 of the
    # 190, 7 and 1). 0.9 rather than 0.5: objects unlike those the head has seen may score higher (before it
    # learnt objects, the head gave the coffee-cup photo of ../shared/data/misc 0.98; now 0.89). With both
    # bars at 0.9, O-Net's word no longer decides when there is a face check.
    fallback_min_face_probability: float | None = 0.9
    # When both passes find nothing: the second pass's thresholds once more, on a pyramid whose scales fall
    # halfway between the first pyramid's (its smallest face a half step larger), with the border retry, before
    # the centre-crop fallback. MTCNN finds many masked faces at one size or spot in a photo and misses them at
    # another: P-Net samples scales 0.709 apart and positions 2 px apart. On the dev sets of
    # benchmarks/mask_search.py: 2 more of 400 LFW faces with a drawn mask, 2 more of 270 masked pictures in
    # scenes, 6 fewer of 1,080 masked close-ups with no face, no box beside a subject or on an object close-up
    # more; without the border retry 2 / 1 / 3, with lower P-Net and R-Net bars (0.3) the same. Costs three more
    # pyramids, only on pictures where nothing was found: the misc/ face-free photos take about 1.65x as long.
    interleaved_pass: bool = True
    # When nothing was found in a picture that is not square and the face check gives its centred square at
    # least this P(face) (None: never): the two passes (with the border retry) once more on that square alone,
    # before the centre-crop fallback. On the dev close-ups of benchmarks/mask_search.py, tall and wide canvases
    # of pictures found as they are were missed beside their streaked edges and located in their square. The
    # face check keeps the cost off most face-free pictures: run on every one, the search took the misc/ photos
    # 1.4-3.2x as long (the random-noise picture 1.6 -> 5.0 s); of their squares only the coffee cup's reaches
    # 0.5 (0.90; the others 0.001-0.18), so only it still takes about 1.3x as long.
    centre_square_min_face_probability: float | None = 0.5

    def passes(self, config: DetectorConfig) -> list[DetectorConfig]:
        """The detector passes of the search: `config`, then the relaxed second pass when there is one."""
        if self.second_pass_thresholds is None:
            return [config]
        return [config, replace(config, thresholds=self.second_pass_thresholds, min_score=self.second_pass_min_score)]

    def interleaved(self, config: DetectorConfig) -> DetectorConfig | None:
        """The relaxed pass on the interleaved pyramid (`interleaved_pass`); None when it is off or there is no
        relaxed pass to repeat."""
        if not self.interleaved_pass or self.second_pass_thresholds is None:
            return None
        relaxed = self.passes(config)[-1]
        return replace(relaxed, min_face_size=round(config.min_face_size / math.sqrt(PYRAMID_FACTOR)))


# P(face) for each detection of a picture (e.g. the mask head's: FaceLab._face_probabilities).
FaceCheck = Callable[[np.ndarray, list[Detection]], list[float]]


class Scored(Protocol):
    score: float


def is_assumed(face: Scored) -> bool:
    """True for the centre-crop fallback's face (a Detection, or an analysis Face made from one): the whole
    picture was judged, no face was located."""
    return face.score == WHOLE_PICTURE_SCORE


def centre_square_face(image: np.ndarray) -> Detection:
    """The largest centred square of the picture as one face, landmarks where face-crop datasets have them."""
    h, w = image.shape[:2]
    side = min(h, w)
    x0, y0 = (w - side) / 2, (h - side) / 2
    box = np.array([x0, y0, x0 + side, y0 + side], dtype=np.float32)
    return Detection(box=box, landmarks=FACE_CROP_LANDMARKS * side + box[:2], score=WHOLE_PICTURE_SCORE)


def landmarks_look_like_a_face(detection: Detection) -> bool:
    """The five landmarks in a face's order: eyes level within 35 degrees and apart by a quarter to
    three quarters of the box width, nose below the eyes, mouth below the nose, mouth corners in the
    order of the eyes."""
    eye_l, eye_r, nose, mouth_l, mouth_r = detection.landmarks.astype(np.float64)
    distance, ux, uy = face_axes(detection.landmarks)
    if not 0.25 * detection.width <= distance <= 0.75 * detection.width:
        return False
    eyes, mouth = (eye_l + eye_r) / 2, (mouth_l + mouth_r) / 2
    nose_down, mouth_down = float((nose - eyes) @ uy) / distance, float((mouth - eyes) @ uy) / distance
    return (abs(np.degrees(np.arctan2(ux[1], ux[0]))) <= 35 and nose_down > 0.2 and mouth_down > nose_down + 0.15
            and float((mouth_r - mouth_l) @ ux) > 0)


def confirmed_faces(detector: FaceDetector, image: np.ndarray, extras: list[Detection], first: list[Detection],
                    search: MaskedFaceSearch, face_check: FaceCheck | None = None) -> list[Detection]:
    """The boxes of a relaxed pass (the second pass, or the interleaved one with no `first` faces) that are
    labelled: plausible landmarks, not much smaller than the faces the normal pass found in the same picture,
    still a face to O-Net on their own box, and to `face_check`."""
    largest = max((d.width for d in first), default=0.0)
    plausible = [d for d in extras if landmarks_look_like_a_face(d) and d.width >= search.min_width_vs_largest * largest]
    rescored = detector.refine(image, [d.box for d in plausible], min_score=search.min_rescore)
    kept = [d for d, again in zip(plausible, rescored) if again is not None]
    return _checked(image, kept, search, face_check)


def _checked(image: np.ndarray, faces: list[Detection], search: MaskedFaceSearch,
             face_check: FaceCheck | None) -> list[Detection]:
    if not faces or face_check is None:
        return faces
    return [d for d, p in zip(faces, face_check(image, faces)) if p >= search.min_face_probability]


def _two_passes(detector: FaceDetector, image: np.ndarray, search: MaskedFaceSearch,
                config: DetectorConfig, face_check: FaceCheck | None) -> list[Detection]:
    first, *second = detector.detect_passes(image, search.passes(config), new_faces_only=True)
    new: list[Detection] = []
    for extra in second[0] if second else []:
        if all(iou(extra.box, d.box) <= search.max_overlap and share_inside(extra.box, d.box) <= search.max_inside
               for d in first + new):
            new.append(extra)
    return first + confirmed_faces(detector, image, new, first, search, face_check)


def detect_faces_masked(detector: FaceDetector, image: np.ndarray, search: MaskedFaceSearch | None = None,
                        config: DetectorConfig | None = None, face_check: FaceCheck | None = None) -> list[Detection]:
    """Faces for the mask check, largest first: the steps of the module docstring with `search`'s options
    (default: all on), `config` (default: the detector's) and, when given, `face_check` confirming the
    relaxed passes' faces and the centre square. Feed the result to `align_faces`."""
    search = search or MaskedFaceSearch()
    config = config or detector.config
    found = _two_passes(detector, image, search, config, face_check)
    interleaved = search.interleaved(config)
    if not found and interleaved is not None:
        found = confirmed_faces(detector, image, detector.detect(image, interleaved), [], search, face_check)
    if not found:
        guess = centre_square_face(image)
        # The face check's P(face) for the centre square, computed once for both steps that read it.
        square_probability = cache(lambda: face_check(image, [guess])[0]) if face_check is not None else None
        found = _in_centre_square(detector, image, guess, square_probability, search, config, face_check)
        if not found and search.fallback_min_score is not None:
            found = _centre_square_if_face(detector, image, guess, square_probability, search)
    return sorted(found, key=lambda d: d.area, reverse=True)


def _in_centre_square(detector: FaceDetector, image: np.ndarray, guess: Detection,
                      square_probability: Callable[[], float] | None, search: MaskedFaceSearch, config: DetectorConfig,
                      face_check: FaceCheck | None) -> list[Detection]:
    """The two passes on the picture's centred square (`guess`) alone, in picture pixels, when the picture is not
    square and the face check finds the square face-like enough (`MaskedFaceSearch.centre_square_min_face_probability`)."""
    least = search.centre_square_min_face_probability
    if guess.width == image.shape[1] and guess.height == image.shape[0]:
        return []  # a square picture: its centred square is the picture, already searched
    if least is None or square_probability is None or square_probability() < least:
        return []
    x0, y0 = int(guess.box[0]), int(guess.box[1])
    side = int(guess.width)
    square = np.ascontiguousarray(image[y0:y0 + side, x0:x0 + side])
    picture_in_square = np.array([-x0, -y0], np.float32)  # the picture's offset in the square cut out of it
    return [d.in_picture(image.shape[1], image.shape[0], offset=picture_in_square)
            for d in _two_passes(detector, square, search, config, face_check)]


def _centre_square_if_face(detector: FaceDetector, image: np.ndarray, guess: Detection,
                           square_probability: Callable[[], float] | None, search: MaskedFaceSearch) -> list[Detection]:
    """The centre square (`guess`) as the one face when O-Net rates it a face and the face check agrees, or when
    the face check alone is sure enough (`MaskedFaceSearch.fallback_min_face_probability`)."""
    if square_probability is not None:
        face_probability = square_probability()
        sure = search.fallback_min_face_probability
        if sure is not None and face_probability >= sure:
            return [guess]
        if face_probability < search.min_face_probability:
            return []
    return [guess] if detector.refine(image, [guess.box], min_score=search.fallback_min_score)[0] is not None else []
