"""The fake image store passes the ImageStore contract (the S3 store passes it against MinIO)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from kubenova.agents.images import FAKE_CREDENTIALS, FakeImageStore, FakeObjects, ImageStore
from tests.unit.images.contract import SECRET_ORIGIN, ImageStoreContract, StoreHarness


class FakeHarness(StoreHarness):
    """Stores share one FakeObjects, as agents share one S3 store."""

    def __init__(self, cache_dir: Path) -> None:
        self.bucket = "images"
        self.cache_dir = cache_dir
        self.credentials = replace(FAKE_CREDENTIALS, origin=SECRET_ORIGIN)
        self.objects = FakeObjects()

    def new_store(self) -> ImageStore:
        return FakeImageStore(self.cache_dir, self.objects, default=None)

    def put(self, key: str, data: bytes, *, store_sha256: bool = True) -> str:
        return self.objects.put(self.bucket, key, data, store_sha256=store_sha256)

    def delete(self, key: str) -> None:
        self.objects.remove(self.bucket, key)


class TestFakeImageStore(ImageStoreContract):
    @pytest.fixture
    def harness(self, tmp_path: Path) -> StoreHarness:
        return FakeHarness(tmp_path / "images")


def test_fake_store_uses_its_default_credentials_when_the_image_names_none(
    tmp_path: Path,
) -> None:
    store = FakeImageStore(tmp_path)
    sha256 = store.put("images", "disk.raw", b"x" * 4096)
    image = FakeHarness(tmp_path).ref("disk.raw", sha256, credentials=None)

    assert store.fetch(replace(image, bucket="images")).read_bytes() == b"x" * 4096
