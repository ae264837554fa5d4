"""Real guests under TCG: apply→console marker through kubenova vs plain libvirt, same image.

    python -m bench.boot --count 5 --json

kubenova: an Instance is created through the API; the operator schedules it, the agent
fetches the image (cached after a warm-up run), makes the overlay and seed, defines and
starts the domain; the clock stops when the guest's marker reaches its serial log.
Plain: in the same run, the same kernel, initramfs and qcow2 base, with an overlay made
by qemu-img, a minimal domain defined and started through libvirt directly (what `virsh
define` + `virsh start` do) — the same marker on the same kind of serial log. The target's
reference gives that domain the guest platform kubenova's have (ACPI and APIC, no balloon),
as Nova's libvirt driver and virt-install do: under TCG the guest kernel's ACPI set-up
alone takes ~0.4 s, which says nothing of the path from apply to a started domain. A
minimal domain without ACPI is booted too, interleaved, and printed beside it as
`plain_without_acpi_*`, so that cost stays in view.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import libvirt

from bench._cloud import Cloud, local_cloud
from kubenova.devcluster.libvirtd import PrivateLibvirtd
from kubenova.devcluster.objectstore import ObjectStore

REPO = Path(__file__).resolve().parents[1]
MARKER = "KUBENOVA-GUEST-READY"


def guest_image() -> Path:
    out = subprocess.run(
        [str(REPO / "hack" / "build-test-image.sh")], check=True, capture_output=True, text=True
    )
    return Path(out.stdout.strip().splitlines()[-1])


def wait_marker(log: Path, timeout: float = 120.0) -> float:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        try:
            if MARKER in log.read_text(errors="replace"):
                return time.perf_counter()
        except FileNotFoundError:
            pass
        time.sleep(0.01)
    raise TimeoutError(f"no {MARKER} in {log} after {timeout}s")


def plain_domain_xml(
    name: str, image: Path, overlay: Path, log: Path, *, platform: bool = True
) -> str:
    """A minimal domain; with `platform`, the guest platform of kubenova's domains too
    (agents/compute/domain_xml.py): ACPI, which graceful shutdown and volume hot-plug need,
    APIC, and no balloon device."""
    domain = ET.Element("domain", type="qemu")
    ET.SubElement(domain, "name").text = name
    ET.SubElement(domain, "memory", unit="MiB").text = "128"
    ET.SubElement(domain, "vcpu").text = "1"
    os_ = ET.SubElement(domain, "os")
    ET.SubElement(os_, "type", arch="x86_64", machine="pc").text = "hvm"
    ET.SubElement(os_, "kernel").text = str(image / "vmlinuz")
    ET.SubElement(os_, "initrd").text = str(image / "initrd.img")
    ET.SubElement(os_, "cmdline").text = (image / "cmdline").read_text().strip()
    if platform:
        features = ET.SubElement(domain, "features")
        ET.SubElement(features, "acpi")
        ET.SubElement(features, "apic")
    devices = ET.SubElement(domain, "devices")
    disk = ET.SubElement(devices, "disk", type="file", device="disk")
    ET.SubElement(disk, "driver", name="qemu", type="qcow2")
    ET.SubElement(disk, "source", file=str(overlay))
    ET.SubElement(disk, "target", dev="vda", bus="virtio")
    serial = ET.SubElement(devices, "serial", type="file")
    ET.SubElement(serial, "source", path=str(log), append="on")
    ET.SubElement(serial, "target", port="0")
    if platform:
        ET.SubElement(devices, "memballoon", model="none")
    return ET.tostring(domain, encoding="unicode")


def plain_boot(uri: str, image: Path, work: Path, *, platform: bool = True) -> float:
    name = f"plain-{uuid.uuid4().hex[:8]}"
    overlay, log = work / f"{name}.qcow2", work / f"{name}.log"
    connection = libvirt.open(uri)
    try:
        started = time.perf_counter()
        subprocess.run(
            [
                "qemu-img",
                "create",
                "-q",
                "-f",
                "qcow2",
                "-b",
                str(image / "disk.qcow2"),
                "-F",
                "qcow2",
                str(overlay),
                "1G",
            ],
            check=True,
        )
        domain = connection.defineXML(
            plain_domain_xml(name, image, overlay, log, platform=platform)
        )
        domain.create()
        elapsed = wait_marker(log) - started
        domain.destroy()
        domain.undefine()
        return elapsed
    finally:
        connection.close()


def kubenova_boot(cloud: Cloud, name: str) -> float:
    kubectl = cloud.access.kubectl
    manifest = {
        "apiVersion": "kubenova.io/v1alpha1",
        "kind": "Instance",
        "metadata": {"name": name, "namespace": "boot"},
        "spec": {"flavor": "boot.tiny", "image": "boot-guest"},
    }
    started = time.perf_counter()
    kubectl("create", "-f", "-", input=json.dumps(manifest))
    log: Path | None = None
    while log is None and time.perf_counter() - started < 120:
        out = kubectl(
            "get", "inst", name, "-n", "boot", "-o", "jsonpath={.status.console.logPath}"
        ).stdout.strip()
        log = Path(out) if out else None
        if log is None:
            time.sleep(0.01)
    if log is None:
        raise TimeoutError(f"{name} never reported its console log")
    elapsed = wait_marker(log) - started
    kubectl("delete", "inst", name, "-n", "boot", "--timeout=120s")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    image = guest_image()
    with local_cloud() as cloud, tempfile.TemporaryDirectory(prefix="boot-") as scratch:
        work = Path(scratch)
        store = ObjectStore(work / "s3")
        s3 = store.up()
        libvirtd = PrivateLibvirtd(work / "libvirtd")
        try:
            uri = libvirtd.start()
            env = {**os.environ, **s3.env(), "KUBECONFIG": str(cloud.access.kubeconfig)}
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "kubenova.cli",
                    "image",
                    "upload",
                    str(image / "disk.qcow2"),
                    "--name",
                    "boot-guest",
                    "--min-memory",
                    "96",
                    "--kernel",
                    str(image / "vmlinuz"),
                    "--initrd",
                    str(image / "initrd.img"),
                    "--cmdline",
                    (image / "cmdline").read_text().strip(),
                ],
                check=True,
                env=env,
                capture_output=True,
            )
            cloud.access.kubectl("create", "namespace", "boot")
            cloud.access.kubectl(
                "apply",
                "-f",
                "-",
                input=json.dumps(
                    {
                        "apiVersion": "kubenova.io/v1alpha1",
                        "kind": "Flavor",
                        "metadata": {"name": "boot.tiny"},
                        "spec": {"vcpus": 1, "memoryMiB": 128, "diskGiB": 1},
                    }
                ),
            )
            cloud.start_operator_as_shipped()
            cloud.start_agent(
                "boot-host",
                capacity="vcpus=8,memoryMiB=8192,diskGiB=50",
                libvirt_uri=uri,
                env=s3.env(),
            )
            time.sleep(3)  # the host registers and heart-beats once
            kubenova_boot(cloud, "warmup")  # fills the host's image cache
            plain_boot(uri, image, work)  # and the page cache, for fairness
            through_kubenova, plain, plain_without_acpi = [], [], []
            for i in range(args.count):  # interleaved, so drift hits all alike
                through_kubenova.append(kubenova_boot(cloud, f"boot-{i}"))
                plain.append(plain_boot(uri, image, work))
                plain_without_acpi.append(plain_boot(uri, image, work, platform=False))
        finally:
            for name in list(cloud.processes):
                cloud.stop(name)
            libvirtd.stop()
            store.down()
    result: dict[str, Any] = {
        "count": args.count,
        "kubenova_apply_to_marker_s": {
            "p50": round(statistics.median(through_kubenova), 3),
            "all": [round(x, 3) for x in through_kubenova],
        },
        "plain_define_start_to_marker_s": {
            "p50": round(statistics.median(plain), 3),
            "all": [round(x, 3) for x in plain],
        },
        "plain_without_acpi_define_start_to_marker_s": {
            "p50": round(statistics.median(plain_without_acpi), 3),
            "all": [round(x, 3) for x in plain_without_acpi],
        },
        "ratio_p50": round(statistics.median(through_kubenova) / statistics.median(plain), 3),
        "added_p50_s": round(statistics.median(through_kubenova) - statistics.median(plain), 3),
        "ratio_p50_to_plain_without_acpi": round(
            statistics.median(through_kubenova) / statistics.median(plain_without_acpi), 3
        ),
        "acpi_boot_cost_p50_s": round(
            statistics.median(plain) - statistics.median(plain_without_acpi), 3
        ),
        "target": {"ratio": 1.2, "added_s": 0.5},
    }
    print(json.dumps(result, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
