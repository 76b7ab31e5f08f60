"""Face Lab's pipeline: detect and align faces once, embed them, run the task heads.

A library: no UI code and no per-visitor state here. Start with `get_facelab().analyze(image)`.
"""

from .alignment import align_faces
from .analysis import Analysis, Face, FaceLab, get_facelab
from .detection import Detection, DetectorConfig, FaceDetector
from .embedding import FaceEmbedder
from .errors import FaceLabError, InvalidImageError, InvalidNameError, NoFaceError, WeightsError
from .images import load_rgb

__all__ = [
    "Analysis",
    "Detection",
    "DetectorConfig",
    "Face",
    "FaceDetector",
    "FaceEmbedder",
    "FaceLab",
    "FaceLabError",
    "InvalidImageError",
    "InvalidNameError",
    "NoFaceError",
    "WeightsError",
    "align_faces",
    "get_facelab",
    "load_rgb",
]
