"""Detection and alignment on real photos from ../shared/data/misc, with the real MTCNN."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from shared_data import MISC_DIR
from pipeline.alignment import LANDMARK_TEMPLATE_160, align_faces, similarity_transform

GROUP = MISC_DIR / "multiple_faces_group_photo.jpg"
ASTRONAUT = MISC_DIR / "single_face_astronaut.png"
# The astronaut's face, in the 512x512 picture's pixels (checked by eye).
ASTRONAUT_FACE_CENTRE = (225, 117)


def centre(box: np.ndarray) -> tuple[float, float]:
    return float(box[0] + box[2]) / 2, float(box[1] + box[3]) / 2


def test_single_face_photo_gives_one_face_on_the_face(lab) -> None:
    rgb, faces = lab.detect(ASTRONAUT)
    assert len(faces) == 1
    x, y = centre(faces[0].box)
    assert abs(x - ASTRONAUT_FACE_CENTRE[0]) < 25 and abs(y - ASTRONAUT_FACE_CENTRE[1]) < 25
    assert faces[0].score > 0.95 and faces[0].landmarks.shape == (5, 2)
    assert faces[0].box.dtype == np.float32


@pytest.mark.parametrize(
    "name, count",
    [
        ("multiple_faces_group_photo.jpg", 6),
        ("grayscale_multiple_faces_group_photo.jpg", 6),
        ("rgba_png_with_alpha_single_face_astronaut.png", 1),
        ("grayscale_photo_single_person_cameraman.png", 1),
        ("no_face_coffee_cup.png", 0),
        ("no_face_random_noise.jpg", 0),
        ("no_face_rocket_launch_outdoor.jpg", 0),
        ("no_human_face_cat.png", 0),
    ],
)
def test_face_counts_on_real_photos(lab, name: str, count: int) -> None:
    _, faces = lab.detect(MISC_DIR / name)
    assert len(faces) == count


@pytest.mark.parametrize("name, count", [("multiple_faces_group_photo.jpg", 6), ("grayscale_multiple_faces_group_photo.jpg", 6)])
def test_the_mask_check_counts_each_person_once(lab, name: str, count: int) -> None:
    """The mask check's second, low-threshold pass adds masked faces MTCNN misses, not parts of faces
    it found: on the group photo it once added a box on one man's hair, 42 % inside his face."""
    assert len(lab.analyze(MISC_DIR / name, mask=True).faces) == count


def test_large_picture_boxes_are_in_original_coordinates(lab) -> None:
    large = MISC_DIR / "large_4800px_multiple_faces_upscaled.jpg"
    rgb, faces = lab.detect(large)
    assert rgb.shape[1] == 4800 and len(faces) == 6
    # The 4800 px picture is the group photo upscaled 4x: the same faces at 4x the coordinates.
    _, small_faces = lab.detect(GROUP)
    large_centres = sorted(centre(f.box) for f in faces)
    small_centres = sorted(centre(f.box) for f in small_faces)
    for (lx, ly), (sx, sy) in zip(large_centres, small_centres):
        assert abs(lx / 4 - sx) < 8 and abs(ly / 4 - sy) < 8


def test_exif_rotated_copy_finds_the_face_where_it_is_shown(lab) -> None:
    exif = Image.Exif()
    exif[0x0112] = 8  # "rotate 90 CCW to display"
    stored = Image.open(ASTRONAUT).convert("RGB").transpose(Image.Transpose.ROTATE_270)
    buffer = io.BytesIO()
    stored.save(buffer, "JPEG", exif=exif, quality=95)
    rgb, faces = lab.detect(buffer.getvalue())
    assert rgb.shape == (512, 512, 3) and len(faces) == 1
    x, y = centre(faces[0].box)
    assert abs(x - ASTRONAUT_FACE_CENTRE[0]) < 25 and abs(y - ASTRONAUT_FACE_CENTRE[1]) < 25


def test_faces_are_sorted_largest_first(lab) -> None:
    _, faces = lab.detect(GROUP)
    areas = [f.area for f in faces]
    assert areas == sorted(areas, reverse=True)


