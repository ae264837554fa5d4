"""The ImageStore contract: every store (S3, fake) passes these same tests.

A test class inherits `ImageStoreContract` and provides a `harness` fixture that returns a
`StoreHarness` for its store: how to put objects, which credentials it accepts, and how to
make a second store on the same cache directory (a second agent on the host).
"""

from __future__ import annotations

import abc
import hashlib
import logging
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from kubenova.agents.images import (
    ImageChecksumMismatch,
    ImageChecksumMissing,
    ImageNotFound,
    ImageRef,
    ImageStore,
    ImageStoreAccessDenied,
    StoreCredentials,
)
from kubenova.errors import NotFoundError, UserError

MIB = 1024 * 1024
SECRET_ORIGIN = "Secret images/store-keys"


class StoreHarness(abc.ABC):
    """One store under test, its objects and its credentials."""

    bucket: str
    cache_dir: Path
    credentials: StoreCredentials  # accepted, with origin SECRET_ORIGIN

    @abc.abstractmethod
    def new_store(self) -> ImageStore:
        """A store on `cache_dir` that sees the same objects (a second agent process)."""

    @abc.abstractmethod
    def put(self, key: str, data: bytes, *, store_sha256: bool = True) -> str:
        """Put an object into `bucket`; return its sha256 (also kept as metadata if asked)."""

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Remove an object from `bucket`."""

    def ref(self, key: str, sha256: str | None, suffix: str = "raw", **changes: object) -> ImageRef:
        image = ImageRef("test-image", self.bucket, key, sha256, suffix, self.credentials)
        return replace(image, **changes) if changes else image


def payload(size: int, seed: int = 0) -> bytes:
    """Deterministic, incompressible-looking bytes."""
    block = hashlib.sha256(f"{seed}".encode()).digest() * (MIB // 32)
    return (block * (size // len(block) + 1))[:size]


def cache_entries(cache_dir: Path) -> list[str]:
    """Everything in the cache but the lock directory."""
    if not cache_dir.exists():
        return []
    return sorted(entry.name for entry in cache_dir.iterdir() if entry.name != ".locks")


def run_together(count: int, work: Callable[[int], Path]) -> list[Path | BaseException]:
    """Run `work(i)` in `count` threads released at the same instant; results in order."""
    barrier = threading.Barrier(count)
    results: list[Path | BaseException] = [RuntimeError("did not run")] * count

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = work(index)
        except BaseException as error:  # handed to the test to assert on
            results[index] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


class ImageStoreContract:
    """Tests every ImageStore must pass; subclasses provide the `harness` fixture."""

    @pytest.fixture
    def harness(self) -> StoreHarness:
        raise NotImplementedError

    @pytest.fixture
    def store(self, harness: StoreHarness) -> ImageStore:
        return harness.new_store()

    def test_fetch_downloads_into_cache_named_by_checksum(
        self, harness: StoreHarness, store: ImageStore
    ) -> None:
        data = payload(3 * MIB + 17)
        sha256 = harness.put("disk.qcow2", data)

        path = store.fetch(harness.ref("disk.qcow2", sha256, "qcow2"))

        assert path == harness.cache_dir / f"{sha256}.qcow2"
        assert path.read_bytes() == data
        assert store.download_count == 1
        assert cache_entries(harness.cache_dir) == [path.name]
        assert path.stat().st_mode & 0o222 == 0
        # A project's image is tenant data: no other local user reads it, or lists the cache.
        assert path.stat().st_mode & 0o077 == 0
        assert harness.cache_dir.stat().st_mode & 0o077 == 0

    def test_second_fetch_is_served_from_the_cache(
        self, harness: StoreHarness, store: ImageStore
    ) -> None:
        sha256 = harness.put("disk.raw", payload(MIB))
        image = harness.ref("disk.raw", sha256)
        first = store.fetch(image)
        harness.delete("disk.raw")  # the store cannot serve it any more

        assert store.cached(image) == first
        assert store.fetch(image) == first
        assert store.download_count == 1

    def test_checksum_mismatch_keeps_nothing(
        self, harness: StoreHarness, store: ImageStore
    ) -> None:
        harness.put("disk.raw", payload(2 * MIB, seed=1))
        expected = hashlib.sha256(b"what the Image promised").hexdigest()

        with pytest.raises(ImageChecksumMismatch) as caught:
            store.fetch(harness.ref("disk.raw", expected))

        error = caught.value
        assert isinstance(error, UserError)
        assert error.reason == "ImageChecksumMismatch"
        assert expected in error.message
        assert "kubenova image upload" in error.message
        assert cache_entries(harness.cache_dir) == []  # no partial file, no cache entry
        assert store.download_count == 0

    def test_missing_object_is_image_not_found(
        self, harness: StoreHarness, store: ImageStore
    ) -> None:
        with pytest.raises(ImageNotFound) as caught:
            store.fetch(harness.ref("no-such-key", "0" * 64))
        assert isinstance(caught.value, NotFoundError)
        assert caught.value.reason == "ImageNotFound"
        assert f"s3://{harness.bucket}/no-such-key" in caught.value.message

    def test_missing_bucket_is_image_not_found(
        self, harness: StoreHarness, store: ImageStore
    ) -> None:
        with pytest.raises(ImageNotFound) as caught:
            store.fetch(harness.ref("disk.raw", "0" * 64, bucket="no-such-bucket-kubenova"))
        assert "s3://no-such-bucket-kubenova/disk.raw" in caught.value.message
        assert "bucket" in caught.value.message

    def test_wrong_secret_key_is_refused_naming_the_secret(
        self, harness: StoreHarness, store: ImageStore
    ) -> None:
        sha256 = harness.put("disk.raw", payload(MIB))
        wrong = replace(harness.credentials, secret_key="not-the-secret-key")

        with pytest.raises(ImageStoreAccessDenied) as caught:
            store.fetch(harness.ref("disk.raw", sha256, credentials=wrong))

        assert caught.value.reason == "ImageStoreAccessDenied"
        assert SECRET_ORIGIN in caught.value.message
        assert "SignatureDoesNotMatch" in caught.value.message
        assert cache_entries(harness.cache_dir) == []

    def test_concurrent_fetches_download_once(
        self, harness: StoreHarness, store: ImageStore
    ) -> None:
        data = payload(16 * MIB, seed=2)
        image = harness.ref("big.raw", harness.put("big.raw", data))

        results = run_together(8, lambda _: store.fetch(image))

        assert all(isinstance(result, Path) for result in results), results
        assert len(set(results)) == 1
        assert store.download_count == 1
        assert cache_entries(harness.cache_dir) == [f"{image.sha256}.raw"]

    def test_two_stores_sharing_a_cache_download_once(self, harness: StoreHarness) -> None:
        stores = [harness.new_store(), harness.new_store()]
        image = harness.ref("big.raw", harness.put("big.raw", payload(16 * MIB, seed=3)))

        results = run_together(4, lambda index: stores[index % 2].fetch(image))

        assert all(isinstance(result, Path) for result in results), results
        assert sum(store.download_count for store in stores) == 1

    def test_checksum_from_object_metadata_when_spec_has_none(
        self, harness: StoreHarness, store: ImageStore
    ) -> None:
        sha256 = harness.put("vmlinuz", payload(MIB, seed=4))

        path = store.fetch(harness.ref("vmlinuz", None, "kernel"))

        assert path == harness.cache_dir / f"{sha256}.kernel"

    def test_object_without_any_checksum_is_refused(
        self, harness: StoreHarness, store: ImageStore
    ) -> None:
        harness.put("initrd.img", payload(MIB, seed=5), store_sha256=False)

        with pytest.raises(ImageChecksumMissing):
            store.fetch(harness.ref("initrd.img", None, "initrd"))
        assert cache_entries(harness.cache_dir) == []

    def test_progress_is_logged_with_size_and_rate(
        self, harness: StoreHarness, store: ImageStore, caplog: pytest.LogCaptureFixture
    ) -> None:
        image = harness.ref("disk.raw", harness.put("disk.raw", payload(10 * MIB, seed=6)))

        with caplog.at_level(logging.INFO, logger="kubenova.agents.images"):
            store.fetch(image)

        lines = [record.getMessage() for record in caplog.records]
        assert any("50%" in line for line in lines), lines
        assert "downloaded 10.0 MiB" in lines[-1]
        assert "MiB/s" in lines[-1]
        assert all("test-image" in line for line in lines)

    def test_stale_partial_file_of_a_crashed_download_is_removed(
        self, harness: StoreHarness, store: ImageStore
    ) -> None:
        image = harness.ref("disk.raw", harness.put("disk.raw", payload(MIB, seed=7)))
        harness.cache_dir.mkdir(parents=True, exist_ok=True)
        stale = harness.cache_dir / f".{image.sha256}.raw.999.1.partial"
        stale.write_bytes(b"half an image")

        store.fetch(image)

        assert not stale.exists()
        assert cache_entries(harness.cache_dir) == [f"{image.sha256}.raw"]
