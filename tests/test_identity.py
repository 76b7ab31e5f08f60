"""Enroll, identify, verify end to end: real LFW photos, real MTCNN, real casia weights, calibrated thresholds."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageFilter

from shared_data import DATA_DIR, MISC_DIR, lfw_pairs, lfw_people
from pipeline.errors import InvalidNameError, NoFaceError
from pipeline.gallery import InMemoryGallery
from pipeline.identity import (
    MAX_YAW_RATIO,
    MIN_FACE_PIXELS,
    enroll,
    identification_threshold,
    identify,
    thresholds,
    verify,
)
from tests.shared import skip_module_without_shared_data

skip_module_without_shared_data()  # the pairs and people below are read while collecting

ALL_PEOPLE = lfw_people(min_images=1)
# A fixed spread of people over the alphabet: 50 to enroll (each has a second picture to identify) and
# 40 who are never enrolled.
_TWO_OR_MORE = sorted(name for name, paths in ALL_PEOPLE.items() if len(paths) >= 2)
ENROLLED = _TWO_OR_MORE[:: len(_TWO_OR_MORE) // 50][:50]
STRANGERS = sorted(name for name, paths in ALL_PEOPLE.items() if len(paths) == 1)[::50][:40]
# Verification sample: 2 matched + 2 mismatched pairs from each of the 10 folds.
PAIRS = [pair for fold in range(10) for same in (True, False)
         for pair in [p for p in lfw_pairs() if p.fold == fold and p.same == same][100:102]]


def central(identifications, size=250):
    """LFW's subject: the face nearest the picture centre (a bystander can be larger)."""
    return min(identifications, key=lambda f: ((f.box[0] + f.box[2]) / 2 - size / 2) ** 2 + ((f.box[1] + f.box[3]) / 2 - size / 2) ** 2)


@pytest.fixture(scope="module")
def gallery(lab) -> InMemoryGallery:
    gallery = InMemoryGallery()
    for name in ENROLLED:
        enroll(lab, gallery, name.replace("_", " "), ALL_PEOPLE[name][0])
    return gallery


def test_thresholds_are_calibrated_and_ordered() -> None:
    casia = thresholds("casia-webface")
    assert 0.0 < casia["balanced"] < casia["strict"] < 1.0
    vggface2 = thresholds("vggface2")
    assert vggface2["balanced"] < vggface2["strict"]


@pytest.mark.slow
def test_enrolled_people_are_identified_from_another_picture(lab, gallery) -> None:
    assert len(gallery) == len(ENROLLED) == 50
    correct = 0
    for name in ENROLLED:
        faces = identify(lab, gallery, ALL_PEOPLE[name][1], "balanced")
        subject = central(faces)
        correct += subject.candidates[0].name == name.replace("_", " ")
        assert len(subject.candidates) == 3
    assert correct / len(ENROLLED) >= 0.95, f"top-1 {correct}/{len(ENROLLED)}"


@pytest.mark.slow
def test_people_never_enrolled_are_unknown_at_the_strict_threshold(lab, gallery) -> None:
    unknown = 0
    for name in STRANGERS:
        subject = central(identify(lab, gallery, ALL_PEOPLE[name][0], "strict"))
        unknown += subject.name is None and subject.label == "unknown"
        assert subject.threshold == identification_threshold("casia-webface", "strict", gallery.embedding_count)
    assert unknown / len(STRANGERS) >= 0.95, f"unknown {unknown}/{len(STRANGERS)}"


def test_strict_identification_threshold_rises_with_the_gallery_and_balanced_does_not() -> None:
    pair = thresholds("casia-webface")
    assert identification_threshold("casia-webface", "strict", 1) == pair["strict"]
    ladder = [identification_threshold("casia-webface", "strict", n) for n in (1, 10, 100, 1000, 10**6)]
    assert ladder == sorted(ladder) and ladder[2] > ladder[0] + 0.05 and ladder[-1] < 1.0
    assert {identification_threshold("casia-webface", "balanced", n) for n in (1, 100, 10**6)} == {pair["balanced"]}


