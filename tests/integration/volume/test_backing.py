"""Volume files: sparse, idempotent, filled from an image with qemu-img, never half-made."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from kubenova.agents.volume.backing import BackingStore, ImageTooLarge, OutOfSpace

MIB = 1 << 20


def test_a_new_volume_is_a_sparse_file_of_its_size(tmp_path: Path) -> None:
    store = BackingStore(tmp_path / "v")
    path = store.create("uid-1", 512 * MIB)
    assert path == tmp_path / "v" / "uid-1.raw"
    assert path.stat().st_size == 512 * MIB
    assert path.stat().st_blocks == 0  # costs nothing until written
    path.write_bytes(b"kept")
    assert store.create("uid-1", 512 * MIB) == path  # idempotent: never recreated
    assert path.read_bytes() == b"kept"
    assert store.volume_uids() == {"uid-1"}
    assert store.remove("uid-1") is True
    assert store.remove("uid-1") is False


def test_a_volume_from_an_image_holds_the_image_and_has_the_volumes_size(tmp_path: Path) -> None:
    raw = tmp_path / "image.raw"
    raw.write_bytes(b"IMAGE-DATA".ljust(MIB, b"\0"))
    qcow2 = tmp_path / "image.qcow2"
    subprocess.run(
        ["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(qcow2)], check=True
    )
    store = BackingStore(tmp_path / "v")
    path = store.create("uid-2", 64 * MIB, source=qcow2)
    assert path.stat().st_size == 64 * MIB
    assert path.read_bytes()[:10] == b"IMAGE-DATA"


def test_an_image_larger_than_the_volume_is_refused(tmp_path: Path) -> None:
    big = tmp_path / "big.raw"
    with big.open("wb") as handle:
        handle.truncate(8 * MIB)
    store = BackingStore(tmp_path / "v")
    with pytest.raises(ImageTooLarge, match="larger sizeGiB"):
        store.create("uid-3", 4 * MIB, source=big)
    assert list((tmp_path / "v").iterdir()) == []


def test_more_than_the_filesystem_holds_is_out_of_space(tmp_path: Path) -> None:
    store = BackingStore(tmp_path / "v")
    with pytest.raises(OutOfSpace, match="free space on the host"):
        store.create("uid-4", 1 << 60)
    assert not store.exists("uid-4")
