"""AoE volumes reach guests only through the kernel aoe initiator's block devices."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kubenova.agents.compute.attacher import AttacherSettings, VolumeAttacher
from kubenova.agents.compute.spec import DiskFormat, FileVolume
from kubenova.errors import UserError


def an_attacher(device_dir: Path) -> VolumeAttacher:
    nothing: Any = None  # the AoE source needs neither the API nor the hypervisor
    return VolumeAttacher(nothing, nothing, AttacherSettings("compute-1", device_dir), nothing)


def test_without_the_aoe_initiator_the_user_is_told_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(UserError) as refused:
        an_attacher(tmp_path)._aoe_source("blocks", {"shelf": 0, "slot": 3})
    assert refused.value.reason == "AoEInitiatorMissing"
    assert "modprobe aoe" in refused.value.message
    assert "use an iscsi volume" in refused.value.message


def test_with_the_aoe_initiator_the_block_device_is_attached_raw(tmp_path: Path) -> None:
    (tmp_path / "e0.3").touch()  # what the aoe module makes as /dev/etherd/e0.3
    source = an_attacher(tmp_path)._aoe_source("blocks", {"shelf": 0, "slot": 3})
    assert source == FileVolume("blocks", tmp_path / "e0.3", DiskFormat.RAW)
