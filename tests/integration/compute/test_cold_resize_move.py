"""A resize its host has no room for moves the guest cold (issue 18, item 4), end to end on
two private libvirtds (the live-migration tests' pair) with the real apiserver, operator
and two compute agents, and one TCG guest:

- the stopped guest resized beyond its host's room is held shut off by its source agent,
  which says so (SourceHeld), before the target pulls anything; a start asked for
  meanwhile waits for the move's end (Ready says so) and happens on the target; the
  target's agent, killed (-9) once it has begun to pull and restarted, finishes the move:
  one copy, on the target, with what the guest wrote, the new memory, one claim of the
  new size there;
- then the running guest with resizePolicy Restart, resized to what its new host has no
  disk for, is stopped there, moved back and runs with the newer vCPUs, memory and disk.

The agents are frozen (SIGSTOP) at chosen points so each step is seen in order. (The
operator's half with its failures, restarts and guards:
tests/integration/operator/test_cold_resize.py.)"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from kubenova import conditions as cond
from kubenova.agents.compute.libvirt_qemu import LibvirtDriver, LibvirtSettings
from kubenova.agents.compute.spec import domain_name_for
from kubenova.devcluster import ClusterAccess
from kubenova.kube.meta import Body
from kubenova.operator import inventory as inv
from kubenova.operator.inventory.consumers import list_consumers
from tests.builders import a_flavor, an_instance, as_yaml
from tests.e2e.test_lifecycle_fake import patch_spec, wait_phase
from tests.e2e.test_real_vm import console, upload
from tests.fixtures.agent import AgentFactory, AgentProcess
from tests.fixtures.operator import OperatorProcess
from tests.fixtures.test_image import GuestImage
from tests.integration.compute.test_cold_migration import PATTERN, qemu_io
from tests.integration.compute.test_live_migration import Host, hosts
from tests.integration.operator.test_scheduling import get, wait_ready
from tests.support.waiting import eventually

pytestmark = [pytest.mark.apiserver, pytest.mark.libvirt, pytest.mark.s3]

__all__ = ["hosts"]  # the two-libvirtd fixture, shared with the live-migration tests


def start_agent(
    agents: AgentFactory, daemon: Any, s3: Any, name: str, capacity: str
) -> tuple[Host, AgentProcess]:
    """A compute agent on one of the two libvirtds; the driver to look at its guests."""
    agent = agents.start(
        name,
        libvirt_uri=daemon.uri,
        capacity=capacity,
        env=s3.env(),
        # The address only makes the agent publish its libvirtd for peers (a unix socket).
        extra=("--services=compute", "--underlay-ip=127.0.0.1"),
    )
    instances = agent.state_dir / "instances"
    driver = LibvirtDriver(LibvirtSettings(uri=daemon.uri, instances_dir=instances))
    return Host(name, daemon, driver, instances), agent


def the_move(cluster: ClusterAccess, namespace: str, instance: str) -> dict[str, Any]:
    """The one cold move a resize of `instance` made (it waits for the resize to make it)."""

    def probe() -> dict[str, Any] | None:
        out = cluster.kubectl("get", "instancemigrations", "-n", namespace, "-o", "json",
                              "-l", f"kubenova.io/resize-of={instance}")  # fmt: skip
        items = json.loads(out.stdout)["items"]
        return items[-1] if items else None

    return eventually(probe, timeout=30, interval=0.05, what=f"a cold move of {instance}")


def on(cluster: ClusterAccess, namespace: str, host: str, vcpus: int, memory: int) -> Body:
    """The guest once it runs on `host` with `vcpus` and `memory` MiB."""

    def probe() -> dict[str, Any] | None:
        body = get(cluster, namespace, "mover") or {}
        status = body.get("status") or {}
        domain = status.get("domain") or {}
        here = (
            status.get("host"),
            status.get("phase"),
            domain.get("vcpus"),
            domain.get("memoryMiB"),
        )
        return body if here == (host, "Running", vcpus, memory) else None

    return eventually(probe, timeout=120, interval=0.2, what=f"mover Running on {host}")


def kept_its_disk(overlay: Path, size_gib: int) -> None:
    """What the guest wrote is there (read beside its running QEMU), grown to `size_gib`."""
    value, offset, length = PATTERN
    read = subprocess.run(["qemu-io", "-U", "-r", "-f", "qcow2", "-c",
                           f"read -P {value} {offset} {length}", str(overlay)],
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert read.returncode == 0, read
    assert "Pattern verification failed" not in read.stdout, read
    argv = ["qemu-img", "info", "-U", "--output=json", str(overlay)]
    info = json.loads(subprocess.run(argv, capture_output=True, text=True, check=True).stdout)
    assert info["virtual-size"] == size_gib << 30, info


def sized(host: Host, uid: str, vcpus: int, memory_mib: int) -> None:
    xml = ET.fromstring(host.driver.libvirt_domain(uid).XMLDesc(0))
    assert xml.findtext("vcpu") == str(vcpus)
    memory = xml.find("memory")
    assert memory is not None
    assert int(memory.text or 0) == memory_mib * 1024  # KiB


def only_on(engine: Any, host: Host, other: Host, uid: str, size: inv.Resources) -> None:
    """One copy: nothing of the guest on `other`; one claim, the Instance's, on `host`."""
    assert not other.defined(uid)
    assert not (other.instances_dir / domain_name_for(uid)).exists()
    assert [(c.kind, c.host) for c in list_consumers(engine)] == [("Instance", host.name)]
    claim = inv.find_claim(engine, uid)
    assert claim is not None
    assert (claim.host, claim.resources) == (host.name, size)


