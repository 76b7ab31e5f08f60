"""Follow faces across the frames of a live stream, so the expensive work is not redone every frame.

A full MTCNN detection runs every `redetect_every` frames, or as soon as a face is lost. In between,
each known face is re-located with MTCNN's last stage alone (`FaceDetector.refine`, a few ms per face).
A face keeps its track id, and between full detections whatever was computed for it (its embedding,
say), which is recomputed at each full detection. One tracker per stream: the app keeps it in the visitor's session.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .analysis import Face, FaceLab
from .detection import Detection, DetectorConfig, iou

# Stream frames are webcam-sized and faces in them large: detecting on a 480 px copy with 40 px as the
# smallest face keeps a full detection near 20-30 ms on one CPU core. No retry with a border: a webcam
# frame is not a tight crop, and a frame without a face (redetected every frame) would cost twice as much.
STREAM_DETECTOR = DetectorConfig(min_face_size=40, max_side=480, retry_with_border=False)


@dataclass
class Track:
    """One face followed across frames. `memo` holds per-face results worth reusing (embedding...)."""

    track_id: int
    face: Face
    age: int = 0  # frames since the track started
    memo: dict[str, Any] = field(default_factory=dict)


class FaceTracker:
    """Per-stream face tracker. Not shared between visitors; safe if frames arrive on several threads."""

    def __init__(
        self,
        lab: FaceLab,
        redetect_every: int = 10,
        match_iou: float = 0.3,
        max_faces: int = 10,
        detector_config: DetectorConfig = STREAM_DETECTOR,
    ) -> None:
        self.lab = lab
        self.redetect_every = redetect_every
        self.match_iou = match_iou
        self.max_faces = max_faces
        self.detector_config = detector_config
        self.tracks: list[Track] = []
        self.frame_shape: tuple[int, ...] | None = None  # the last frame's shape: the picture its tracks' boxes lie in
        # What a caller keeps with the stream (the app: when it last sent the table), as Track.memo per face.
        self.memo: dict[str, Any] = {}
        self.full_detections = 0
        self.frames = 0
        self._since_detection = 0
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def update(self, frame: np.ndarray) -> list[Track]:
        """Advance to the next frame (RGB uint8) and return the faces in it, largest first."""
        with self._lock:
            self.frames += 1
            self.frame_shape = frame.shape
            detections = self._follow(frame) if self._since_detection < self.redetect_every else None
            if detections is None:
                detections = self.lab.detector.detect(frame, self.detector_config)[: self.max_faces]
                self.full_detections += 1
                self._since_detection = 0
                self.tracks = self._match(detections, frame)
            else:
                self._since_detection += 1
                for track, face in zip(self.tracks, self.lab.faces_from(frame, detections)):
                    track.face = face
                    track.age += 1
            self.tracks.sort(key=lambda track: track.face.area, reverse=True)
            return list(self.tracks)

    def _follow(self, frame: np.ndarray) -> list[Detection] | None:
        """Refined detections for every current track, or None if any was lost (or there are none)."""
        if not self.tracks:
            return None
        refined = self.lab.detector.refine(frame, [track.face.box for track in self.tracks])
        if any(detection is None for detection in refined):
            return None
        return refined

    def _match(self, detections: list[Detection], frame: np.ndarray) -> list[Track]:
        """Give each new detection the id (and memo) of the old track it overlaps most, else a new id."""
        unmatched = list(self.tracks)
        tracks = []
        for detection, face in zip(detections, self.lab.faces_from(frame, detections)):
            best = max(unmatched, key=lambda track: iou(track.face.box, detection.box), default=None)
            if best is not None and iou(best.face.box, detection.box) >= self.match_iou:
                unmatched.remove(best)
                best.face, best.age = face, best.age + 1
                # A full detection is the checkpoint where reused results are recomputed: the same box
                # may hold another person now (one walked out, another in).
                best.memo.clear()
                tracks.append(best)
            else:
                tracks.append(Track(track_id=next(self._ids), face=face))
        return tracks

