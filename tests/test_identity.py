"""Enroll, identify, verify end to end: real LFW photos, real MTCNN, real casia weights, calibrated thresholds."""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image, ImageFilter

from shared_data import DATA_DIR, MISC_DIR, lfw_pairs, lfw_people
from pipeline import overlay
from pipeline.detection import TIGHT_CROP_BORDERS, framed_small
from pipeline.errors import InvalidNameError, NoFaceError
from pipeline.gallery import InMemoryGallery
from pipeline.identity import (
    MAX_YAW_RATIO,
    MIN_FACE_PIXELS,
    POPULATION_SAMPLE,
    Population,
    enroll,
    gallery_population,
    identification_threshold,
    identify,
    open_set_thresholds,
    thresholds,
    verify,
    verify_thresholds,
)
from pipeline.images import load_rgb
from tests.shared import skip_module_without_shared_data

skip_module_without_shared_data()  # the pairs and people below are read while collecting

ALL_PEOPLE = lfw_people(min_images=1)
# A fixed spread of people over the alphabet: 50 to enroll (each has a second picture to identify) and
# 40 who are never enrolled.
_TWO_OR_MORE = sorted(name for name, paths in ALL_PEOPLE.items() if len(paths) >= 2)
ENROLLED = _TWO_OR_MORE[:: len(_TWO_OR_MORE) // 50][:50]
STRANGERS = sorted(name for name, paths in ALL_PEOPLE.items() if len(paths) == 1)[::50][:40]
# Strangers for the default point: people with 2+ photos, never enrolled. (People with a single photo made the
# impostor tail the thresholds are read from, training/calibrate_thresholds.py: not a fair test of them.)
UNSEEN_STRANGERS = [name for name in _TWO_OR_MORE[len(_TWO_OR_MORE) // 100 :: len(_TWO_OR_MORE) // 40]
                    if name not in ENROLLED][:40]
RMFD_DIR = DATA_DIR / "identity" / "rmfd_dev"
RMFD_PEOPLE = sorted(p.name for p in RMFD_DIR.iterdir() if p.is_dir())
# A matched LFW pair (one face in each picture) whose similarity, 0.50, lies between a one-person gallery's
# "possible match" and name thresholds at "balanced".
POSSIBLE_PAIR = ("Bruce_Springsteen", 0, 1)
TIGHT_CROP = "baobeier/0_0_baobeier_0014.jpg"  # one of rmfd_dev's 15 photos found only with the border retry
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
        faces = identify(lab, gallery, ALL_PEOPLE[name][1], "balanced").faces
        subject = central(faces)
        correct += subject.candidates[0].name == name.replace("_", " ")
        assert len(subject.candidates) == 3
    assert correct / len(ENROLLED) >= 0.95, f"top-1 {correct}/{len(ENROLLED)}"


@pytest.mark.slow
def test_people_never_enrolled_are_unknown_at_the_strict_threshold(lab, gallery) -> None:
    unknown = 0
    for name in STRANGERS:
        subject = central(identify(lab, gallery, ALL_PEOPLE[name][0], "strict").faces)
        unknown += subject.name is None and subject.label == "unknown"
        assert subject.threshold == identification_threshold("casia-webface", "strict", gallery.embedding_count,
                                                            gallery_population(gallery))
    assert unknown / len(STRANGERS) >= 0.95, f"unknown {unknown}/{len(STRANGERS)}"


def test_identification_thresholds_rise_with_the_gallery_and_with_its_population() -> None:
    for point in ("balanced", "strict"):
        ladder = [identification_threshold("casia-webface", point, n, Population(0.0, 1000)) for n in (1, 10, 100, 1000)]
        assert ladder == sorted(ladder) and ladder[2] > ladder[0] + 0.05 and ladder[-1] < 1.0
    lfw_like, alike = Population(0.0, 45), Population(0.26, 45)  # rmfd_dev's different people: about 0.26
    assert identification_threshold("casia-webface", "balanced", 10, alike) > identification_threshold(
        "casia-webface", "balanced", 10, lfw_like) + 0.15
    # A gallery too small to show its population is judged cautiously: as verify is.
    assert identification_threshold("casia-webface", "balanced", 1) == verify_thresholds("casia-webface")["balanced"]
    for point in ("balanced", "strict"):
        levels = open_set_thresholds("casia-webface", point, 10, lfw_like)
        assert levels.possible < levels.named
    assert verify_thresholds("casia-webface")["balanced"] < verify_thresholds("casia-webface")["strict"]


@pytest.mark.slow
def test_verify_at_the_default_point_never_confirms_different_people_and_flags_close_matches(lab) -> None:
    """Verify is cautious (it must hold on rmfd_dev too): on LFW it confirms about 86 % of matched pairs and
    shows most of the rest as "possibly the same person" (benchmarks/results/identity_domains.json)."""
    verdicts = {True: [], False: []}
    for pair in PAIRS:
        result = verify(lab, pair.first, pair.second)
        assert result.operating_point == "balanced" and result.threshold == verify_thresholds("casia-webface")["balanced"]
        verdicts[pair.same].append("same" if result.same_person else "possible" if result.possible else "different")
    assert len(PAIRS) == 40
    assert "same" not in verdicts[False], verdicts
    assert verdicts[True].count("same") >= 16 and verdicts[True].count("different") <= 2, verdicts


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
    faces = identify(lab, empty, ALL_PEOPLE["Tony_Blair"][0]).faces
    assert faces and all(face.label == "unknown" and face.candidates == [] for face in faces)
    assert identify(lab, empty, MISC_DIR / "no_face_random_noise.jpg").faces == []


def test_verify_reports_its_threshold_notes_and_missing_faces(lab) -> None:
    bush = ALL_PEOPLE["George_W_Bush"]
    result = verify(lab, bush[0], MISC_DIR / "multiple_faces_group_photo.jpg", "strict")
    assert result.operating_point == "strict" and result.threshold == verify_thresholds("casia-webface")["strict"]
    assert not result.same_person
    assert any("second picture" in note and "largest" in note for note in result.notes)
    assert result.crop_a.shape == result.crop_b.shape == (160, 160, 3)
    with pytest.raises(NoFaceError, match="second"):
        verify(lab, bush[0], MISC_DIR / "no_face_coffee_cup.png")


def test_a_tight_head_crop_enrolls_and_is_found_in_every_tab(lab) -> None:
    """rmfd_dev's photos are cut close around the head; MTCNN alone finds no face in this one."""
    crop = load_rgb(RMFD_DIR / TIGHT_CROP)
    assert lab.detector.detect(crop, replace(lab.detector.config, retry_with_border=False)) == []
    gallery = InMemoryGallery()
    result = enroll(lab, gallery, "Tight crop", crop)
    assert gallery.person("Tight crop").embeddings == 1
    assert result.quality.face_pixels > 0.6 * crop.shape[1]  # the face fills the picture
    assert len(lab.analyze(crop, mask=True, emotion=True).faces) == 1
    assert identify(lab, gallery, crop).faces[0].name == "Tight crop"


def test_a_large_tight_crop_is_found_where_it_is_without_a_full_size_copy(lab) -> None:
    """The border retry on a 4,000-px upload: its bordered copy is made from the picture shrunk to detection size
    (framed_small), and the face found there is mapped back onto the large picture: where the same picture at
    1,500 px has it (both are shrunk to the same detection copy; the 107-px original is seen at another scale)."""
    crop = load_rgb(RMFD_DIR / "shaofeng/0_0_shaofeng_0014.jpg")  # found large only with the border retry

    def upscaled(side: int) -> tuple[np.ndarray, float]:
        factor = side / max(crop.shape[:2])
        size = (round(crop.shape[1] * factor), round(crop.shape[0] * factor))
        return np.asarray(Image.fromarray(crop).resize(size, Image.BICUBIC)), factor

    (large, large_factor), (medium, medium_factor) = upscaled(4000), upscaled(1500)
    framed, _, _ = framed_small(large, TIGHT_CROP_BORDERS[0], lab.detector.config.max_side)
    assert max(framed.shape[:2]) <= lab.detector.config.max_side
    assert all(lab.detector.detect(picture, replace(lab.detector.config, retry_with_border=False)) == []
               for picture in (large, medium))
    (large_face,), (medium_face,) = lab.detector.detect(large), lab.detector.detect(medium)
    tolerance = 0.02 * crop.shape[1]  # in the original's pixels
    assert np.abs(large_face.box / large_factor - medium_face.box / medium_factor).max() < tolerance
    assert np.abs(large_face.landmarks / large_factor - medium_face.landmarks / medium_factor).max() < tolerance


@pytest.mark.slow
def test_strangers_stay_unknown_at_the_default_point_on_lfw_and_on_rmfd_dev(lab, gallery) -> None:
    named = [central(identify(lab, gallery, ALL_PEOPLE[name][0]).faces).name for name in UNSEEN_STRANGERS]
    assert len(UNSEEN_STRANGERS) == 40 and sum(n is not None for n in named) <= 1, named

    # East Asian public figures, tight crops: different people score far higher than on LFW.
    people = RMFD_PEOPLE[::3][:20]
    rmfd = InMemoryGallery()
    for person in people[:10]:
        enroll(lab, rmfd, person, sorted((RMFD_DIR / person).glob("*.jpg"))[0])
    assert gallery_population(rmfd).mean_similarity > 0.15
    strangers = [photo for person in people[10:] for photo in sorted((RMFD_DIR / person).glob("*.jpg"))]
    named = [face.name for photo in strangers for face in identify(lab, rmfd, photo).faces[:1]]
    assert len(strangers) >= 40 and sum(n is not None for n in named) <= 0.05 * len(strangers), named


def test_a_face_named_as_someone_else_is_not_enrolled_under_a_new_name(lab) -> None:
    """The astronaut's photo and its mirror image (the same photo left in the form, near enough): the second under
    another name is refused, naming the first, unless enroll_anyway; under the same name it is one more photo."""
    from pathlib import Path

    from pipeline.errors import AlreadyEnrolledError

    examples = Path(__file__).resolve().parent.parent / "examples"
    photo, mirrored = examples / "astronaut.jpg", examples / "astronaut_mirror.jpg"
    gallery = InMemoryGallery()
    enroll(lab, gallery, "First Name", photo)
    with pytest.raises(AlreadyEnrolledError, match="already matches First Name") as refused:
        enroll(lab, gallery, "Other Name", mirrored)
    assert refused.value.match == "First Name" and [p.name for p in gallery.people()] == ["First Name"]
    assert enroll(lab, gallery, "First Name", mirrored).person.embeddings == 2
    anyway = enroll(lab, gallery, "Other Name", mirrored, enroll_anyway=True)
    assert anyway.person.name == "Other Name"
    assert any(note.startswith("This face also matches First Name (similarity ") and "strict threshold" in note
               for note in anyway.notes), anyway.notes  # enrolled anyway: still said


def test_a_face_that_matches_someone_else_only_at_the_balanced_point_is_enrolled_with_a_note(lab) -> None:
    """Two LFW photos of one man (similarity 0.618: between the balanced and strict thresholds of a one-person
    gallery): the second under another name was enrolled without a word, and identify then answered either
    name. It is enrolled (people who look alike meet at the balanced point too), with a note naming the first."""
    folder = DATA_DIR / "identity" / "lfw" / "George_W_Bush"
    gallery = InMemoryGallery()
    enroll(lab, gallery, "George", folder / "George_W_Bush_0007.jpg")
    result = enroll(lab, gallery, "Bob", folder / "George_W_Bush_0065.jpg")
    assert sorted(p.name for p in gallery.people()) == ["Bob", "George"]
    assert any(note.startswith("This face also matches George (similarity ") and "balanced threshold" in note
               and "delete one of the two names" in note for note in result.notes), result.notes


def test_a_name_typed_in_other_capitals_adds_to_the_person_enrolled(lab) -> None:
    """"tony blair" after "Tony Blair" made a second person (browser pass: two photos that did not match each
    other at the strict point), and identify answered either name: now the photo goes to the person enrolled,
    and enroll says so."""
    folder = DATA_DIR / "identity" / "lfw" / "Tony_Blair"
    gallery = InMemoryGallery()
    enroll(lab, gallery, "Tony Blair", folder / "Tony_Blair_0018.jpg")
    result = enroll(lab, gallery, "tony  BLAIR", folder / "Tony_Blair_0032.jpg")
    assert [(p.name, p.embeddings) for p in gallery.people()] == [("Tony Blair", 2)]
    assert result.person.name == "Tony Blair" and "Added to Tony Blair" in " ".join(result.notes)


def test_a_marginal_score_is_a_possible_match_not_a_name(lab) -> None:
    """A real matched LFW pair whose similarity lies between the two thresholds of a one-person gallery."""
    first, second = ALL_PEOPLE[POSSIBLE_PAIR[0]][POSSIBLE_PAIR[1]], ALL_PEOPLE[POSSIBLE_PAIR[0]][POSSIBLE_PAIR[2]]
    gallery = InMemoryGallery()
    enroll(lab, gallery, "Someone", first)
    face = central(identify(lab, gallery, second, "balanced").faces)
    assert face.possible_threshold <= face.similarity < face.threshold
    assert face.name is None and face.label == "unknown" and face.possible == "Someone"
    text, colour = overlay.identity_text(face.name, face.similarity, face.possible)
    assert text.startswith("possible match: Someone") and colour == overlay.AMBER
    # Three decimals on the pictures, as in the verdict's line: a similarity below its threshold never reads as
    # equal to it (0.618 against 0.620 drew "0.62" on "strict 0.62").
    assert text == f"possible match: Someone ({face.similarity:.3f})"
    assert overlay.similarity_text(face.similarity) < overlay.similarity_text(face.threshold)
    check = verify(lab, first, second, "balanced")
    assert not check.same_person and check.possible


def test_the_open_set_rule_adds_little_to_a_100k_search() -> None:
    """gallery_search.json: 100k embeddings are searched in about 7 ms of the 10 ms budget. The rule reads a
    fixed sample of the gallery, so it costs the same at 1k and at 100k."""
    rng = np.random.default_rng(0)
    costs = {}
    for size in (1_000, 100_000):
        vectors = rng.standard_normal((size, 512), dtype=np.float32)
        gallery = InMemoryGallery(max_embeddings=None)
        for person, start in enumerate(range(0, size, 2)):
            gallery.add(f"p{person}", vectors[start : start + 2])
        timings = []
        for _ in range(30):
            started = time.perf_counter()
            open_set_thresholds("casia-webface", "balanced", gallery.embedding_count, gallery_population(gallery))
            timings.append(time.perf_counter() - started)
        costs[size] = float(np.median(timings)) * 1000
        assert len(gallery.sample(POPULATION_SAMPLE)[0]) == POPULATION_SAMPLE
    assert costs[100_000] < 1.0 and costs[100_000] < 3 * costs[1_000] + 0.2, costs
