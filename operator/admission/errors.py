"""Why the webhook refuses: the field at fault and what to change."""

from __future__ import annotations

from kubenova.errors import UserError

INVALID = 422  # the request is wrong as written
FORBIDDEN = 403  # well-formed, but not allowed now (quota, a Project still in use)


class AdmissionRefused(UserError):
    """Refuse the request; the message starts with the field it is about."""

    reason = "AdmissionRefused"

    def __init__(self, field: str, message: str, *, code: int = INVALID) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.code = code
