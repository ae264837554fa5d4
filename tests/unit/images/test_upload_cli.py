"""`kubenova image upload` without servers: format detection and argument checks."""

from __future__ import annotations

import hashlib
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from kubenova.cli.image import QCOW2_MAGIC, disk_format, image, sha256_of

STORE_ENV = {
    "KUBENOVA_S3_ENDPOINT": "http://127.0.0.1:1",
    "KUBENOVA_S3_ACCESS_KEY": "ak",
    "KUBENOVA_S3_SECRET_KEY": "sk",
}


@pytest.fixture
def qcow2_file(tmp_path: Path) -> Path:
    path = tmp_path / "disk.img"
    path.write_bytes(QCOW2_MAGIC + b"\0" * 1020)
    return path


@pytest.fixture
def raw_file(tmp_path: Path) -> Path:
    path = tmp_path / "disk.raw"
    path.write_bytes(b"\xeb\x3c\x90" + b"\0" * 1021)
    return path


def test_format_is_read_from_the_header(qcow2_file: Path, raw_file: Path) -> None:
    assert disk_format(qcow2_file, None) == "qcow2"
    assert disk_format(raw_file, None) == "raw"
    assert disk_format(raw_file, "raw") == "raw"


def test_a_declared_format_contradicting_the_header_is_refused(
    qcow2_file: Path, raw_file: Path
) -> None:
    with pytest.raises(click.UsageError, match="is a qcow2 image, not raw"):
        disk_format(qcow2_file, "raw")
    with pytest.raises(click.UsageError, match="is a raw image, not qcow2"):
        disk_format(raw_file, "qcow2")


def test_sha256_of_a_file(tmp_path: Path) -> None:
    path = tmp_path / "blob"
    data = b"kubenova" * 1_000_000
    path.write_bytes(data)
    assert sha256_of(path) == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--initrd", "{file}"], "--initrd and --cmdline need --kernel"),
        (["--credentials-secret", "no-slash"], "use NAMESPACE/NAME"),
        (["--endpoint", "ftp://x"], "must look like"),
        (["--min-disk", "0"], "minDiskGiB"),
        (["--bucket", "X"], "bucket"),
    ],
)
def test_bad_arguments_are_refused_before_any_upload(
    raw_file: Path, args: list[str], says: str
) -> None:
    argv = ["upload", str(raw_file), "--name", "cirros", *[a.format(file=raw_file) for a in args]]

    result = CliRunner().invoke(image, argv, env=STORE_ENV)

    assert result.exit_code == 2, result.output
    assert says in result.output


def test_store_settings_are_required(raw_file: Path) -> None:
    unset = {name: None for name in STORE_ENV}
    result = CliRunner().invoke(image, ["upload", str(raw_file), "--name", "cirros"], env=unset)
    assert result.exit_code == 2
    assert "KUBENOVA_S3_ENDPOINT" in result.output
