"""Xen domain XML (issue 18): PV and HVM, the same disks, NICs, console and NoCloud seed as
under QEMU, valid against libvirt's own schema (virt-xml-validate, Debian libvirt-clients)
and equal to the golden files in golden/ (regenerate: KUBENOVA_UPDATE_GOLDEN=1)."""

from __future__ import annotations

import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from kubenova.agents.compute.domain_xml import DomainFiles
from kubenova.agents.compute.spec import (
    CloudInitSeed,
    DiskAttachment,
    DomainSpec,
    FileVolume,
    IscsiAuth,
    IscsiVolume,
    Nic,
    RootDisk,
)
from kubenova.agents.compute.xen_xml import XenMode, build_xen_domain_xml
from kubenova.agents.images.fetcher import KernelBoot

GOLDEN = Path(__file__).parent / "golden"
DIR = Path("/var/lib/kubenova/instances/kubenova-3f0c")
FILES = DomainFiles(DIR / "console.log", DIR / "disk.qcow2", DIR / "seed.iso")


def a_spec(*, kernel: bool = True) -> DomainSpec:
    boot = KernelBoot(Path("/cache/vmlinuz"), Path("/cache/initrd.img"), "console=ttyS0 quiet")
    iscsi = IscsiVolume("vol-data", "10.0.0.5", 3260, "iqn.2026-12.io.kubenova:vol-data", 1,
                        IscsiAuth("chap-user", "kubenova-vol-data"))  # fmt: skip
    return DomainSpec(
        uid="3f0c", namespace="tenant-a", name="web", vcpus=2, memory_mib=512,
        root_disk=RootDisk(Path("/cache/base.qcow2")),
        kernel_boot=boot if kernel else None,
        nics=(Nic("knbr-1", "52:54:00:12:34:56", "kntap-3f0c-0"),),
        volumes=(DiskAttachment(iscsi, "vdb"), DiskAttachment(FileVolume("vol-scratch",
                 Path("/srv/scratch.img")), "vdc", read_only=True)),
        seed=CloudInitSeed("i-3f0c", "web"),
    )  # fmt: skip


CASES = {
    "xen-pv": (XenMode.PV, True),
    "xen-pv-pygrub": (XenMode.PV, False),
    "xen-hvm": (XenMode.HVM, False),
    "xen-hvm-kernel": (XenMode.HVM, True),
}


@pytest.fixture(params=sorted(CASES))
def case(request: pytest.FixtureRequest) -> tuple[str, str]:
    mode, kernel = CASES[request.param]
    return request.param, build_xen_domain_xml(a_spec(kernel=kernel), mode, FILES)


def test_the_domain_is_valid_for_libvirt(case: tuple[str, str], tmp_path: Path) -> None:
    validate = shutil.which("virt-xml-validate")
    assert validate, "virt-xml-validate missing: install libvirt-clients (hack/apt-packages.txt)"
    name, xml = case
    path = tmp_path / f"{name}.xml"
    path.write_text(xml)
    argv = [validate, str(path), "domain"]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr + done.stdout


def test_the_domain_matches_its_golden_file(case: tuple[str, str]) -> None:
    name, xml = case
    golden = GOLDEN / f"{name}.xml"
    if os.environ.get("KUBENOVA_UPDATE_GOLDEN"):
        golden.write_text(xml + "\n")
    assert xml + "\n" == golden.read_text()


def test_pv_and_hvm_carry_the_same_disks_nics_and_seed() -> None:
    pv = ET.fromstring(build_xen_domain_xml(a_spec(), XenMode.PV, FILES))
    hvm = ET.fromstring(build_xen_domain_xml(a_spec(kernel=False), XenMode.HVM, FILES))
    for root in (pv, hvm):
        disks = [(d.find("target").get("dev"), d.find("readonly") is not None)  # type: ignore[union-attr]
                 for d in root.findall("./devices/disk")]  # fmt: skip
        assert disks == [("xvda", False), ("xvdz", True), ("xvdb", False), ("xvdc", True)]
        assert root.find("./devices/interface/mac").get("address") == "52:54:00:12:34:56"  # type: ignore[union-attr]
        assert str(DIR / "seed.iso") in ET.tostring(root, encoding="unicode")
    assert pv.findtext("./os/type") == "linux"
    assert "console=hvc0" in (pv.findtext("./os/cmdline") or "")  # Xen's PV console
    assert hvm.findtext("./os/type") == "hvm"
