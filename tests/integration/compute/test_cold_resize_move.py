"""A resize its host has no room for moves the guest cold (issue 18, item 4), end to end on
two private libvirtds (the live-migration tests' pair) with the real apiserver, operator
and two compute agents, and one TCG guest: the stopped guest resized beyond its host's
room ends on the other host with what it wrote to its disk, the new flavor's vCPUs and
memory in its domain, one claim of the new size on the target in the inventory, and
nothing of it left on the source. (The operator's half with its failures, restarts and
guards: tests/integration/operator/test_cold_resize.py.)"""

from __future__ import annotations

import subprocess
import time
import xml.etree.ElementTree as ET
from typing import Any

import pytest

from kubenova.agents.compute.libvirt_qemu import LibvirtDriver, LibvirtSettings
from kubenova.agents.compute.spec import domain_name_for
from kubenova.devcluster import ClusterAccess
from kubenova.operator import inventory as inv
from kubenova.operator.inventory.consumers import list_consumers
from tests.builders import a_flavor, an_instance, as_yaml
from tests.e2e.test_lifecycle_fake import patch_spec, wait_phase
from tests.e2e.test_real_vm import upload
from tests.fixtures.agent import AgentFactory
from tests.fixtures.operator import OperatorProcess
from tests.fixtures.test_image import GuestImage
from tests.integration.compute.test_cold_migration import PATTERN, qemu_io
from tests.integration.compute.test_live_migration import Host, hosts
from tests.integration.operator.test_scheduling import get, wait_ready
from tests.support.waiting import eventually

pytestmark = [pytest.mark.apiserver, pytest.mark.libvirt, pytest.mark.s3]

__all__ = ["hosts"]  # the two-libvirtd fixture, shared with the live-migration tests


def start_agent(agents: AgentFactory, daemon: Any, s3: Any, name: str, memory: int) -> Host:
    """A compute agent on one of the two libvirtds; the driver to look at its guests."""
    agent = agents.start(
        name,
        libvirt_uri=daemon.uri,
        capacity=f"vcpus=4,memoryMiB={memory},diskGiB=20",
        env=s3.env(),
        # The address only makes the agent publish its libvirtd for peers (a unix socket).
        extra=("--services=compute", "--underlay-ip=127.0.0.1"),
    )
    instances = agent.state_dir / "instances"
    driver = LibvirtDriver(LibvirtSettings(uri=daemon.uri, instances_dir=instances))
    return Host(name, daemon, driver, instances)


def test_a_stopped_guest_resized_beyond_its_host_moves_with_its_disk(
    apiserver: ClusterAccess,
    operator: OperatorProcess,
    agents: AgentFactory,
    namespace: str,
    inventory_url: str,
    hosts: tuple[Host, Host],
    s3: Any,
    s3_bucket: str,
    test_image: GuestImage,
) -> None:
    pair = hosts
    upload(apiserver, s3, s3_bucket, test_image, "guest-cold")
    apiserver.kubectl("apply", "-f", "-", input=as_yaml(
        a_flavor("cold.small", vcpus=1, memory=128, disk=1),
        a_flavor("cold.big", vcpus=2, memory=256, disk=2),
    ))  # fmt: skip
    # 128 MiB (x 1.5 overcommit) holds the small flavor, not the big one.
    a = start_agent(agents, pair[0].libvirtd, s3, "cold-lv-a", memory=128)
    wait_ready(apiserver, a.name)
    apiserver.kubectl("apply", "-f", "-", input=as_yaml(
        an_instance("mover", namespace, flavor="cold.small", image="guest-cold",
                    powerState="Stopped"),
    ))  # fmt: skip
    body = wait_phase(apiserver, namespace, "mover", "Stopped")
    assert body["status"]["host"] == a.name
    uid = body["metadata"]["uid"]
    value, offset, length = PATTERN
    written = qemu_io(str(a.driver.files.overlay(uid)), f"write -P {value} {offset} {length}")
    assert written.returncode == 0, written
    b = start_agent(agents, pair[1].libvirtd, s3, "cold-lv-b", memory=2048)
    wait_ready(apiserver, b.name)
    engine = inv.make_engine(inventory_url)
    try:
        started = time.monotonic()
        patch_spec(apiserver, namespace, "mover", {"flavor": "cold.big"})

        def moved() -> dict[str, Any] | None:
            body = get(apiserver, namespace, "mover") or {}
            status = body.get("status") or {}
            domain = status.get("domain") or {}
            done = (status.get("host"), status.get("phase"), domain.get("vcpus")) == (
                b.name, "Stopped", 2,
            )  # fmt: skip
            return body if done else None

        body = eventually(moved, timeout=120, interval=0.2, what="mover Stopped on cold-lv-b")
        took = time.monotonic() - started
        assert body["status"]["resources"] == {"vcpus": 2, "memoryMiB": 256, "diskGiB": 2}
        resized = [c for c in body["status"]["conditions"] if c["type"] == "Resized"]
        assert resized[0]["status"] == "True", resized

        # The guest's disk came along (what it wrote), grown to the new flavor's size.
        overlay = b.driver.files.overlay(uid)
        read = qemu_io(str(overlay), f"read -P {value} {offset} {length}")
        assert read.returncode == 0, read
        assert "Pattern verification failed" not in read.stdout, read
        info = subprocess.run(["qemu-img", "info", "--output=json", str(overlay)],
                              capture_output=True, text=True, check=True).stdout  # fmt: skip
        assert '"virtual-size": 2147483648' in info, info
        # The domain is defined there with the new size; nothing is left on the source.
        xml = ET.fromstring(b.driver.libvirt_domain(uid).XMLDesc(0))
        assert xml.findtext("vcpu") == "2"
        memory = xml.find("memory")
        assert memory is not None
        assert int(memory.text or 0) == 256 * 1024  # KiB
        assert not a.defined(uid)
        assert not (a.instances_dir / domain_name_for(uid)).exists()
        # One claim: the instance's, of the new size, on the target.
        consumers = [(c.kind, c.host) for c in list_consumers(engine)]
        assert consumers == [("Instance", b.name)]
        claim = inv.find_claim(engine, uid)
        assert claim is not None
        assert (claim.host, claim.resources) == (b.name, inv.Resources(2, 256, 2))
        print(f"\ncold resize move (apply -> Stopped on the target): {took:.1f} s")
    finally:
        engine.dispose()
        apiserver.kubectl("delete", "instance", "mover", "-n", namespace, "--wait=false",
                          check=False)  # fmt: skip
