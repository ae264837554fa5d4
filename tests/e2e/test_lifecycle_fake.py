"""Operator + agents as processes on the real apiserver, libvirt's test driver as hypervisor.

The whole life of Instances across several hosts: create → Running, stop, start, reboot,
delete — and afterwards no domain, no claim, no finalizer is left anywhere.
"""

from __future__ import annotations

import json
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from kubenova.devcluster import ClusterAccess
from kubenova.operator import inventory as inv
from kubenova.operator.inventory.consumers import list_consumers
from tests.builders import an_instance, as_yaml
from tests.fixtures.agent import AgentFactory
from tests.fixtures.operator import OperatorProcess
from tests.integration.operator.test_scheduling import catalog, condition, get, wait_ready
from tests.support.waiting import eventually

pytestmark = pytest.mark.apiserver


def phase_of(cluster: ClusterAccess, namespace: str, name: str) -> str | None:
    body = get(cluster, namespace, name)
    return ((body or {}).get("status") or {}).get("phase")


def wait_phase(cluster: ClusterAccess, namespace: str, name: str, phase: str) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        body = get(cluster, namespace, name)
        return body if ((body or {}).get("status") or {}).get("phase") == phase else None

    return eventually(probe, timeout=60, what=f"{name} {phase}")


def instance_files(agent_state: Path) -> list[str]:
    """What the fake driver keeps per domain (its test-driver state is private to the agent)."""
    root = agent_state / "fake-libvirt"
    return sorted(p.name for p in root.glob("kubenova-*")) if root.exists() else []


def patch_spec(cluster: ClusterAccess, namespace: str, name: str, spec: dict[str, Any]) -> None:
    cluster.kubectl(
        "patch", "instance", name, "-n", namespace, "--type=merge", "-p", json.dumps({"spec": spec})
    )


def test_instances_live_and_die_across_two_hosts(
    apiserver: ClusterAccess,
    operator: OperatorProcess,
    agents: AgentFactory,
    namespace: str,
    inventory_url: str,
) -> None:
    flavor = catalog(apiserver, memory=512)
    agents.start("e2e-a", capacity="vcpus=4,memoryMiB=2048,diskGiB=100")
    agents.start("e2e-b", capacity="vcpus=4,memoryMiB=2048,diskGiB=100")
    wait_ready(apiserver, "e2e-a", "e2e-b")
    names = [f"vm{i}" for i in range(6)]
    apiserver.kubectl(
        "apply",
        "-f",
        "-",
        input=as_yaml(*[an_instance(n, namespace, flavor=flavor) for n in names]),
    )
    bodies = [wait_phase(apiserver, namespace, n, "Running") for n in names]
    for body in bodies:
        assert condition(body, "Ready")["status"] == "True"
        assert body["status"]["domain"]["uuid"] == body["metadata"]["uid"]
        assert body["status"]["observedGeneration"] == body["metadata"]["generation"]
    assert {b["status"]["host"] for b in bodies} == {"e2e-a", "e2e-b"}  # spread
    assert sum(len(instance_files(a.state_dir)) for a in agents.agents) == len(names)

    # the agent's metrics: driver call latency per call, and its reconciles
    port = next(
        a.split("=", 1)[1] for a in agents.agents[0].command if a.startswith("--metrics-port=")
    )
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        metrics = response.read().decode()
    assert 'kubenova_agent_driver_call_seconds_count{call="spawn",service="compute"}' in metrics
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as response:
        assert response.status == 200

    # power off and on again
    patch_spec(apiserver, namespace, "vm0", {"powerState": "Stopped"})
    wait_phase(apiserver, namespace, "vm0", "Stopped")
    patch_spec(apiserver, namespace, "vm0", {"powerState": "Running"})
    wait_phase(apiserver, namespace, "vm0", "Running")

    # a reboot request is acted on once
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    patch_spec(apiserver, namespace, "vm1", {"restartRequestedAt": stamp})
    eventually(
        lambda: (
            ((get(apiserver, namespace, "vm1") or {}).get("status") or {}).get("restartedAt")
            == stamp
        ),
        what="reboot acknowledged",
    )

    # delete everything: domains, claims and finalizers all go
    apiserver.kubectl("delete", "instances", "--all", "-n", namespace, "--timeout=60s")
    eventually(
        lambda: all(get(apiserver, namespace, n) is None for n in names), what="instances gone"
    )
    for agent in agents.agents:
        eventually(
            lambda a=agent: instance_files(a.state_dir) == [], what=f"{agent.host} files gone"
        )
    engine = inv.make_engine(inventory_url)
    eventually(lambda: list_consumers(engine, "Instance") == [], what="claims released")
