"""Who may change the operator's shared gallery.

Per-session galleries belong to their visitor: every action is open. With a shared gallery
(FACELAB_GALLERY), deleting and clearing need the operator's token (FACELAB_ADMIN_TOKEN, compared in
constant time); without a configured token they are off. Enrolling stays open unless the operator sets
FACELAB_SHARED_ENROLL=token (pipeline/settings.py refuses to start with any word but open or token, so a
mistyped one cannot leave enrolling open).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from pipeline.errors import FaceLabError
from pipeline.settings import Settings


class OperatorOnlyError(FaceLabError):
    """An action on the shared gallery that needs the operator's token."""


@dataclass(frozen=True)
class OperatorGate:
    shared: bool  # an operator's gallery shared by every visitor (FACELAB_GALLERY is set)
    token: str  # FACELAB_ADMIN_TOKEN; "" = none configured
    enroll_needs_token: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> "OperatorGate":
        return cls(shared=settings.shared_gallery, token=settings.admin_token,
                   enroll_needs_token=settings.shared_enroll.strip().lower() == "token")

    def needs_token(self, action: str) -> bool:
        return self.shared and (action != "enroll" or self.enroll_needs_token)

    def check(self, action: str, given: object) -> None:
        """Raise OperatorOnlyError unless `action` ("enroll", "delete", "clear") is allowed with `given`."""
        if not self.needs_token(action):
            return
        if not self.token:
            raise OperatorOnlyError(f"The shared gallery's {action} is turned off: this server has no operator "
                                    "token configured (FACELAB_ADMIN_TOKEN).")
        given_bytes = given.encode("utf-8", "replace") if isinstance(given, str) else b""
        if not hmac.compare_digest(given_bytes, self.token.encode("utf-8")):
            raise OperatorOnlyError(f"To {action} in the shared gallery, type the operator token "
                                    "(the one given is missing or wrong).")
