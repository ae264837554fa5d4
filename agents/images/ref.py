"""What the image service is asked for: one object in one store, and the bytes it must hash to."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from kubenova.errors import UserError

_SHA256 = re.compile(r"^[a-f0-9]{64}$")
# Cache file extensions: the disk formats, and the parts of a direct kernel boot.
SUFFIXES = ("qcow2", "raw", "kernel", "initrd")
DEFAULT_REGION = "us-east-1"


@dataclass(frozen=True)
class StoreCredentials:
    """An S3 endpoint and the keys to read from it; `origin` says where they came from."""

    endpoint: str  # host[:port], without scheme (the minio SDK's form)
    access_key: str
    secret_key: str = field(repr=False)
    secure: bool = True
    region: str = DEFAULT_REGION
    # For messages: "Secret ns/name" or "the agent's default object store settings".
    origin: str = "the agent's default object store settings"

    @property
    def url(self) -> str:
        return f"{'https' if self.secure else 'http'}://{self.endpoint}"

    @classmethod
    def from_endpoint(
        cls,
        endpoint: str,
        access_key: str,
        secret_key: str,
        *,
        secure: bool | None = None,
        region: str = DEFAULT_REGION,
        origin: str = "the agent's default object store settings",
    ) -> StoreCredentials:
        """Accept `http(s)://host:port` (the scheme decides `secure`) or a bare `host:port`.

        A bare endpoint is HTTPS unless `secure` is False, as the minio SDK defaults.
        """
        endpoint = endpoint.strip()
        if "://" in endpoint:
            parts = urlsplit(endpoint)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise UserError(
                    f"object store endpoint {endpoint!r} from {origin} must look like "
                    "http://host:port, https://host:port or host:port",
                    reason="InvalidImageStore",
                )
            if parts.path not in ("", "/"):
                raise UserError(
                    f"object store endpoint {endpoint!r} from {origin} has a path; S3 "
                    "endpoints are host:port only (the bucket goes in spec.source.bucket)",
                    reason="InvalidImageStore",
                )
            scheme_secure = parts.scheme == "https"
            if secure is not None and secure != scheme_secure:
                raise UserError(
                    f"object store endpoint {endpoint!r} from {origin} says {parts.scheme} but "
                    f"secure is {str(secure).lower()}: drop one of them",
                    reason="InvalidImageStore",
                )
            endpoint, secure = parts.netloc, scheme_secure
        if not endpoint:
            raise UserError(f"{origin} gives an empty endpoint", reason="InvalidImageStore")
        return cls(
            endpoint=endpoint,
            access_key=access_key,
            secret_key=secret_key,
            secure=True if secure is None else secure,
            region=region,
            origin=origin,
        )


@dataclass(frozen=True)
class ImageRef:
    """One object to bring into the host cache, checked against `sha256`.

    `sha256` None means "the checksum the uploader stored in the object's metadata" (boot
    kernels and initrds, whose API fields carry no checksum). `credentials` None means the
    store's default credentials.
    """

    name: str  # the Image resource, for logs and messages
    bucket: str
    key: str
    sha256: str | None
    suffix: str  # the cache file's extension: qcow2, raw, kernel or initrd
    credentials: StoreCredentials | None = None

    def __post_init__(self) -> None:
        if self.sha256 is not None and not _SHA256.match(self.sha256):
            raise ValueError(f"sha256 {self.sha256!r} must be 64 lower-case hex digits")
        if self.suffix not in SUFFIXES:
            raise ValueError(f"suffix {self.suffix!r} must be one of {', '.join(SUFFIXES)}")

    @property
    def location(self) -> str:
        return f"s3://{self.bucket}/{self.key}"
