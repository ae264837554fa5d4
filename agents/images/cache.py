"""The host's image cache: `<cache_dir>/<sha256>.<suffix>`, each file complete and verified.

A file appears only by an atomic rename after its bytes hashed to the expected sha256, so a
path that exists is always whole. Writers of one image are serialised by a per-image lock
that holds across threads (a threading lock) and across processes sharing the directory
(flock on `.locks/<name>.lock`): two agents on one cache download an image once.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

from kubenova.agents.images.errors import ImageChecksumMismatch
from kubenova.agents.images.progress import DownloadProgress
from kubenova.agents.images.ref import ImageRef
from kubenova.agents.private_files import create_private, private_directory


class ImageCache:
    """Verified image files under one directory, with the per-image locks that guard them."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._guard = threading.Lock()
        self._thread_locks: dict[str, threading.Lock] = {}

    def path_for(self, sha256: str, suffix: str) -> Path:
        return self.directory / f"{sha256}.{suffix}"

    @contextlib.contextmanager
    def locked(self, name: str) -> Iterator[None]:
        """Hold the lock of one cache entry against other threads and other processes."""
        with self._guard:
            thread_lock = self._thread_locks.setdefault(name, threading.Lock())
        # A project's private image is tenant data: the cache is owner-only (0700).
        private_directory(self.directory)
        lock_dir = self.directory / ".locks"
        lock_dir.mkdir(mode=0o700, exist_ok=True)
        # The thread lock first: flock alone would also exclude threads on a local disk
        # (each open() is its own lock owner), but not where flock is emulated with
        # per-process POSIX locks (NFS).
        with thread_lock, (lock_dir / f"{name}.lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def write_verified(
        self,
        image: ImageRef,
        sha256: str,
        chunks: Iterable[bytes],
        progress: DownloadProgress,
    ) -> Path:
        """Stream `chunks` into a temp file while hashing; keep it only if it hashes to `sha256`.

        Call with `locked(path.name)` held. On any failure the partial file is removed.
        """
        path = self.path_for(sha256, image.suffix)
        self._remove_partials(path)
        partial = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.partial")
        digest = hashlib.sha256()
        try:
            with os.fdopen(create_private(partial), "wb") as out:  # 0600 from the start
                for chunk in chunks:
                    digest.update(chunk)
                    out.write(chunk)
                    progress.advance(len(chunk))
                out.flush()
                os.fsync(out.fileno())
            actual = digest.hexdigest()
            if actual != sha256:
                raise ImageChecksumMismatch(
                    f"Image {image.name}: {image.location} hashes to sha256 {actual}, but "
                    f"{sha256} is expected ({progress.done} bytes read). The object changed "
                    "after the Image was made or the checksum is wrong: upload the image "
                    "again (`kubenova image upload`) or create a new Image with the right "
                    "spec.sha256; the download was discarded."
                )
            # Base images are only ever read (QEMU opens backing files read-only); owner
            # only, as they were born (a narrowing, never a widening).
            partial.chmod(0o400)
            partial.replace(path)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        self._sync_directory()
        return path

    def _remove_partials(self, path: Path) -> None:
        # Left by a crashed download of this entry; safe, as the entry's lock is held.
        for stale in self.directory.glob(f".{path.name}.*.partial"):
            stale.unlink(missing_ok=True)

    def _sync_directory(self) -> None:
        # The rename must survive a crash, or a restarted agent downloads again.
        fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
