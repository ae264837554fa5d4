"""A Volume hot-plugged into a running guest and out again, every component real.

kube-apiserver + the operator (subprocess) place a Volume on store-1 and an Instance on
compute-1; store-1's volume service exports it from a real tgtd; compute-1's attacher
plugs it into a real QEMU guest (TCG) through QEMU's own iSCSI initiator with the CHAP
secret in a libvirt secret. The guest reports its block devices on the serial console;
qemu-io (with compute-1's initiator name) writes a pattern that is read back after a
detach and a re-attach. The volume's CHAP secret lives in the libvirtd exactly while the
volume is attached there (virsh secret-list), and a secret of ours a dead agent left behind
is swept at start. The test plays only the compute service's domain creation.
"""

from __future__ import annotations

import logging
import re
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kubenova.agents.compute import DomainSpec, RootDisk
from kubenova.agents.compute.attach_service import AttacherService, AttacherServiceSettings
from kubenova.agents.compute.chap_secrets import secret_description, secret_usage
from kubenova.agents.compute.libvirt_qemu import LibvirtDriver, LibvirtSettings
from kubenova.agents.volume.tgt import TgtDriver, TgtSettings
from kubenova.devcluster import ClusterAccess
from kubenova.devcluster.libvirtd import PrivateLibvirtd
from kubenova.operator import inventory as inv
from kubenova.operator.inventory import volumes as vol
from tests.builders import a_flavor, a_volume, an_image, an_instance
from tests.fixtures.operator import OperatorProcess
from tests.fixtures.test_image import GuestImage
from tests.fixtures.tgtd import TgtDaemon
from tests.integration.volume.cluster import (
    apply,
    condition,
    get,
    secret_data,
    status,
    volume_gone,
    volume_in_phase,
)
from tests.support.background import BackgroundService
from tests.support.hosts import SimulatedHosts
from tests.support.iscsi import IscsiLogin, io_ok, qemu_io
from tests.support.volume_agent import VolumeAgent
from tests.support.waiting import eventually

pytestmark = [pytest.mark.apiserver, pytest.mark.libvirt, pytest.mark.tgt, pytest.mark.slow]

COMPUTE_INITIATOR = "iqn.2010-10.io.kubenova:host.compute-1"


def command_lines() -> list[bytes]:
    """Every process's argv as /proc shows it to any local user."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                found.append((entry / "cmdline").read_bytes())
            except OSError:
                continue  # ended meanwhile
    return found


@pytest.fixture
def driver(libvirtd: PrivateLibvirtd, tmp_path: Path) -> Iterator[LibvirtDriver]:
    real = LibvirtDriver(
        LibvirtSettings(uri=libvirtd.uri, instances_dir=tmp_path / "instances", domain_type="qemu")
    )
    try:
        yield real
    finally:
        for info in real.list_instances():
            real.destroy(info.uid)
        real.close()


def chap_secrets(uri: str) -> set[str]:
    """The usages of kubenova's CHAP secrets in the libvirtd at `uri`, as virsh lists them."""
    listing = subprocess.run(
        ["virsh", "-c", uri, "secret-list"], check=True, capture_output=True, text=True
    ).stdout
    return set(re.findall(r"\biscsi\s+(kubenova-volume-\S+)", listing))


def console(driver: LibvirtDriver, uid: str) -> str:
    path = driver.console_log(uid)
    return path.read_text(errors="replace") if path is not None and path.exists() else ""


def wait_console(driver: LibvirtDriver, uid: str, text: str, count: int = 1) -> float:
    started = time.monotonic()
    eventually(
        lambda: console(driver, uid).count(text) >= count,
        timeout=90,
        interval=0.05,
        what=f"{text!r} x{count} on the guest console",
    )
    return time.monotonic() - started


def instance(namespace: str, *volumes: str) -> dict[str, Any]:
    return an_instance(
        "vm",
        namespace,
        flavor="hot.tiny",
        volumes=[{"volume": v} for v in volumes],
        placement={"host": "compute-1"},
    )


