"""Honest confidence on real pictures (issue 16): what the mask and emotion tabs say about a face."""
from __future__ import annotations

from pathlib import Path

from pipeline import overlay
from pipeline.heads import MASK_SURE
from shared_data import MISC_DIR

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_an_emotion_read_on_a_masked_face_says_the_mouth_is_covered(lab) -> None:
    masked = lab.analyze(EXAMPLES / "astronaut_mask.jpg", emotion=True).faces
    assert len(masked) == 1 and masked[0].emotion.mouth_covered is True
    text, _ = overlay.emotion_text(masked[0].emotion.top, masked[0].emotion.confidence, masked[0].emotion.mouth_covered)
    assert text.endswith("? " + overlay.percent(masked[0].emotion.confidence) + " (mouth covered)")
    # The same face without the mask: a firm word, no caveat.
    plain = lab.analyze(EXAMPLES / "astronaut.jpg", emotion=True).faces
    assert len(plain) == 1 and plain[0].emotion.mouth_covered is False
    assert overlay.emotion_text(plain[0].emotion.top, plain[0].emotion.confidence, False)[0].startswith("happy ")


def test_an_unsure_mask_verdict_does_not_cover_the_mouth(lab) -> None:
    # A bare face in a gray photo: the mask head, trained on colour, is unsure of it ("mask?"); the emotion
    # must not claim the mouth is covered.
    face, = lab.analyze(MISC_DIR / "grayscale_photo_single_person_cameraman.png", mask=True, emotion=True).faces
    assert face.mask.probability < MASK_SURE and face.emotion.mouth_covered is False
    alone, = lab.analyze(MISC_DIR / "grayscale_photo_single_person_cameraman.png", emotion=True).faces
    assert alone.emotion.mouth_covered is False
    assert "mouth covered" not in overlay.emotion_text(alone.emotion.top, alone.emotion.confidence,
                                                       alone.emotion.mouth_covered)[0]


def test_a_mask_verdict_computed_with_the_emotion_is_reused(lab) -> None:
    analysis = lab.analyze(EXAMPLES / "astronaut_mask.jpg", mask=True, emotion=True)
    face = analysis.faces[0]
    assert face.mask.label == "mask" and face.emotion.mouth_covered is True
