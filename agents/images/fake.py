"""The image service's fakes: an in-memory store and a placeholder fetcher, no server.

`FakeImageStore` is an in-memory image store for unit and scale tests: same contract, same
errors. Objects live in a `FakeObjects` (the "server", shareable by several stores, like agents
sharing one S3 store). Only the credentials the store was made with are accepted, so tests
of refused credentials run against it as against the real store. The cache is real files.
`PlaceholderImages` stands in for the whole fetcher beside the fake compute driver, which
never reads a base image.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from kubenova.agents.images.driver import ImageStore, ObjectStream
from kubenova.agents.images.errors import ImageNotFound, ImageStoreAccessDenied
from kubenova.agents.images.fetcher import KernelBoot
from kubenova.agents.images.ref import ImageRef, StoreCredentials
from kubenova.api.v1alpha1 import Image

FAKE_CREDENTIALS = StoreCredentials(
    endpoint="fake-store.invalid", access_key="fake-access", secret_key="fake-secret"
)
CHUNK_SIZE = 1024 * 1024


@dataclass(frozen=True)
class _FakeObject:
    data: bytes
    sha256: str | None


class FakeObjects:
    """The fake "S3 server": buckets of objects, shareable by several stores (agents)."""

    def __init__(self) -> None:
        self._buckets: dict[str, dict[str, _FakeObject]] = {}
        self._lock = threading.Lock()

    def put(self, bucket: str, key: str, data: bytes, *, store_sha256: bool = True) -> str:
        """Store an object (creating its bucket); return its sha256, kept as metadata if asked."""
        sha256 = hashlib.sha256(data).hexdigest()
        with self._lock:
            self._buckets.setdefault(bucket, {})[key] = _FakeObject(
                data, sha256 if store_sha256 else None
            )
        return sha256

    def remove(self, bucket: str, key: str) -> None:
        with self._lock:
            self._buckets.get(bucket, {}).pop(key, None)

    def get(self, bucket: str, key: str) -> tuple[bool, _FakeObject | None]:
        """(whether the bucket exists, the object or None)."""
        with self._lock:
            objects = self._buckets.get(bucket)
            return objects is not None, None if objects is None else objects.get(key)


class FakeImageStore(ImageStore):
    """Images from `objects` (in memory); `accepted` are the only valid credentials."""

    def __init__(
        self,
        cache_dir: Path,
        objects: FakeObjects | None = None,
        *,
        accepted: StoreCredentials = FAKE_CREDENTIALS,
        default: StoreCredentials | None = FAKE_CREDENTIALS,
    ) -> None:
        super().__init__(cache_dir)
        self.objects = objects or FakeObjects()
        self.accepted = accepted
        self.default = default

    def put(self, bucket: str, key: str, data: bytes, *, store_sha256: bool = True) -> str:
        """Store an object in this store's objects; return its sha256."""
        return self.objects.put(bucket, key, data, store_sha256=store_sha256)

    def _object(self, image: ImageRef) -> _FakeObject:
        credentials = image.credentials or self.default
        if credentials is None or (credentials.access_key, credentials.secret_key) != (
            self.accepted.access_key,
            self.accepted.secret_key,
        ):
            origin = credentials.origin if credentials else "nowhere (no credentials)"
            raise ImageStoreAccessDenied(
                f"Image {image.name}: the fake object store refused the credentials from "
                f"{origin} reading {image.location} (SignatureDoesNotMatch). Put a valid "
                "accessKey/secretKey with read access to that bucket there."
            )
        bucket_exists, found = self.objects.get(image.bucket, image.key)
        if found is None:
            what = "object" if bucket_exists else "bucket"
            raise ImageNotFound(
                f"Image {image.name}: {image.location} does not exist in the fake object store "
                f"(the {what} is missing). Upload it or correct spec.source."
            )
        return found

    def _stored_sha256(self, image: ImageRef) -> str | None:
        return self._object(image).sha256

    @contextlib.contextmanager
    def _open(self, image: ImageRef) -> Iterator[ObjectStream]:
        data = self._object(image).data
        chunks = (data[at : at + CHUNK_SIZE] for at in range(0, len(data), CHUNK_SIZE))
        yield ObjectStream(size=len(data), chunks=chunks)


@dataclass(frozen=True)
class Placeholder:
    disk: Path
    kernel_boot: KernelBoot | None = None


class PlaceholderImages:
    """An empty file per image, for the fake compute driver (it never reads the base image)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def fetch(self, name: str, image: Image) -> Placeholder:
        path = self.directory / f"{image.spec.sha256}.{image.spec.format}"
        if not path.exists():
            self.directory.mkdir(parents=True, exist_ok=True)
            path.touch()
        kernel_boot = None
        if image.spec.boot is not None:
            kernel_boot = KernelBoot(kernel=path, cmdline=image.spec.boot.cmdline)
        return Placeholder(disk=path, kernel_boot=kernel_boot)
