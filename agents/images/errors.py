"""What the image service raises, in kubenova's one error tree (kubenova/errors.py).

ImageNotFound           NotFoundError: the bucket or object named in the Image is absent
ImageChecksumMismatch   UserError: the object's bytes do not hash to spec.sha256
ImageChecksumMissing    UserError: no checksum in the spec nor in the object's metadata
ImageStoreAccessDenied  UserError: the store refused the credentials (names their Secret)
ImageStoreUnavailable   TemporaryError: the store cannot be reached now; retried
"""

from __future__ import annotations

from kubenova.errors import NotFoundError, TemporaryError, UserError


class ImageNotFound(NotFoundError):
    """The image's bucket or object does not exist in the object store."""

    reason = "ImageNotFound"


class ImageChecksumMismatch(UserError):
    """The downloaded bytes do not match the Image's sha256; nothing was kept."""

    reason = "ImageChecksumMismatch"


class ImageChecksumMissing(UserError):
    """Neither the spec nor the object's metadata says what the bytes must hash to."""

    reason = "ImageChecksumMissing"


class ImageStoreAccessDenied(UserError):
    """The object store refused the credentials; the message names where they came from."""

    reason = "ImageStoreAccessDenied"


class ImageStoreUnavailable(TemporaryError):
    """The object store is unreachable or failed mid-download; try again later."""

    reason = "ImageStoreUnavailable"
