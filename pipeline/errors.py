"""Errors a user can cause. Their text is written to be shown to that user as it is, except where a
class says otherwise (`visitor_message`)."""


class FaceLabError(Exception):
    """Base class: anything the app should show as a friendly message instead of a traceback."""

    def visitor_message(self) -> str:
        """What a web visitor may read: the message itself, unless it holds operator details."""
        return str(self)


class InvalidImageError(FaceLabError):
    """The input is not a picture we can read, or is outside the documented limits."""


class NoFaceError(FaceLabError):
    """A task needs a face and the picture has none that the detector could find."""


class WeightsError(FaceLabError):
    """Model weights are missing, unreachable or fail their integrity check.

    The message is for the operator (it names folders and files); `public` says what went wrong without
    them, for a web visitor."""

    def __init__(self, message: str, public: str = "its weights could not be loaded") -> None:
        super().__init__(message)
        self.public = public

    def visitor_message(self) -> str:
        return f"{self.public} (details in the server log)"


class InvalidNameError(FaceLabError):
    """A person's name is empty, too long or otherwise unusable."""


class AlreadyEnrolledError(FaceLabError):
    """The face already matches another enrolled person (strict point), so it is not enrolled under a new name."""

    def __init__(self, message: str, match: str) -> None:
        super().__init__(message)
        self.match = match
