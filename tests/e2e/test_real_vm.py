"""A real VM from `kubectl apply`: every component real — apiserver, operator and agent
processes, MinIO holding the image, a private libvirtd running QEMU (TCG here).

The guest is the project's test image; its init prints a marker on the serial console, which
the agent logs to a file and tails into Instance.status.console.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import libvirt
import pytest

from kubenova.devcluster import ClusterAccess
from kubenova.operator import inventory as inv
from kubenova.operator.inventory.consumers import list_consumers
from tests.builders import a_flavor, a_network, an_instance, as_yaml
from tests.e2e.test_lifecycle_fake import patch_spec, wait_phase
from tests.fixtures.agent import AgentFactory, AgentProcess
from tests.fixtures.operator import OperatorProcess
from tests.integration.operator.test_scheduling import condition, get, wait_ready
from tests.integration.reliability.test_agent_heartbeat import not_ready_events
from tests.support.waiting import eventually

pytestmark = [pytest.mark.apiserver, pytest.mark.libvirt, pytest.mark.s3]


def upload(cluster: ClusterAccess, s3: Any, bucket: str, image: Any, name: str) -> None:
    env = {**os.environ, **s3.env(), "KUBECONFIG": str(cluster.kubeconfig)}
    subprocess.run(
        [
            sys.executable,
            "-m",
            "kubenova.cli",
            "image",
            "upload",
            str(image.disk_qcow2),
            "--name",
            name,
            "--bucket",
            bucket,
            "--min-memory",
            "96",
            "--kernel",
            str(image.kernel),
            "--initrd",
            str(image.initrd),
            "--cmdline",
            image.cmdline,
        ],
        check=True,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def start_guest_host(
    cluster: ClusterAccess,
    agents: AgentFactory,
    libvirtd: Any,
    s3: Any,
    bucket: str,
    test_image: Any,
    *,
    host: str,
    image: str,
    flavor: str,
    vcpus: int = 2,
    extra: tuple[str, ...] = (),
) -> AgentProcess:
    """The test image uploaded as `image`, a 128 MiB `flavor`, and a Ready host running
    compute and network on the private libvirtd (TCG guests, vxlan over loopback)."""
    upload(cluster, s3, bucket, test_image, image)
    cluster.kubectl("apply", "-f", "-", input=as_yaml(a_flavor(flavor, memory=128)))
    agent = agents.start(
        host,
        libvirt_uri=libvirtd.uri,
        domain_type="qemu",
        capacity=f"vcpus={vcpus},memoryMiB=2048,diskGiB=20",
        env=s3.env(),
        extra=(
            "--services=compute,network",
            "--underlay-ip=127.0.0.1",
            "--network-teardown-on-exit",
            *extra,
        ),
    )
    wait_ready(cluster, host)
    return agent


def console(body: dict[str, Any] | None) -> str:
    path = (((body or {}).get("status") or {}).get("console") or {}).get("logPath")
    return Path(path).read_text(errors="replace") if path and Path(path).exists() else ""


def markers(cluster: ClusterAccess, namespace: str, name: str, marker: str) -> int:
    return console(get(cluster, namespace, name)).count(marker)


def test_a_real_vm_runs_from_kubectl_apply_and_leaves_nothing_behind(
    apiserver: ClusterAccess,
    operator: OperatorProcess,
    agents: AgentFactory,
    namespace: str,
    inventory_url: str,
    libvirtd: Any,
    s3: Any,
    s3_bucket: str,
    test_image: Any,
) -> None:
    agent = start_guest_host(
        apiserver,
        agents,
        libvirtd,
        s3,
        s3_bucket,
        test_image,
        host="real-host",
        image="guest-e2e",
        flavor="e2e.tiny",
    )
    apiserver.kubectl(
        "apply",
        "-f",
        "-",
        input=as_yaml(
            a_network("e2e-net", namespace, mode="vxlan", cidr="10.77.0.0/24"),
            an_instance(
                "guest",
                namespace,
                flavor="e2e.tiny",
                image="guest-e2e",
                networks=[{"network": "e2e-net"}],
            ),
        ),
    )
    marker = test_image.ready_marker
    body = wait_phase(apiserver, namespace, "guest", "Running")
    assert condition(body, "Ready")["status"] == "True"
    assert body["status"]["domain"]["type"] == "qemu"
    eventually(
        lambda: markers(apiserver, namespace, "guest", marker) >= 1,
        timeout=90,
        what="guest console marker",
    )
    # its NIC carries the inventory's MAC and DHCP hands it the inventory's IP
    address = body["status"]["addresses"][0]
    assert address["ip"].startswith("10.77.0.")
    lease = f"KUBENOVA-LEASE interface=eth0 ip={address['ip']} mask=24"
    try:
        eventually(
            lambda: lease in console(get(apiserver, namespace, "guest")),
            timeout=60,
            what="a DHCP lease equal to the inventory's address",
        )
    except AssertionError as timeout:
        tail = console(get(apiserver, namespace, "guest"))[-1500:]
        raise AssertionError(f"{timeout}\nguest console:\n{tail}") from None
    nic = f"KUBENOVA-NIC eth0 mac={address['mac']}"
    assert nic in console(get(apiserver, namespace, "guest"))
    uid = body["metadata"]["uid"]
    connection = libvirt.open(libvirtd.uri)
    try:
        domain = connection.lookupByUUIDString(uid)
        assert domain.isActive()

        patch_spec(apiserver, namespace, "guest", {"powerState": "Stopped"})
        wait_phase(apiserver, namespace, "guest", "Stopped")
        assert not connection.lookupByUUIDString(uid).isActive()

        patch_spec(apiserver, namespace, "guest", {"powerState": "Running"})
        wait_phase(apiserver, namespace, "guest", "Running")
        eventually(
            lambda: markers(apiserver, namespace, "guest", marker) >= 2,
            timeout=90,
            what="marker after start",
        )

        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        patch_spec(apiserver, namespace, "guest", {"restartRequestedAt": stamp})
        eventually(
            lambda: markers(apiserver, namespace, "guest", marker) >= 3,
            timeout=90,
            what="marker after reboot",
        )
        reboots = markers(apiserver, namespace, "guest", marker)

        overlays = list(agent.state_dir.rglob("*.qcow2"))
        assert overlays, "the instance's overlay should exist while it runs"
        apiserver.kubectl("delete", "instance", "guest", "-n", namespace, "--timeout=120s")
        eventually(lambda: get(apiserver, namespace, "guest") is None, what="instance gone")
        names = [d.name() for d in connection.listAllDomains()]
        assert f"kubenova-{uid}" not in names
        assert not any(p.exists() for p in overlays if uid in str(p))
    finally:
        connection.close()
    assert reboots == 3, "the reboot request must be acted on exactly once"
    apiserver.kubectl("delete", "network", "e2e-net", "-n", namespace, "--timeout=60s")
    # A lapsed heartbeat lets the operator act as if the host were gone (it did: the domain
    # outlived its Instance when the agent renewed more slowly than the operator's timeout).
    assert not_ready_events(apiserver, "real-host") == []
    agent.stop()
    assert not [
        line
        for line in subprocess.run(
            ["ip", "-br", "link"], capture_output=True, text=True, check=True
        ).stdout.splitlines()
        if line.startswith(("knb-", "knx-"))
    ], "bridges left behind"
    engine = inv.make_engine(inventory_url)
    eventually(lambda: list_consumers(engine, "Instance") == [], what="claim released")
    log = json.dumps(agent.log()[-3000:])
    assert "Traceback" not in agent.log(), log