@pytest.mark.slow
def test_verification_accuracy_at_the_calibrated_balanced_threshold(lab) -> None:
    correct = 0
    for pair in PAIRS:
        result = verify(lab, pair.first, pair.second)
        assert result.operating_point == "balanced" and result.threshold == thresholds("casia-webface")["balanced"]
        correct += result.same_person == pair.same
    assert len(PAIRS) == 40
    assert correct / len(PAIRS) >= 0.97, f"{correct}/{len(PAIRS)}"


def test_enroll_adds_photos_to_the_same_person_and_keeps_only_a_thumbnail(lab) -> None:
    gallery = InMemoryGallery()
    paths = ALL_PEOPLE["Tony_Blair"][:2]
    first = enroll(lab, gallery, "Tony Blair", paths[0])
    second = enroll(lab, gallery, "  Tony   Blair ", paths[1])
    assert first.person.embeddings == 1 and second.person.embeddings == 2
    assert [p.name for p in gallery.people()] == ["Tony Blair"]
    thumbnail = gallery.people()[0].thumbnail
    assert thumbnail.startswith(b"\xff\xd8") and len(thumbnail) < 10_000  # a small JPEG, not the photo
    assert first.crop.shape == (160, 160, 3) and first.warnings == ()


def test_enroll_refuses_pictures_without_a_face_and_bad_names(lab) -> None:
    gallery = InMemoryGallery()
    with pytest.raises(NoFaceError, match="No face"):
        enroll(lab, gallery, "Cup", MISC_DIR / "no_face_coffee_cup.png")
    with pytest.raises(InvalidNameError):
        enroll(lab, gallery, "   ", ALL_PEOPLE["Tony_Blair"][0])
    assert len(gallery) == 0


def test_several_faces_enroll_the_largest_and_say_so(lab) -> None:
    gallery = InMemoryGallery()
    result = enroll(lab, gallery, "Group", MISC_DIR / "multiple_faces_group_photo.jpg")
    assert result.notes and "largest" in result.notes[0]
    group = lab.analyze(MISC_DIR / "multiple_faces_group_photo.jpg")
    np.testing.assert_allclose(result.box, group.faces[0].box)


def test_quality_gate_warns_about_small_and_blurry_faces(lab, tmp_path) -> None:
    photo = Image.open(DATA_DIR / "identity" / "celebs" / "paul_rudd" / "1.jpg").convert("RGB")
    gallery = InMemoryGallery()
    sharp = enroll(lab, gallery, "Paul", photo)
    assert sharp.warnings == (), sharp.warnings
    assert abs(sharp.quality.yaw_ratio) < MAX_YAW_RATIO

    blurry = enroll(lab, gallery, "Paul", photo.filter(ImageFilter.GaussianBlur(photo.width / 160 * 3)))
    assert any("blurry" in warning for warning in blurry.warnings), blurry.quality

    scale = 0.6 * MIN_FACE_PIXELS / sharp.quality.face_pixels
    small = photo.resize((int(photo.width * scale), int(photo.height * scale)), Image.LANCZOS)
    tiny = enroll(lab, gallery, "Paul", small)
    assert tiny.quality.face_pixels < MIN_FACE_PIXELS
    assert any("small" in warning for warning in tiny.warnings), tiny.quality
    assert gallery.person("Paul").embeddings == 3  # warnings do not refuse


def test_identify_marks_unknown_faces_and_handles_empty_inputs(lab) -> None:
    empty = InMemoryGallery()
    faces = identify(lab, empty, ALL_PEOPLE["Tony_Blair"][0])
    assert faces and all(face.label == "unknown" and face.candidates == [] for face in faces)
    assert identify(lab, empty, MISC_DIR / "no_face_random_noise.jpg") == []


def test_verify_reports_its_threshold_notes_and_missing_faces(lab) -> None:
    bush = ALL_PEOPLE["George_W_Bush"]
    result = verify(lab, bush[0], MISC_DIR / "multiple_faces_group_photo.jpg", "strict")
    assert result.operating_point == "strict" and result.threshold == thresholds("casia-webface")["strict"]
    assert not result.same_person
    assert any("second picture" in note and "largest" in note for note in result.notes)
    assert result.crop_a.shape == result.crop_b.shape == (160, 160, 3)
    with pytest.raises(NoFaceError, match="second"):
        verify(lab, bush[0], MISC_DIR / "no_face_coffee_cup.png")
