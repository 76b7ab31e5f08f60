"""A synthetic but real-photo stream: LFW faces sliding across a webcam-sized canvas.

Shared by the tracking tests and the streaming benchmark, so both see the same frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.images import load_rgb


@dataclass(frozen=True)
class MovingFace:
    path: Path
    start: tuple[int, int]  # top-left corner of the 250x250 LFW picture on the canvas, frame 0
    velocity: tuple[int, int]  # pixels per frame


def render_frames(faces: list[MovingFace], frames: int, size: tuple[int, int] = (640, 480)) -> list[tuple[np.ndarray, list[tuple[int, int]]]]:
    """Frames and, per frame, each face picture's top-left corner (its ground-truth position)."""
    pictures = [Image.fromarray(load_rgb(face.path)).resize((160, 160)) for face in faces]
    rendered = []
    for index in range(frames):
        canvas = Image.new("RGB", size, (90, 100, 110))
        corners = []
        for face, picture in zip(faces, pictures):
            corner = (face.start[0] + face.velocity[0] * index, face.start[1] + face.velocity[1] * index)
            canvas.paste(picture, corner)
            corners.append(corner)
        rendered.append((np.asarray(canvas), corners))
    return rendered
