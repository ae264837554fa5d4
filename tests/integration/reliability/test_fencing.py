"""Fencing before reuse: what an Instance on a NotReady host holds stays held until the
host is fenced — its agent comes back and destroys the domain, or an admin marks the Host
out of service. The agent is frozen with SIGSTOP (a crashed or cut-off agent whose guest,
for all anyone knows, still runs); operator and agents are real processes, libvirt's test
driver is the hypervisor.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import select

from kubenova.devcluster import ClusterAccess
from kubenova.operator import inventory as inv
from kubenova.operator.inventory.models import FixedIp
from tests.builders import a_network, an_instance
from tests.e2e.test_lifecycle_fake import instance_files, wait_phase
from tests.fixtures.agent import AgentFactory, AgentProcess
from tests.fixtures.operator import OperatorProcess
from tests.integration.operator.test_scheduling import (
    apply,
    catalog,
    condition,
    get,
    host_ready,
    wait_ready,
)
from tests.support.waiting import eventually

pytestmark = pytest.mark.apiserver

FIXED_IP = "10.20.0.250"
SMALL = "vcpus=4,memoryMiB=4096,diskGiB=100"


def fixed_ips_of(inventory_url: str, uid: str) -> list[str]:
    engine = inv.make_engine(inventory_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(select(FixedIp.address).where(FixedIp.consumer_uid == uid))
            return [str(row[0]) for row in rows]
    finally:
        engine.dispose()


def claim_of(inventory_url: str, uid: str) -> inv.Claim | None:
    engine = inv.make_engine(inventory_url)
    try:
        return inv.find_claim(engine, uid)
    finally:
        engine.dispose()


@contextmanager
def frozen(agent: AgentProcess) -> Iterator[None]:
    """SIGSTOP the agent (it neither heart-beats nor acts), SIGCONT it whatever happens."""
    assert agent.process is not None
    agent.process.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        agent.process.send_signal(signal.SIGCONT)


def wanting_the_fixed_ip(name: str, namespace: str, flavor: str) -> dict[str, Any]:
    return an_instance(
        name, namespace, flavor=flavor, networks=[{"network": "net", "ip": FIXED_IP}]
    )


def a_running_instance_on_host_a(
    apiserver: ClusterAccess, agents: AgentFactory, namespace: str
) -> tuple[str, AgentProcess, dict[str, Any]]:
    """One agent (fence-a), a Network and an Instance on it holding FIXED_IP."""
    flavor = catalog(apiserver, memory=512)
    apply(apiserver, a_network("net", namespace, cidr="10.20.0.0/24"))
    host_a = agents.start("fence-a", capacity=SMALL)
    wait_ready(apiserver, "fence-a")
    apply(apiserver, wanting_the_fixed_ip("old", namespace, flavor))
    body = wait_phase(apiserver, namespace, "old", "Running")
    assert body["status"]["host"] == "fence-a"
    assert body["status"]["addresses"][0]["ip"] == FIXED_IP
    return flavor, host_a, body


def deleted_and_held(
    apiserver: ClusterAccess, namespace: str, inventory_url: str, uid: str
) -> dict[str, Any]:
    """Delete `old` on its NotReady host: it shows Deleting, says why, and keeps everything."""
    eventually(lambda: host_ready(apiserver, "fence-a") == "False", what="fence-a NotReady")
    apiserver.kubectl("delete", "instance", "old", "-n", namespace, "--wait=false")

    def deleting() -> dict[str, Any] | None:
        body = get(apiserver, namespace, "old")
        return body if ((body or {}).get("status") or {}).get("phase") == "Deleting" else None

    body = eventually(deleting, timeout=30, what="old Deleting")
    entry = condition(body, "Deleted")
    assert (entry["status"], entry["reason"]) == ("False", "HostNotFenced")
    assert entry["message"].startswith(
        "host fence-a is not ready: its guest may still run, so its resources stay held"
    )
    assert (
        """kubectl patch host fence-a --type=merge -p '{"spec":{"outOfService":true}}'"""
        in entry["message"]
    )
    events = json.loads(
        apiserver.kubectl(
            "get",
            "events",
            "-n",
            namespace,
            "--field-selector",
            "reason=HostNotFenced",
            "-o",
            "json",
        ).stdout
    )["items"]
    assert [e["involvedObject"]["name"] for e in events] == ["old"]
    assert fixed_ips_of(inventory_url, uid) == [FIXED_IP]
    claim = claim_of(inventory_url, uid)
    assert claim is not None
    assert claim.host == "fence-a"
    return body


def test_the_fixed_ip_of_an_instance_on_a_frozen_host_is_reused_only_once_fenced(
    apiserver: ClusterAccess,
    operator: OperatorProcess,
    agents: AgentFactory,
    namespace: str,
    inventory_url: str,
) -> None:
    flavor, host_a, old = a_running_instance_on_host_a(apiserver, agents, namespace)
    uid = old["metadata"]["uid"]
    agents.start("fence-b", capacity=SMALL)
    with frozen(host_a):
        deleted_and_held(apiserver, namespace, inventory_url, uid)

        # Another Instance asking for the address is refused while the old guest may run.
        apply(apiserver, wanting_the_fixed_ip("new", namespace, flavor))

        def refused() -> dict[str, Any] | None:
            entry = condition(get(apiserver, namespace, "new"), "Scheduled")
            return entry if entry.get("reason") == "AddressUnavailable" else None

        entry = eventually(refused, timeout=30, what="new refused")
        assert entry["status"] == "False"
        assert f"requested ip {FIXED_IP} of Network net is already in use" in entry["message"]
        assert fixed_ips_of(inventory_url, uid) == [FIXED_IP]
        assert get(apiserver, namespace, "old") is not None

        # An admin fences host A: the old Instance goes, its address passes to the new one.
        apiserver.kubectl(
            "patch", "host", "fence-a", "--type=merge", "-p", '{"spec":{"outOfService":true}}'
        )
        eventually(lambda: get(apiserver, namespace, "old") is None, what="old gone")
        assert fixed_ips_of(inventory_url, uid) == []
        assert claim_of(inventory_url, uid) is None
        new = wait_phase(apiserver, namespace, "new", "Running")
        assert new["status"]["host"] == "fence-b"  # an out-of-service host takes nothing
        assert new["status"]["addresses"][0]["ip"] == FIXED_IP
        assert fixed_ips_of(inventory_url, new["metadata"]["uid"]) == [FIXED_IP]


def test_an_agent_that_comes_back_destroys_the_domain_and_the_ip_is_released(
    apiserver: ClusterAccess,
    operator: OperatorProcess,
    agents: AgentFactory,
    namespace: str,
    inventory_url: str,
) -> None:
    _, host_a, old = a_running_instance_on_host_a(apiserver, agents, namespace)
    uid = old["metadata"]["uid"]
    assert len(instance_files(host_a.state_dir)) == 1
    with frozen(host_a):
        deleted_and_held(apiserver, namespace, inventory_url, uid)
        assert len(instance_files(host_a.state_dir)) == 1  # nobody touched the guest
    # SIGCONT: the agent heart-beats again, tears the domain down, lets the Instance go.
    eventually(lambda: get(apiserver, namespace, "old") is None, timeout=60, what="old gone")
    assert instance_files(host_a.state_dir) == []
    assert fixed_ips_of(inventory_url, uid) == []
    assert claim_of(inventory_url, uid) is None
    eventually(lambda: host_ready(apiserver, "fence-a") == "True", what="fence-a Ready again")


def ready_owners(apiserver: ClusterAccess, namespace: str, name: str) -> list[str]:
    """The field managers that own the Instance's Ready status (its type, the list key, is
    shared by whoever applied the entry)."""
    body = json.loads(
        apiserver.kubectl(
            "get", "instance", name, "-n", namespace, "-o", "json", "--show-managed-fields"
        ).stdout
    )
    return [
        entry["manager"]
        for entry in body["metadata"]["managedFields"]
        if "f:status"
        in (((entry.get("fieldsV1") or {}).get("f:status") or {}).get("f:conditions") or {}).get(
            'k:{"type":"Ready"}', {}
        )
    ]


def with_ready(
    apiserver: ClusterAccess, namespace: str, name: str, status: str
) -> dict[str, Any] | None:
    """The Instance, once its Ready condition's status is `status`."""
    body = get(apiserver, namespace, name)
    return body if condition(body, "Ready").get("status") == status else None


