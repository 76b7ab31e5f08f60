"""The stream tracker follows real faces moving across frames and keeps their identities apart."""

from __future__ import annotations

import numpy as np

from benchmarks.datasets import lfw_image
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