def test_a_volume_is_hot_plugged_written_detached_reattached_and_deleted(
    apiserver: ClusterAccess,
    operator: OperatorProcess,
    hosts: SimulatedHosts,
    tgtd: TgtDaemon,
    driver: LibvirtDriver,
    libvirtd: PrivateLibvirtd,
    test_image: GuestImage,
    volume_namespace: str,
    inventory_url: str,
    tmp_path: Path,
    record_property: Callable[[str, object], None],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    ns = volume_namespace
    hosts.add("compute-1", services=("compute",), disk_gib=100)
    hosts.add("store-1", services=("volume",), disk_gib=20)
    storage = tmp_path / "store-1"
    tgt = TgtDriver(
        TgtSettings(portal=tgtd.portal, storage_dir=storage, control_port=tgtd.control_port)
    )
    store = VolumeAgent(apiserver.kubeconfig, "store-1", {"iscsi": tgt}, storage)
    # What a dead agent left: the secret of a Volume gone since (swept at start), and a
    # secret that is not ours (kept).
    left = secret_usage(str(uuid.uuid4()))
    driver.define_secret(left, b"old", secret_description(ns, "gone"))
    foreign = f"someone-else-{uuid.uuid4().hex[:8]}"
    driver.define_secret(foreign, b"theirs", "not kubenova's")
    attacher = BackgroundService(
        apiserver.kubeconfig,
        lambda client: AttacherService(
            client, driver, AttacherServiceSettings(host="compute-1", resync_interval=3600)
        ),
        ready=lambda s: s.watch.synced.wait(),
        user_agent="attacher-compute-1",
    )
    try:
        eventually(lambda: left not in chap_secrets(libvirtd.uri), timeout=20,
                   what="the dead agent's secret swept")  # fmt: skip
        assert foreign in driver.list_secrets("someone-else-")
        apply(apiserver, a_flavor("hot.tiny", vcpus=1, memory=96, disk=1), an_image("test-image"))
        apply(apiserver, a_volume("data", ns, sizeGiB=1))
        volume = volume_in_phase(apiserver, ns, "data", "Available")
        uid, target = volume["metadata"]["uid"], status(volume)["target"]
        assert tgtd.target_names() == [target["iqn"]]
        chap = secret_data(apiserver, ns, target["chapSecret"])
        login = IscsiLogin(
            tgtd.portal, target["iqn"], 1, chap["username"], chap["password"], COMPUTE_INITIATOR
        )

        # The guest runs first; then the Instance asks for the volume.
        apply(apiserver, instance(ns))
        vm = eventually(
            lambda: (
                (body := get(apiserver, "instance", ns, "vm"))
                and status(body).get("host") == "compute-1"
                and body
            ),
            what="vm placed on compute-1",
        )
        spec = DomainSpec(
            uid=vm["metadata"]["uid"],
            namespace=ns,
            name="vm",
            vcpus=1,
            memory_mib=96,
            root_disk=RootDisk(test_image.disk_qcow2),
            kernel_boot=test_image.kernel_boot(),
        )
        driver.spawn(spec)  # what compute-1's compute service does
        wait_console(driver, spec.uid, test_image.ready_marker)
        assert "vdb" not in console(driver, spec.uid)
        apply(apiserver, instance(ns, "data"))
        plugged_in = wait_console(driver, spec.uid, "KUBENOVA-BLOCK-ADDED vdb")
        record_property("apply_to_guest_sees_vdb_seconds", round(plugged_in, 2))
        print(f"\nspec.volumes applied -> guest sees vdb: {plugged_in:.2f} s")
        body = volume_in_phase(apiserver, ns, "data", "InUse")
        assert status(body)["attachments"][0]["device"] == "vdb"
        # The CHAP password reached tgtd and QEMU, yet no argv (QEMU's included) and no log.
        secret = chap["password"].encode()
        assert not [argv for argv in command_lines() if secret in argv]
        assert chap["password"] not in caplog.text + operator.log()
        assert chap_secrets(libvirtd.uri) == {secret_usage(uid)}
        assert status(get(apiserver, "instance", ns, "vm"))["volumes"] == [
            {"volume": "data", "device": "vdb"}
        ]
        assert (
            condition(get(apiserver, "instance", ns, "vm"), "VolumesAttached")["status"] == "True"
        )

        # compute-1 writes through the same target; other hosts and wrong secrets are refused.
        written = qemu_io(login, "write -P 0xab 0 64k", "write -P 0xcd 512M 4k")
        assert io_ok(written), written.stderr
        assert qemu_io(login.replace(initiator="iqn.2010-10.io.kubenova:host.compute-2"),
                       "read 0 4k").returncode != 0  # fmt: skip
        assert qemu_io(login.replace(password="wrong-secret-xx"), "read 0 4k").returncode != 0

        # Detach: the guest loses vdb, the access list drops compute-1.
        apply(apiserver, instance(ns))
        wait_console(driver, spec.uid, "KUBENOVA-BLOCK-REMOVED vdb")
        body = volume_in_phase(apiserver, ns, "data", "Available")
        assert status(body).get("admittedHosts", []) == []
        assert status(get(apiserver, "instance", ns, "vm")).get("volumes", []) == []
        assert qemu_io(login, "read 0 4k").returncode != 0  # no longer admitted
        eventually(lambda: chap_secrets(libvirtd.uri) == set(), timeout=20,
                   what="the detached volume's CHAP secret undefined")  # fmt: skip

        # Re-attach: the pattern is still there.
        apply(apiserver, instance(ns, "data"))
        wait_console(driver, spec.uid, "KUBENOVA-BLOCK-ADDED vdb", count=2)
        volume_in_phase(apiserver, ns, "data", "InUse")
        assert chap_secrets(libvirtd.uri) == {secret_usage(uid)}
        read = qemu_io(login, "read -P 0xab 0 64k", "read -P 0xcd 512M 4k")
        assert io_ok(read), read.stdout + read.stderr

        # Detach and delete: target, file, claims and Secret go.
        apply(apiserver, instance(ns))
        volume_in_phase(apiserver, ns, "data", "Available")
        apiserver.kubectl("delete", "volume", "data", "-n", ns, "--wait=false")
        volume_gone(apiserver, ns, "data")
        assert tgtd.target_names() == []
        assert not (storage / f"{uid}.raw").exists()
        engine = inv.make_engine(inventory_url)
        assert inv.find_claim(engine, uid) is None
        assert vol.find_target(engine, uid) is None
        assert get(apiserver, "secret", ns, target["chapSecret"]) is None
    finally:
        attacher.stop()
        store.stop()
        for usage in (left, foreign):
            driver.undefine_secret(usage)
