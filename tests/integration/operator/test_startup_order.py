"""An operator starting on a backlog places nothing before it judged the hosts and filed the
catalog, however early its lists come (they are read while it still imports)."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubenova.devcluster import ClusterAccess
from kubenova.wellknown import SYSTEM_NAMESPACE, lease_name
from tests.builders import a_flavor, a_server_group, an_image, an_instance, as_yaml
from tests.fixtures.operator import OperatorProcess, running_operator
from tests.support.hosts import SimulatedHosts
from tests.support.waiting import eventually

pytestmark = pytest.mark.apiserver

BACKLOG = 12


def ready(cluster: ClusterAccess, host: str) -> str | None:
    body = json.loads(cluster.kubectl("get", "host", host, "-o", "json").stdout)
    conditions = (body.get("status") or {}).get("conditions", [])
    return next((c["status"] for c in conditions if c["type"] == "Ready"), None)


def placed(cluster: ClusterAccess, namespace: str) -> dict[str, str] | None:
    """Every Instance's host once all of them are Scheduled, else None."""
    items = json.loads(cluster.kubectl("get", "instances", "-n", namespace, "-o", "json").stdout)
    hosts: dict[str, str] = {}
    for item in items["items"]:
        status: dict[str, Any] = item.get("status") or {}
        conditions = status.get("conditions", [])
        if not any(c["type"] == "Scheduled" and c["status"] == "True" for c in conditions):
            return None
        hosts[item["metadata"]["name"]] = status["host"]
    return hosts if len(hosts) == BACKLOG else None


@pytest.fixture
def first_run(
    apiserver: ClusterAccess, crds_installed: list[str], inventory_url: str, tmp_path: Path
) -> Iterator[OperatorProcess]:
    yield from running_operator(apiserver, inventory_url, tmp_path)


def test_a_host_dead_while_the_operator_was_down_gets_nothing_of_the_backlog(
    apiserver: ClusterAccess,
    first_run: OperatorProcess,
    hosts: SimulatedHosts,
    namespace: str,
    inventory_url: str,
    tmp_path: Path,
) -> None:
    suffix = uuid.uuid4().hex[:6]
    live, dead = f"live-{suffix}", f"dead-{suffix}"
    hosts.add(live, vcpus=64, memory_mib=65536)
    hosts.add(dead, vcpus=64, memory_mib=65536)
    for host in (live, dead):
        eventually(lambda h=host: ready(apiserver, h) == "True", timeout=20, what=f"{host} Ready")
    first_run.stop()  # the inventory now holds both hosts as Ready

    # While no operator runs: the dead host's agent is gone with its Lease, and a backlog
    # arrives whose Flavor, Image and ServerGroup the operator has never seen.
    hosts.stop_heartbeat(dead)
    apiserver.kubectl("delete", "lease", lease_name(dead), "-n", SYSTEM_NAMESPACE)
    flavor, image, group = f"start-{suffix}", f"start-{suffix}", f"spread-{suffix}"
    docs = [a_flavor(flavor), an_image(image), a_server_group(group, namespace, "affinity")]
    docs += [
        an_instance(f"vm-{i}", namespace, flavor=flavor, image=image, placement={"group": group})
        for i in range(BACKLOG)
    ]
    apiserver.kubectl("apply", "-f", "-", input=as_yaml(*docs))

    second = OperatorProcess(
        log_path=tmp_path / "operator-2.log",
        kubeconfig=apiserver.kubeconfig,
        database_url=inventory_url,
    )
    second.start()
    try:
        hosts_of = eventually(lambda: placed(apiserver, namespace), timeout=30, what="backlog")
    finally:
        second.stop()
    # Judged before the first placement: had the inventory's last word (Ready) been used,
    # the dead host would have got Instances; with their group's affinity, maybe all.
    assert set(hosts_of.values()) == {live}
    log = second.log()
    assert re.search(r"\d+ hosts judged: placing from [\d.]+ s after process start", log)
    # Filed before the first placement: one status write per Instance, none saying its
    # Flavor, Image or ServerGroup does not exist (and then another once it arrived).
    writes = json.loads(re.findall(r"api writes: (\{.*\})", log)[-1])
    assert writes.get("PATCH instances/status") == BACKLOG, writes
