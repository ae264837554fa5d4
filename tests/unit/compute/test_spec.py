"""Instance specs refuse what no driver could build, and name domains after the UID."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from kubenova.agents.compute import (
    DiskAttachment,
    DomainSpec,
    FileVolume,
    Nic,
    RootDisk,
    domain_name_for,
)
from kubenova.agents.compute.spec import uid_from_domain_name
from kubenova.agents.images.fetcher import KernelBoot

BOOT = KernelBoot(Path("/k"))


def test_domain_name_and_uuid_come_from_the_uid() -> None:
    uid = str(uuid.uuid4())
    spec = DomainSpec(uid=uid, namespace="n", name="x", vcpus=1, memory_mib=64, kernel_boot=BOOT)
    assert spec.domain_name == domain_name_for(uid) == f"kubenova-{uid}"
    assert spec.domain_uuid == uid
    assert uid_from_domain_name(spec.domain_name) == uid
    assert uid_from_domain_name("someone-elses-vm") is None


def test_non_uuid_uid_gets_a_stable_uuid() -> None:
    first = DomainSpec(uid="abc", namespace="n", name="x", vcpus=1, memory_mib=64, kernel_boot=BOOT)
    again = DomainSpec(uid="abc", namespace="m", name="y", vcpus=2, memory_mib=99, kernel_boot=BOOT)
    assert first.domain_uuid == again.domain_uuid
    assert str(uuid.UUID(first.domain_uuid)) == first.domain_uuid


@pytest.mark.parametrize(
    "changes",
    [
        {"uid": "Has Spaces"},
        {"vcpus": 0},
        {"memory_mib": 8},
        {"kernel_boot": None, "root_disk": None},
        {
            "volumes": (
                DiskAttachment(FileVolume("a", Path("/a")), "vdb"),
                DiskAttachment(FileVolume("b", Path("/b")), "vdb"),
            )
        },
    ],
)
def test_impossible_specs_are_refused(changes: dict[str, object]) -> None:
    fields: dict[str, object] = {
        "uid": "u1",
        "namespace": "n",
        "name": "x",
        "vcpus": 1,
        "memory_mib": 64,
        "root_disk": RootDisk(Path("/base")),
    }
    fields.update(changes)
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        DomainSpec(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("target", ["vda", "vdz", "sda", "vd1", "vdabc"])
def test_volume_targets_avoid_root_seed_and_nonsense(target: str) -> None:
    with pytest.raises(ValueError, match="target"):
        DiskAttachment(FileVolume("a", Path("/a")), target)


def test_nic_checks_mac_and_tap_length() -> None:
    Nic(bridge="br0", mac="52:54:00:00:00:01", tap="tap-123456789ab")
    with pytest.raises(ValueError, match="MAC"):
        Nic(bridge="br0", mac="52:54:00:00:00:0G", tap="tap0")
    with pytest.raises(ValueError, match="tap"):
        Nic(bridge="br0", mac="52:54:00:00:00:01", tap="tap-0123456789abcdef")