def test_a_guest_resized_beyond_its_host_moves_cold_and_back(
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
        a_flavor("cold.big", vcpus=1, memory=256, disk=2),
        a_flavor("cold.back", vcpus=2, memory=128, disk=3),
    ))  # fmt: skip
    # 128 MiB (x 1.5 overcommit) holds the small flavor, not the big one; cold-lv-b's 2 GiB
    # of disk hold the big one, not cold.back's 3.
    a, a_agent = start_agent(
        agents, pair[0].libvirtd, s3, "cold-lv-a", "vcpus=4,memoryMiB=128,diskGiB=20"
    )
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
    b, b_agent = start_agent(
        agents, pair[1].libvirtd, s3, "cold-lv-b", "vcpus=4,memoryMiB=2048,diskGiB=2"
    )
    wait_ready(apiserver, b.name)
    engine = inv.make_engine(inventory_url)
    try:
        started = time.monotonic()
        # The source's agent is frozen while the move is claimed, then the target's while
        # the source holds the guest: nothing can be pulled before SourceHeld, and the
        # move waits for the target meanwhile.
        assert a_agent.process is not None
        assert b_agent.process is not None
        os.kill(a_agent.process.pid, signal.SIGSTOP)
        patch_spec(apiserver, namespace, "mover", {"flavor": "cold.big"})
        name = the_move(apiserver, namespace, "mover")["metadata"]["name"]
        eventually(lambda: (the_move(apiserver, namespace, "mover").get("status") or {})
                   .get("targetHost") == b.name, timeout=30, interval=0.05,
                   what="the move claimed")  # fmt: skip
        os.kill(b_agent.process.pid, signal.SIGSTOP)
        os.kill(a_agent.process.pid, signal.SIGCONT)
        # A start asked for now waits: the source holds the guest shut off and says so.
        patch_spec(apiserver, namespace, "mover", {"powerState": "Running"})

        def deferred() -> dict[str, Any] | None:
            ready = cond.find((get(apiserver, namespace, "mover") or {})
                              .get("status", {}).get("conditions"), "Ready") or {}  # fmt: skip
            return ready if ready.get("reason") == "Moving" and "Running waits" in ready.get(
                "message", "") else None  # fmt: skip

        eventually(deferred, timeout=30, interval=0.1, what="Ready says the start waits")
        move = the_move(apiserver, namespace, "mover")
        assert cond.is_true(move["status"].get("conditions"), "SourceHeld"), move
        assert move["status"]["phase"] != "Completed", move
        assert not a.runs(uid)
        # It goes on until it has begun to pull the guest's disk, and is killed (-9) there.
        incoming = b.instances_dir / domain_name_for(uid)
        pulled = (incoming / ".disk.qcow2.partial", incoming / "disk.qcow2")
        os.kill(b_agent.process.pid, signal.SIGCONT)
        deadline = time.monotonic() + 60
        while not any(p.exists() for p in pulled) and time.monotonic() < deadline:
            time.sleep(0.001)
        b_agent.kill()
        assert any(p.exists() for p in pulled), "the target never began to pull"
        move = the_move(apiserver, namespace, "mover")
        reports = [c["type"] for c in move["status"].get("conditions") or []]
        print(f"\ntarget agent killed after its pull began; the move had {reports}")
        b_agent.start()
        body = on(apiserver, namespace, b.name, 1, 256)
        took = time.monotonic() - started
        print(f"cold resize move with the target agent killed: {took:.1f} s")
        assert the_move(apiserver, namespace, "mover")["metadata"]["name"] == name
        assert body["status"]["resources"] == {"vcpus": 1, "memoryMiB": 256, "diskGiB": 2}
        resized = cond.find(body["status"]["conditions"], "Resized") or {}
        assert resized.get("status") == "True", resized
        kept_its_disk(b.driver.files.overlay(uid), 2)
        sized(b, uid, 1, 256)
        only_on(engine, b, a, uid, inv.Resources(1, 256, 2))

        # Running with resizePolicy Restart, resized to what cold-lv-b has no disk for: it
        # stops there, moves back and runs again with the newer size.
        marker = test_image.ready_marker
        eventually(lambda: marker in console(get(apiserver, namespace, "mover")),
                   timeout=60, interval=0.2, what="the guest booted")  # fmt: skip
        started = time.monotonic()
        patch_spec(
            apiserver, namespace, "mover", {"resizePolicy": "Restart", "flavor": "cold.back"}
        )
        body = on(apiserver, namespace, a.name, 2, 128)
        print(f"running guest moved back with Restart: {time.monotonic() - started:.1f} s")
        assert body["status"]["resources"] == {"vcpus": 2, "memoryMiB": 128, "diskGiB": 3}
        assert a.runs(uid)
        kept_its_disk(a.driver.files.overlay(uid), 3)
        sized(a, uid, 2, 128)
        only_on(engine, a, b, uid, inv.Resources(2, 128, 3))
    finally:
        engine.dispose()
        apiserver.kubectl("delete", "instance", "mover", "-n", namespace, "--wait=false",
                          check=False)  # fmt: skip
