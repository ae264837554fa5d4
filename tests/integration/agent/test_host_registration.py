"""Host registration and heartbeat against the real kube-apiserver."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Any

import pytest

from kubenova.agents.host import AGENT_READY, Capacity, HostRegistration
from kubenova.agents.host.registration import HOSTS
from kubenova.devcluster import ClusterAccess
from kubenova.kube import KubeClient, load_config
from kubenova.kube.paths import LEASES
from kubenova.wellknown import SYSTEM_NAMESPACE, lease_name

pytestmark = pytest.mark.apiserver

CAPACITY = Capacity(vcpus=8, memory_mib=16384, disk_gib=200)


def a_host_name() -> str:
    return f"reg-{uuid.uuid4().hex[:8]}"


def registration(client: KubeClient, name: str, **overrides: Any) -> HostRegistration:
    settings: dict[str, Any] = {
        "capacity": CAPACITY,
        "zone": "az-1",
        "services": ("compute", "volume"),
        "domain_type": "qemu",
        "underlay_ip": "10.0.0.7",
    }
    return HostRegistration(client, name, **(settings | overrides))


def parse_micro_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ")


def test_register_creates_the_host_with_spec_defaults_and_agent_status(
    apiserver: ClusterAccess, crds_installed: list[str]
) -> None:
    name = a_host_name()

    async def scenario() -> dict[str, Any]:
        async with KubeClient(load_config(apiserver.kubeconfig)) as client:
            await registration(client, name).register()
            return await client.get(HOSTS, name)

    host = asyncio.run(scenario())

    assert host["spec"]["availabilityZone"] == "az-1"
    assert host["spec"]["services"] == ["compute", "volume"]
    assert host["spec"]["schedulable"] is True
    assert host["spec"]["overcommit"] == {"cpu": 16.0, "memory": 1.5, "disk": 1.0}
    status = host["status"]
    assert status["capacity"] == {"vcpus": 8, "memoryMiB": 16384, "diskGiB": 200}
    assert status["domainType"] == "qemu"
    assert status["underlayIP"] == "10.0.0.7"
    assert status["agentVersion"]
    (ready,) = [c for c in status["conditions"] if c["type"] == AGENT_READY]
    assert ready["status"] == "True"
    managers = {entry["manager"] for entry in host["metadata"]["managedFields"]}
    assert "kubenova-agent" in managers


def test_register_again_writes_nothing_and_keeps_an_admins_spec_edits(
    apiserver: ClusterAccess, crds_installed: list[str]
) -> None:
    name = a_host_name()

    async def scenario() -> tuple[dict[str, Any], int]:
        async with KubeClient(load_config(apiserver.kubeconfig)) as client:
            await registration(client, name).register()
            # An administrator cordons the host and moves it to another zone.
            await client.patch(
                HOSTS, name, {"spec": {"schedulable": False, "availabilityZone": "az-9"}}
            )
            writes_before = sum(client.writes.values())
            # The agent restarts with its original configuration.
            await registration(client, name).register()
            writes = sum(client.writes.values()) - writes_before
            return await client.get(HOSTS, name), writes

    host, writes = asyncio.run(scenario())

    assert host["spec"]["schedulable"] is False
    assert host["spec"]["availabilityZone"] == "az-9"
    # The spec edit bumped the generation, so observedGeneration moves: one status write.
    assert writes == 1
    assert host["status"]["observedGeneration"] == host["metadata"]["generation"]


def test_a_restart_with_unchanged_host_makes_no_write(
    apiserver: ClusterAccess, crds_installed: list[str]
) -> None:
    name = a_host_name()

    async def scenario() -> int:
        async with KubeClient(load_config(apiserver.kubeconfig)) as client:
            await registration(client, name).register()
            before = sum(client.writes.values())
            await registration(client, name).register()
            return sum(client.writes.values()) - before

    assert asyncio.run(scenario()) == 0


def test_new_capacity_is_reported(apiserver: ClusterAccess, crds_installed: list[str]) -> None:
    name = a_host_name()

    async def scenario() -> dict[str, Any]:
        async with KubeClient(load_config(apiserver.kubeconfig)) as client:
            await registration(client, name).register()
            bigger = Capacity(vcpus=16, memory_mib=32768, disk_gib=400)
            await registration(client, name, capacity=bigger, underlay_ip=None).register()
            return await client.get(HOSTS, name)

    status = asyncio.run(scenario())["status"]

    assert status["capacity"] == {"vcpus": 16, "memoryMiB": 32768, "diskGiB": 400}
    assert "underlayIP" not in status


def test_heartbeat_creates_the_lease_and_advances_renew_time(
    apiserver: ClusterAccess, crds_installed: list[str]
) -> None:
    name = a_host_name()

    async def scenario() -> list[dict[str, Any]]:
        async with KubeClient(load_config(apiserver.kubeconfig)) as client:
            reg = registration(client, name, heartbeat_interval=0.3)
            await reg.register()
            heartbeat = asyncio.create_task(reg.run_heartbeat())
            seen = []
            try:
                for _ in range(3):
                    await asyncio.sleep(0.45)
                    seen.append(await client.get(LEASES, lease_name(name), SYSTEM_NAMESPACE))
            finally:
                heartbeat.cancel()
            return seen

    leases = asyncio.run(scenario())

    spec = leases[-1]["spec"]
    assert spec["holderIdentity"] == name
    assert spec["leaseDurationSeconds"] == 40
    renewals = [parse_micro_time(lease["spec"]["renewTime"]) for lease in leases]
    assert renewals == sorted(renewals)
    assert renewals[0] < renewals[-1]
    # MicroTime keeps microseconds (a plain RFC 3339 time would be rejected or truncated).
    assert "." in spec["renewTime"]


def test_a_deleted_lease_is_created_again(
    apiserver: ClusterAccess, crds_installed: list[str]
) -> None:
    name = a_host_name()

    async def scenario() -> dict[str, Any]:
        async with KubeClient(load_config(apiserver.kubeconfig)) as client:
            reg = registration(client, name)
            await reg.renew()
            await client.delete(LEASES, lease_name(name), SYSTEM_NAMESPACE)
            await reg.renew()
            return await client.get(LEASES, lease_name(name), SYSTEM_NAMESPACE)

    lease = asyncio.run(scenario())

    assert lease["spec"]["holderIdentity"] == name
