"""A kubeconfig's inline certificates and key become files once per content, in a directory
only this user may enter: never a new file in /tmp per load."""

from __future__ import annotations

import base64
import os
import stat
import tempfile
from pathlib import Path

import pytest
import yaml

from kubenova.kube.config import from_kubeconfig

CA, CERT, KEY = b"-----BEGIN CERTIFICATE-----\nca\n", b"cert\n", b"-----BEGIN KEY-----\nk\n"


@pytest.fixture
def tmpdir_of_this_test(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def a_kubeconfig(path: Path, key: bytes = KEY) -> Path:
    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode()

    doc = {
        "current-context": "c",
        "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
        "clusters": [
            {"name": "k", "cluster": {"server": "https://x", "certificate-authority-data": b64(CA)}}
        ],
        "users": [
            {
                "name": "u",
                "user": {"client-certificate-data": b64(CERT), "client-key-data": b64(key)},
            }
        ],
    }
    path.write_text(yaml.safe_dump(doc))
    return path


def test_inline_data_is_written_once_per_content_in_a_private_directory(
    tmpdir_of_this_test: Path,
) -> None:
    kubeconfig = a_kubeconfig(tmpdir_of_this_test / "kubeconfig")
    first = from_kubeconfig(kubeconfig)
    again = from_kubeconfig(kubeconfig)
    assert (first.ca_file, first.cert_file, first.key_file) == (
        again.ca_file,
        again.cert_file,
        again.key_file,
    )
    assert first.ca_file
    assert first.cert_file
    assert first.key_file
    assert Path(first.ca_file).read_bytes() == CA
    assert Path(first.key_file).read_bytes() == KEY
    private = tmpdir_of_this_test / f"kubenova-{os.getuid()}"
    assert stat.S_IMODE(private.stat().st_mode) == 0o700
    assert stat.S_IMODE(Path(first.key_file).stat().st_mode) == 0o600
    assert sorted(p.name for p in private.iterdir()) == sorted(
        Path(f).name for f in (first.ca_file, first.cert_file, first.key_file)
    )

    other = from_kubeconfig(a_kubeconfig(tmpdir_of_this_test / "other", key=b"another key\n"))
    assert other.key_file != first.key_file
    assert other.ca_file == first.ca_file
    assert Path(other.key_file or "").read_bytes() == b"another key\n"


def test_a_directory_others_may_enter_is_refused(tmpdir_of_this_test: Path) -> None:
    shared = tmpdir_of_this_test / f"kubenova-{os.getuid()}"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    with pytest.raises(PermissionError, match="not a private directory"):
        from_kubeconfig(a_kubeconfig(tmpdir_of_this_test / "kubeconfig"))
