"""kubenova's one error tree: what is retryable, what is the user's to fix, what the API said.

KubenovaError          `temporary`: worth retrying soon as it is (the work queue logs those
│                      without a traceback); `reason`: a CamelCase condition reason
├── UserError          the manifest asks for something impossible; the message says what to
│   │                  change. Not retried until the resource (or what it refers to)
│   │                  changes, unless `retry_on_release`: what it asks for is held by
│   │                  another object.
│   └── NotFoundError  a referenced object (Flavor, Image, Network, ...) does not exist
├── TemporaryError     a dependency hiccup (API server, database, daemon); retried after
│                      `delay` seconds with backoff
└── ApiError           the API server refused a request: `status` (HTTP code), `reason`,
    │                  `message`; temporary when throttled (429) or failing (5xx)
    ├── NotFound       404: the object (or its type) does not exist
    ├── Conflict       409: stale resourceVersion, or the object already exists
    └── Gone           410: a watch's resourceVersion is too old; list again

Errors of the system (OSError, TimeoutError) stay what they are: catch
`(KubenovaError, OSError)` where any failure of a pass is to be retried later.
"""

from __future__ import annotations


class KubenovaError(Exception):
    """Base of every error kubenova raises on purpose."""

    reason = "Error"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason

    @property
    def temporary(self) -> bool:
        """True when the same call may well succeed if made again shortly."""
        return False


class UserError(KubenovaError):
    """The resource's spec cannot be satisfied as written; the message says what to change."""

    reason = "InvalidSpec"
    # True when what is asked for is only held by another object (a fixed IP in use): the
    # request is tried again whenever something is released.
    retry_on_release = False


class NotFoundError(UserError):
    """A resource named in a spec does not exist."""

    reason = "NotFound"


class TemporaryError(KubenovaError):
    """A transient failure of a dependency; retry after `delay` seconds."""

    reason = "TemporaryFailure"

    def __init__(self, message: str, *, delay: float = 5.0, reason: str | None = None) -> None:
        super().__init__(message, reason=reason)
        self.delay = delay

    @property
    def temporary(self) -> bool:
        return True


class ApiError(KubenovaError):
    """The API server refused a request; `status` is its HTTP code, `reason` its reason."""

    reason = "ApiError"

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}", reason=reason or None)
        self.status = status
        self.message = message  # the server's own words, without the code

    @property
    def temporary(self) -> bool:
        return self.status == 429 or self.status >= 500


class NotFound(ApiError):
    """404: the object (or its type) does not exist."""


class Conflict(ApiError):
    """409: stale resourceVersion, or the object already exists."""


class Gone(ApiError):
    """410: a watch's resourceVersion is too old; list again."""
