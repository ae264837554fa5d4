"""The image store contract: bring an object into the host cache once, verified.

`ImageStore.fetch()` is the whole contract and is written once, here: cache hit, per-image
lock, streaming download with a running sha256, atomic rename. A store only says how to
read an object (`_open`) and its stored checksum (`_stored_sha256`); the S3 store and the
fake pass the same contract tests (tests/unit/images, tests/integration/images).
Errors: see kubenova.agents.images.errors.
"""

from __future__ import annotations

import abc
import contextlib
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from kubenova.agents.images.cache import ImageCache
from kubenova.agents.images.errors import ImageChecksumMissing
from kubenova.agents.images.progress import DownloadProgress
from kubenova.agents.images.ref import ImageRef

log = logging.getLogger("kubenova.agents.images")

# The object metadata key `kubenova image upload` stores the checksum under.
SHA256_METADATA = "sha256"


def image_cache_dir(state_dir: Path) -> Path:
    """Where an agent with this state directory caches images."""
    return state_dir / "images"


@dataclass(frozen=True)
class ObjectStream:
    """An open object: its size if the store said it, and its bytes in chunks."""

    size: int | None
    chunks: Iterator[bytes]


class ImageStore(abc.ABC):
    """Images of an object store, cached in `cache_dir` as `<sha256>.<suffix>`."""

    def __init__(self, cache_dir: Path) -> None:
        self.cache = ImageCache(cache_dir)
        self._count_lock = threading.Lock()
        self._downloads = 0

    @property
    def download_count(self) -> int:
        """How many downloads this store completed (cache hits excluded)."""
        return self._downloads

    def cached(self, image: ImageRef) -> Path | None:
        """The verified cache file of `image` if it is here already (no store access)."""
        if image.sha256 is None:
            return None
        path = self.cache.path_for(image.sha256, image.suffix)
        return path if path.exists() else None

    def fetch(self, image: ImageRef) -> Path:
        """The image's verified cache file, downloading it first if this host has none."""
        sha256 = image.sha256 or self._required_stored_sha256(image)
        path = self.cache.path_for(sha256, image.suffix)
        if path.exists():
            return path
        self.cache.directory.mkdir(parents=True, exist_ok=True)
        with self.cache.locked(path.name):
            # Another thread or agent may have finished it while we waited.
            if path.exists():
                log.info("image %s: %s already in the cache", image.name, image.location)
                return path
            with self._open(image) as stream:
                progress = DownloadProgress(
                    log, f"image {image.name} {image.location}", stream.size
                )
                log.info(
                    "image %s: downloading %s (%s) into %s",
                    image.name,
                    image.location,
                    "size unknown" if stream.size is None else f"{stream.size} bytes",
                    path,
                )
                self.cache.write_verified(image, sha256, stream.chunks, progress)
            progress.finish()
            with self._count_lock:
                self._downloads += 1
        return path

    def _required_stored_sha256(self, image: ImageRef) -> str:
        stored = self._stored_sha256(image)
        if stored is None:
            raise ImageChecksumMissing(
                f"Image {image.name}: {image.location} has no sha256 in its metadata and the "
                "spec gives none; upload it with `kubenova image upload`, which records it"
            )
        return stored

    @abc.abstractmethod
    def _stored_sha256(self, image: ImageRef) -> str | None:
        """The checksum kept in the object's metadata, or None; raises as `_open` does."""

    @abc.abstractmethod
    def _open(self, image: ImageRef) -> contextlib.AbstractContextManager[ObjectStream]:
        """Open the object for reading.

        Raises ImageNotFound, ImageStoreAccessDenied or ImageStoreUnavailable (also while
        the chunks are read).
        """