def test_an_instance_on_a_frozen_host_shows_ready_unknown_until_its_agent_is_back(
    apiserver: ClusterAccess,
    operator: OperatorProcess,
    agents: AgentFactory,
    namespace: str,
    inventory_url: str,
) -> None:
    _, host_a, old = a_running_instance_on_host_a(apiserver, agents, namespace)
    assert condition(old, "Ready")["status"] == "True"
    with frozen(host_a):
        eventually(lambda: host_ready(apiserver, "fence-a") == "False", what="fence-a NotReady")
        body = eventually(
            lambda: with_ready(apiserver, namespace, "old", "Unknown"),
            timeout=30,
            what="old Ready Unknown",
        )
        entry = condition(body, "Ready")
        assert entry["reason"] == "HostNotReady"
        assert entry["message"] == (
            "host fence-a is not ready (its agent stopped heart-beating): whether the guest "
            "still runs is unknown"
        )
        assert body["status"]["phase"] == "Running"  # what the agent said last: it may run
        assert body["status"]["host"] == "fence-a"  # nothing moved, nothing released
        assert fixed_ips_of(inventory_url, old["metadata"]["uid"]) == [FIXED_IP]
        assert ready_owners(apiserver, namespace, "old") == ["kubenova-host-monitor"]
        events = json.loads(
            apiserver.kubectl(
                "get", "events", "-n", namespace, "--field-selector",
                "reason=HostNotReady,involvedObject.name=old", "-o", "json",
            ).stdout
        )["items"]  # fmt: skip
        assert len(events) == 1
    # SIGCONT: the agent heart-beats again and says Ready itself, under its own name.
    body = eventually(
        lambda: with_ready(apiserver, namespace, "old", "True"), timeout=60, what="old Ready again"
    )
    assert ready_owners(apiserver, namespace, "old") == ["kubenova-agent"]
    assert body["status"]["host"] == "fence-a"
