"""The S3 image store against a real MinIO: the ImageStore contract, plus what only S3 has."""

from __future__ import annotations

import hashlib
import io
import json
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from kubenova.agents.images import (
    ImageRef,
    ImageStore,
    ImageStoreUnavailable,
    StoreCredentials,
)
from kubenova.agents.images.driver import SHA256_METADATA
from kubenova.agents.images.s3 import S3ImageStore
from kubenova.devcluster.objectstore import ObjectStoreAccess
from tests.unit.images.contract import (
    MIB,
    SECRET_ORIGIN,
    ImageStoreContract,
    StoreHarness,
    payload,
)

pytestmark = pytest.mark.s3


def credentials_of(s3: ObjectStoreAccess, origin: str = SECRET_ORIGIN) -> StoreCredentials:
    return StoreCredentials.from_endpoint(s3.url, s3.access_key, s3.secret_key, origin=origin)


class S3Harness(StoreHarness):
    """Objects put with the minio SDK as root; stores read them with the same keys."""

    def __init__(self, s3: ObjectStoreAccess, bucket: str, cache_dir: Path) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.cache_dir = cache_dir
        self.credentials = credentials_of(s3)

    def new_store(self) -> ImageStore:
        return S3ImageStore(self.cache_dir)

    def put(self, key: str, data: bytes, *, store_sha256: bool = True) -> str:
        sha256 = hashlib.sha256(data).hexdigest()
        metadata = {SHA256_METADATA: sha256} if store_sha256 else None
        self.s3.client.put_object(self.bucket, key, io.BytesIO(data), len(data), metadata=metadata)
        return sha256

    def delete(self, key: str) -> None:
        self.s3.client.remove_object(self.bucket, key)


class TestS3ImageStore(ImageStoreContract):
    @pytest.fixture
    def harness(self, s3: ObjectStoreAccess, s3_bucket: str, tmp_path: Path) -> StoreHarness:
        return S3Harness(s3, s3_bucket, tmp_path / "images")


def test_store_default_credentials_serve_images_that_name_no_secret(
    s3: ObjectStoreAccess, s3_bucket: str, tmp_path: Path
) -> None:
    harness = S3Harness(s3, s3_bucket, tmp_path)
    sha256 = harness.put("disk.raw", payload(MIB))
    store = S3ImageStore(tmp_path, default=credentials_of(s3, origin="the agent's defaults"))

    path = store.fetch(ImageRef("cirros", s3_bucket, "disk.raw", sha256, "raw"))

    assert path.read_bytes() == payload(MIB)


def test_unreachable_store_is_a_temporary_error(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens once closed
    credentials = StoreCredentials.from_endpoint(f"http://127.0.0.1:{port}", "a", "b")
    store = S3ImageStore(tmp_path)
    started = time.monotonic()

    with pytest.raises(ImageStoreUnavailable) as caught:
        store.fetch(ImageRef("cirros", "images", "disk.raw", "0" * 64, "raw", credentials))

    assert f"127.0.0.1:{port}" in caught.value.message
    assert caught.value.delay > 0
    assert time.monotonic() - started < 10  # a few quick retries, not minutes
    assert list(tmp_path.iterdir()) in ([], [tmp_path / ".locks"])


FETCH_IN_A_PROCESS = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from kubenova.agents.images import ImageRef, StoreCredentials
    from kubenova.agents.images.s3 import S3ImageStore
    args = json.loads(sys.argv[1])
    credentials = StoreCredentials.from_endpoint(args["url"], args["access"], args["secret"])
    store = S3ImageStore(Path(args["cache"]), default=credentials)
    print("ready", flush=True)
    sys.stdin.readline()  # start together
    path = store.fetch(ImageRef("cirros", args["bucket"], "big.raw", args["sha256"], "raw"))
    print(json.dumps({"path": str(path), "downloads": store.download_count}))
    """
)


def test_two_agent_processes_sharing_a_cache_download_once(
    s3: ObjectStoreAccess, s3_bucket: str, tmp_path: Path
) -> None:
    harness = S3Harness(s3, s3_bucket, tmp_path / "images")
    sha256 = harness.put("big.raw", payload(32 * MIB, seed=9))
    args = json.dumps(
        {
            "url": s3.url,
            "access": s3.access_key,
            "secret": s3.secret_key,
            "cache": str(harness.cache_dir),
            "bucket": s3_bucket,
            "sha256": sha256,
        }
    )
    agents = [
        subprocess.Popen(
            [sys.executable, "-c", FETCH_IN_A_PROCESS, args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for agent in agents:
        assert agent.stdout is not None
        assert agent.stdout.readline() == "ready\n"
    for agent in agents:
        assert agent.stdin is not None
        agent.stdin.write("go\n")
        agent.stdin.flush()
    outputs = [agent.communicate(timeout=120)[0] for agent in agents]
    results = [json.loads(output) for output in outputs]

    assert {result["path"] for result in results} == {str(harness.cache_dir / f"{sha256}.raw")}
    assert sorted(result["downloads"] for result in results) == [0, 1]
