"""Real guests (QEMU, TCG) through a restart of libvirtd, of their host's agent and of the
operator, with a create and a delete in between (issue 13 item 6, beside the fake-hypervisor
tests/integration/reliability/test_restart_each_part.py).

Afterwards: the guests that were running never stopped (no second boot marker, the same
QEMU domain id), the one created meanwhile booted and got its fixed IP by DHCP, the one
deleted meanwhile is gone with its domain and claim, and nothing else is left.
"""

from __future__ import annotations

from typing import Any

import libvirt
import pytest
from sqlalchemy import select

from kubenova.agents.compute.spec import domain_name_for
from kubenova.devcluster import ClusterAccess
from kubenova.operator import inventory as inv
from kubenova.operator.inventory.consumers import list_consumers
from kubenova.operator.inventory.models import FixedIp
from tests.builders import a_network, an_instance, as_yaml
from tests.e2e.test_lifecycle_fake import wait_phase
from tests.e2e.test_real_vm import console, start_guest_host
from tests.fixtures.agent import AgentFactory
from tests.fixtures.operator import OperatorProcess
from tests.integration.operator.test_scheduling import get
from tests.support.waiting import eventually

pytestmark = [pytest.mark.apiserver, pytest.mark.libvirt, pytest.mark.s3, pytest.mark.slow]

IPS = {"g1": "10.78.0.11", "g2": "10.78.0.12", "g3": "10.78.0.13"}


def a_guest(name: str, namespace: str) -> dict[str, Any]:
    return an_instance(
        name,
        namespace,
        flavor="rg.tiny",
        image="guest-restart",
        networks=[{"network": "rg-net", "ip": IPS[name]}],
    )


def booted(cluster: ClusterAccess, namespace: str, name: str, marker: str) -> dict[str, Any]:
    """Wait for `name` Running, its boot marker and its DHCP lease of the fixed IP."""
    body = wait_phase(cluster, namespace, name, "Running")
    lease = f"KUBENOVA-LEASE interface=eth0 ip={IPS[name]} mask=24"

    def leased() -> bool:
        text = console(get(cluster, namespace, name))
        return marker in text and lease in text

    try:
        eventually(leased, timeout=180, interval=1, what=f"{name} booted with {IPS[name]}")
    except AssertionError as timeout:
        tail = console(get(cluster, namespace, name))[-1500:]
        raise AssertionError(f"{timeout}\n{name}'s console:\n{tail}") from None
    return body


def test_real_guests_run_on_through_libvirtd_agent_and_operator_restarts(
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
        host="rg-host",
        image="guest-restart",
        flavor="rg.tiny",
        vcpus=4,
        extra=("--resync-interval=5",),
    )
    network = a_network("rg-net", namespace, mode="vxlan", cidr="10.78.0.0/24")
    guests = [a_guest("g1", namespace), a_guest("g2", namespace)]
    apiserver.kubectl("apply", "-f", "-", input=as_yaml(network, *guests))
    marker = test_image.ready_marker
    uids = {n: booted(apiserver, namespace, n, marker)["metadata"]["uid"] for n in ("g1", "g2")}
    connection = libvirt.open(libvirtd.uri)
    try:
        ids = {n: connection.lookupByUUIDString(u).ID() for n, u in uids.items()}
    finally:
        connection.close()

    libvirtd.crash_and_restart()
    apiserver.kubectl("apply", "-f", "-", input=as_yaml(a_guest("g3", namespace)))
    uids["g3"] = booted(apiserver, namespace, "g3", marker)["metadata"]["uid"]

    agent.stop()  # deleted while its agent is away: it waits, then the agent destroys it
    apiserver.kubectl("delete", "instance", "g2", "-n", namespace, "--wait=false")
    agent.start()
    operator.stop()
    operator.start()
    eventually(lambda: get(apiserver, namespace, "g2") is None, timeout=120, what="g2 gone")

    kept = {n: uids[n] for n in ("g1", "g3")}
    for name in kept:
        wait_phase(apiserver, namespace, name, "Running")
    g1 = console(get(apiserver, namespace, "g1"))
    assert g1.count(marker) == 1, "g1 booted again: a restart stopped its guest"
    connection = libvirt.open(libvirtd.uri)
    try:
        domains = {d.UUIDString(): d for d in connection.listAllDomains()}
        assert sorted(domains) == sorted(kept.values()), "exactly one domain per kept guest"
        assert all(d.isActive() for d in domains.values())
        assert domains[kept["g1"]].ID() == ids["g1"], "g1's QEMU is not the one it was"
    finally:
        connection.close()
    instance_dirs = sorted(p.name for p in (agent.state_dir / "instances").iterdir())
    assert instance_dirs == sorted(map(domain_name_for, kept.values())), "files of kept guests"
    engine = inv.make_engine(inventory_url)
    try:
        eventually(
            lambda: {c.uid for c in list_consumers(engine, "Instance")} == set(kept.values()),
            timeout=60,
            what="claims of g1 and g3 only",
        )
        with engine.connect() as db:
            rows = db.execute(select(FixedIp.consumer_uid, FixedIp.address)).all()
        assert sorted((str(u), str(a)) for u, a in rows) == sorted(
            (uid, IPS[name]) for name, uid in kept.items()
        )
    finally:
        engine.dispose()
    apiserver.kubectl("delete", "instances", "--all", "-n", namespace, "--timeout=120s")
    apiserver.kubectl("delete", "network", "rg-net", "-n", namespace, "--timeout=60s")
