"""Errors a user can cause. Their text is written to be shown to that user as it is."""


class FaceLabError(Exception):
    """Base class: anything the app should show as a friendly message instead of a traceback."""


class InvalidImageError(FaceLabError):
    """The input is not a picture we can read, or is outside the documented limits."""


class NoFaceError(FaceLabError):
    """A task needs a face and the picture has none that the detector could find."""


class WeightsError(FaceLabError):
    """Model weights are missing, unreachable or fail their integrity check."""


class InvalidNameError(FaceLabError):
    """A person's name is empty, too long or otherwise unusable."""