def test_landmark_alignment_makes_faces_upright_and_equally_sized(lab) -> None:
    rgb, faces = lab.detect(GROUP)
    crops = align_faces(rgb, faces, "landmarks")
    assert crops.shape == (6, 160, 160, 3) and crops.dtype == np.uint8
    template_eye_distance = np.linalg.norm(LANDMARK_TEMPLATE_160[1] - LANDMARK_TEMPLATE_160[0])
    for crop in crops:
        # Detect again inside the aligned crop: the eyes must be level and template-sized.
        found = lab.detector.detect(crop)
        assert found, "the aligned crop no longer shows a face"
        left_eye, right_eye = found[0].landmarks[:2]
        roll = np.degrees(np.arctan2(right_eye[1] - left_eye[1], right_eye[0] - left_eye[0]))
        assert abs(roll) < 5
        # Turned heads show shorter eye distances; the fit over all 5 points still bounds the scale.
        assert abs(np.linalg.norm(right_eye - left_eye) / template_eye_distance - 1) < 0.25


def test_large_faces_align_as_from_the_whole_picture_shrunk(lab) -> None:
    # A big face is shrunk before warping (PIL's box reduce) in a region around it only: the crops must be
    # those of shrinking the whole picture, faces near the edge included.
    from pipeline import alignment

    rgb, faces = lab.detect(MISC_DIR / "large_4800px_multiple_faces_upscaled.jpg")
    assert len(faces) >= 3
    picture = Image.fromarray(rgb)
    for face in faces:
        template = alignment.LANDMARK_TEMPLATE_160
        forward = similarity_transform(face.landmarks, template)
        inverse = np.linalg.inv(np.vstack([forward, [0, 0, 1]]))[:2]
        factor = int(1 / float(np.hypot(*forward[:, 0])))
        assert factor >= 2, "this face is not shrunk before warping"
        whole = picture.reduce(factor).transform((160, 160), Image.AFFINE, (inverse / factor).flatten().tolist(),
                                                 resample=Image.BILINEAR)
        np.testing.assert_array_equal(align_faces(rgb, [face], "landmarks")[0], np.asarray(whole))


def test_box_alignment_gives_same_shape(lab) -> None:
    rgb, faces = lab.detect(GROUP)
    crops = align_faces(rgb, faces, "box")
    assert crops.shape == (6, 160, 160, 3)
    assert crops.std() > 20  # real picture content


def test_similarity_transform_recovers_a_known_transform() -> None:
    rng = np.random.default_rng(0)
    points = rng.uniform(0, 100, size=(5, 2))
    angle, scale, shift = 0.3, 1.7, np.array([12.0, -4.0])
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    target = scale * points @ rotation.T + shift
    matrix = similarity_transform(points, target)
    np.testing.assert_allclose(matrix[:, :2], scale * rotation, atol=1e-9)
    np.testing.assert_allclose(matrix[:, 2], shift, atol=1e-9)


def test_faster_mtcnn_finds_the_faces_the_reference_implementation_finds(lab) -> None:
    """pipeline.mtcnn re-implements facenet-pytorch's detect_face for speed; on real photos it must
    find the same main face, in the same place, with the same landmarks."""
    import random

    import torch
    from facenet_pytorch import MTCNN
    from facenet_pytorch.models.utils.detect_face import detect_face

    from shared_data import LFW_DIR
    from pipeline.detection import iou

    random.seed(1)
    pictures = random.sample(sorted(LFW_DIR.glob("*/*.jpg")), 40) + [GROUP]
    nets = MTCNN(device="cpu").eval()  # facenet-pytorch's own networks, not ours
    agree = 0
    for path in pictures:
        rgb = np.asarray(Image.open(path).convert("RGB"))
        with torch.inference_mode():
            boxes, points = detect_face(rgb[None], 20, nets.pnet, nets.rnet, nets.onet, [0.6, 0.7, 0.7], 0.709, "cpu")
        boxes = np.asarray(boxes[0] if boxes[0] is not None else [], dtype=np.float32).reshape(-1, 5)
        points = np.asarray(points[0] if points[0] is not None else [], dtype=np.float32).reshape(-1, 5, 2)
        confident = boxes[:, 4] >= lab.detector.config.min_score
        boxes, points = boxes[confident], points[confident]
        ours = lab.detector.detect(rgb)
        if not len(boxes):
            agree += not ours
            continue
        largest = int(np.argmax((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])))
        match = max(ours, key=lambda d: iou(d.box, boxes[largest, :4]), default=None)
        width = boxes[largest, 2] - boxes[largest, 0]
        agree += (match is not None and iou(match.box, boxes[largest, :4]) > 0.8
                  and np.abs(match.landmarks - points[largest]).max() < 0.08 * width)
    assert agree >= 0.95 * len(pictures), f"{agree}/{len(pictures)} pictures agree with facenet-pytorch"


