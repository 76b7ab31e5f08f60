"""The stream tracker follows real faces moving across frames and keeps their identities apart."""

from __future__ import annotations

import numpy as np

from shared_data import lfw_image
from benchmarks.moving_faces import MovingFace, render_frames
from pipeline.tracking import FaceTracker

FACES = [
    MovingFace(lfw_image("Aaron_Peirsol", 1), start=(20, 60), velocity=(12, 3)),  # left to right
    MovingFace(lfw_image("Abdullah_Gul", 1), start=(460, 300), velocity=(-12, -4)),  # right to left
]


def nearest(track_boxes, corner):
    centre = np.array([corner[0] + 80, corner[1] + 80])  # the face sits in the middle of its picture
    distances = [np.linalg.norm((box[:2] + box[2:]) / 2 - centre) for box in track_boxes]
    return int(np.argmin(distances)), min(distances)


def test_tracker_follows_two_crossing_faces_with_stable_ids(lab) -> None:
    tracker = FaceTracker(lab, redetect_every=5)
    ids_by_face: list[set[int]] = [set(), set()]
    for frame, corners in render_frames(FACES, frames=36):
        tracks = tracker.update(frame)
        assert len(tracks) == 2
        assert tracker.frame_shape == frame.shape  # the picture the boxes lie in (clicks on the frame map to them)
        boxes = [track.face.box for track in tracks]
        for face_index, corner in enumerate(corners):
            which, distance = nearest(boxes, corner)
            assert distance < 30, "a box fell off its face"
            ids_by_face[face_index].add(tracks[which].track_id)
    # Each face kept one id the whole way, even while the two crossed, and the ids differ.
    assert all(len(ids) == 1 for ids in ids_by_face), ids_by_face
    assert ids_by_face[0] != ids_by_face[1]
    # Most frames were served by the cheap O-Net refinement, not a full detection.
    assert tracker.full_detections <= 36 // 5 + 3


def test_a_face_leaving_is_dropped(lab) -> None:
    tracker = FaceTracker(lab, redetect_every=50)
    frames = render_frames(FACES[:1], frames=2)
    assert len(tracker.update(frames[0][0])) == 1
    empty = np.full_like(frames[0][0], 100)
    assert tracker.update(empty) == []


def test_refinement_keeps_a_face_cut_by_the_frame_edge_in_place(lab) -> None:
    """A face walking out of the frame: O-Net's refinement must still put the landmarks it can see on
    the face (the crop is padded with black where the frame ends, not stretched)."""
    from PIL import Image

    from shared_data import LFW_DIR

    errors = []
    for path in sorted(LFW_DIR.glob("*/*_0001.jpg"))[:20]:
        picture = np.asarray(Image.open(path).convert("RGB"))
        faces = lab.detector.detect(picture)
        if not faces:
            continue
        truth = faces[0]
        cut = int(truth.box[0] + 0.4 * truth.width)  # 40 % of the face is left of the frame
        frame = np.ascontiguousarray(picture[:, cut:])
        shift = np.array([cut, 0, cut, 0], dtype=np.float32)
        refined = lab.detector.refine(frame, [truth.box - shift])[0]
        assert refined is not None, f"{path.name}: the face was lost"
        visible = truth.landmarks[:, 0] - cut > 0
        offsets = refined.landmarks[visible] - (truth.landmarks[visible] - [cut, 0])
        errors.append(np.abs(offsets).max() / truth.width)
    assert len(errors) >= 15
    assert np.median(errors) < 0.06, f"median landmark error {np.median(errors):.3f} of the face width"
