"""kubenova's one error tree: what is retryable, what is the user's to fix, what is a bug.

KubenovaError
├── UserError          the manifest asks for something impossible; `reason` is a CamelCase
│   │                  condition reason and the message says what to change. Not retried
│   │                  until the resource (or what it refers to) changes, unless
│   │                  `retry_on_release`: what it asks for is held by another object.
│   └── NotFoundError  a referenced object (Flavor, Image, Network, ...) does not exist
├── Unschedulable      valid, but no host fits now; retried when capacity changes
├── TemporaryError     a dependency hiccup (API server, database, daemon); retried after
│                      `delay` seconds with backoff
└── BugError           an invariant broke; logged loudly, retried slowly
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


class UserError(KubenovaError):
    """The resource's spec cannot be satisfied as written; the message says what to change."""

    reason = "InvalidSpec"
    # True when what is asked for is only held by another object (a fixed IP in use): the
    # request is tried again whenever something is released.
    retry_on_release = False


class NotFoundError(UserError):
    """A resource named in a spec does not exist."""

    reason = "NotFound"


class Unschedulable(KubenovaError):
    """No host can take the resource now; it is retried when capacity appears."""

    reason = "NoValidHost"


class TemporaryError(KubenovaError):
    """A transient failure of a dependency; retry after `delay` seconds."""

    reason = "TemporaryFailure"

    def __init__(self, message: str, *, delay: float = 5.0, reason: str | None = None) -> None:
        super().__init__(message, reason=reason)
        self.delay = delay


class BugError(KubenovaError):
    """Something that should be impossible happened."""

    reason = "InternalError"
