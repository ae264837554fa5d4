"""The local MinIO of `kubenova dev`: detached, reused, restarted with its data and keys."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from kubenova.devcluster.errors import ControlPlaneError
from kubenova.devcluster.objectstore import (
    ObjectStore,
    ensure_minio,
    minio_live,
    start_dev_objectstore,
    stop_dev_objectstore,
)
from kubenova.devcluster.processes import command_line, is_alive

pytestmark = pytest.mark.s3


@pytest.fixture(scope="module")
def minio_binary() -> Path:
    try:
        return ensure_minio(progress=print)
    except ControlPlaneError as error:
        pytest.fail(f"cannot get the minio binary: {error}", pytrace=False)


def test_dev_object_store_outlives_us_and_keeps_data_and_keys(
    minio_binary: Path, tmp_path: Path
) -> None:
    access = start_dev_objectstore(tmp_path)
    store = ObjectStore(tmp_path / "objectstore", detached=True)
    try:
        pid = store.running_pid()
        assert pid is not None
        assert os.getsid(pid) == pid  # its own session: a closed terminal does not stop it
        assert access.secret_key not in " ".join(command_line(pid))  # only in its environment
        for private in (store.env_file, tmp_path / "objectstore" / "objectstore.json"):
            assert private.stat().st_mode & 0o077 == 0
        assert f"export KUBENOVA_S3_SECRET_KEY={access.secret_key}\n" in store.env_file.read_text()
        access.client.make_bucket("kept")
        access.client.put_object("kept", "object", io.BytesIO(b"data"), 4)

        assert start_dev_objectstore(tmp_path) == access  # a second `up` keeps the running one
        assert store.running_pid() == pid

        assert stop_dev_objectstore(tmp_path) == ["minio"]
        assert not is_alive(pid)
        assert not minio_live(int(access.endpoint.rsplit(":", 1)[1]))

        again = start_dev_objectstore(tmp_path)
        assert (again.access_key, again.secret_key) == (access.access_key, access.secret_key)
        assert again.client.get_object("kept", "object").read() == b"data"
    finally:
        stop_dev_objectstore(tmp_path)
    assert store.running_pid() is None