def test_a_later_pass_skips_the_faces_an_earlier_pass_found(lab) -> None:
    """The mask check's relaxed pass (`new_faces_only`) runs O-Net only on boxes away from the normal pass's
    faces: it no longer finds those faces again, and the faces it adds beside them (away from every face of the
    normal pass, as the search keeps them) are the ones it adds when it looks at everything."""
    from pipeline.detection import iou
    from pipeline.mask_detection import MaskedFaceSearch
    from shared_data import REPO_ROOT, lfw_image

    detector = lab.detector
    search = MaskedFaceSearch()
    passes = search.passes(detector.config)

    def away(faces: list, first: list) -> np.ndarray:
        return np.array([d.box for d in faces if all(iou(d.box, f.box) <= search.max_overlap for f in first)]).reshape(-1, 4)

    added = 0
    for path in (GROUP, lfw_image("Aaron_Peirsol", 1), REPO_ROOT / "examples" / "astronaut_mask.jpg"):
        picture = np.asarray(Image.open(path).convert("RGB"))
        first, relaxed = detector.detect_passes(picture, passes)
        first_again, new = detector.detect_passes(picture, passes, new_faces_only=True)
        assert first and len(first_again) == len(first)
        np.testing.assert_allclose([d.box for d in first_again], [d.box for d in first], atol=1e-3)
        # Looking at everything, the relaxed pass finds each of the normal pass's faces again; skipping them, fewer.
        assert all(any(iou(d.box, f.box) > 0.5 for d in relaxed) for f in first)
        assert len(new) < len(relaxed)
        assert away(new, first).shape == away(relaxed, first).shape
        np.testing.assert_allclose(away(new, first), away(relaxed, first), atol=1e-3)
        added += len(away(new, first))
    assert added >= 1  # the group photo's relaxed pass boxes more than the faces (a shirt, a hand)


def test_threshold_sets_sharing_one_picture_find_what_separate_runs_find(lab) -> None:
    """detect_passes shares P-Net's pyramid and the R-Net / O-Net outputs of crops already run between
    threshold sets (the mask check's two passes): the faces must be those of separate detections."""
    from dataclasses import replace

    from shared_data import REPO_ROOT, lfw_image

    detector = lab.detector
    lenient = replace(detector.config, thresholds=(0.5, 0.5, 0.5), min_score=0.8)
    for path in (GROUP, lfw_image("Aaron_Peirsol", 1), REPO_ROOT / "examples" / "astronaut_mask.jpg"):
        picture = np.asarray(Image.open(path).convert("RGB"))
        shared = detector.detect_passes(picture, [detector.config, lenient])
        separate = [detector.detect(picture), detector.detect(picture, lenient)]
        assert [len(faces) for faces in shared] == [len(faces) for faces in separate]
        assert len(shared[1]) >= 1
        for together, alone in zip(shared, separate):
            for a, b in zip(together, alone):
                np.testing.assert_allclose(a.box, b.box, atol=1e-3)
                np.testing.assert_allclose(a.landmarks, b.landmarks, atol=1e-3)
