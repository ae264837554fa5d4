"""Host status costs the API server a write only when a reader would see a change, at most
one per host per 10 s but for a Ready flip; and it shows what placements claimed there."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from datetime import datetime

import pytest

from kubenova.devcluster import ClusterAccess
from kubenova.operator import inventory as inv
from kubenova.operator.hosts.status import MIN_WRITE_INTERVAL
from kubenova.wellknown import SYSTEM_NAMESPACE, lease_name
from tests.builders import an_instance
from tests.fixtures.operator import OperatorProcess
from tests.integration.operator.test_resilience import all_scheduled
from tests.integration.operator.test_scheduling import (
    apply,
    catalog,
    host_ready,
    play_agent_deletes,
    wait_ready,
)
from tests.support.hosts import SimulatedHosts
from tests.support.waiting import eventually

pytestmark = pytest.mark.apiserver

HOSTS = ("h-quiet-a", "h-quiet-b", "h-quiet-c")


def host_status_writes(operator: OperatorProcess) -> int:
    """The operator's own count of its `hosts/status` writes since it started."""
    url = f"http://127.0.0.1:{operator.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    found = re.search(
        r'kubenova_api_writes_total\{component="kubenova-operator",resource="hosts/status",'
        r'verb="PATCH"\} ([0-9.]+)',
        text,
    )
    return int(float(found.group(1))) if found else 0


def renewed_at(cluster: ClusterAccess, host: str) -> datetime:
    lease = json.loads(
        cluster.kubectl(
            "get", "lease", lease_name(host), "-n", SYSTEM_NAMESPACE, "-o", "json"
        ).stdout
    )
    return datetime.fromisoformat(lease["spec"]["renewTime"])


def test_placements_and_a_dead_host_cost_host_status_writes_only_at_the_bounded_rate(
    apiserver: ClusterAccess,
    operator: OperatorProcess,
    hosts: SimulatedHosts,
    namespace: str,
) -> None:
    started = time.monotonic()
    flavor = catalog(apiserver, memory=128)
    for name in HOSTS:
        hosts.add(name, memory_mib=65536)
    wait_ready(apiserver, *HOSTS)
    apply(apiserver, *(an_instance(f"vm{i}", namespace, flavor=flavor) for i in range(20)))
    all_scheduled(apiserver, namespace, 20)

    dead = HOSTS[-1]
    hosts.stop_heartbeat(dead)
    eventually(lambda: host_ready(apiserver, dead) == "False", timeout=20, what=f"{dead} down")
    apply(apiserver, *(an_instance(f"vm{i}", namespace, flavor=flavor) for i in range(20, 40)))
    all_scheduled(apiserver, namespace, 40)
    # The operator re-judges the dead host on every lease check (each 0.5 s here): let it do
    # so a few times, while the live hosts heart-beat on.
    since = renewed_at(apiserver, HOSTS[0])
    eventually(
        lambda: (renewed_at(apiserver, HOSTS[0]) - since).total_seconds() >= 3,
        what="3 s more of heartbeats",
    )

    elapsed = time.monotonic() - started

    # Per host: NotReady ("no heartbeat yet": the Host is created before its Lease), then
    # Ready; and the dead one's NotReady. Forty placements change each host's
    # status.allocated, which costs a host one write per interval however many land on it
    # (written at each one, that would be 40 more); the lease checks add nothing.
    fill_writes = len(HOSTS) * (1 + int(elapsed // MIN_WRITE_INTERVAL))
    assert host_status_writes(operator) <= 2 * len(HOSTS) + 1 + fill_writes


def allocated(cluster: ClusterAccess, host: str) -> dict[str, int] | None:
    body = json.loads(cluster.kubectl("get", "host", host, "-o", "json").stdout)
    found: dict[str, int] | None = (body.get("status") or {}).get("allocated")
    return found


def test_a_host_shows_what_placements_claimed_on_it(
    apiserver: ClusterAccess,
    operator: OperatorProcess,
    hosts: SimulatedHosts,
    namespace: str,
    inventory_url: str,
) -> None:
    flavor = catalog(apiserver, memory=256)  # 1 vCPU, 256 MiB, 1 GiB
    hosts.add("h-fill", vcpus=16, memory_mib=65536, disk_gib=200)
    wait_ready(apiserver, "h-fill")
    eventually(
        lambda: allocated(apiserver, "h-fill") == {"vcpus": 0, "memoryMiB": 0, "diskGiB": 0},
        timeout=20,
        what="an empty host's fill",
    )
    apply(apiserver, *(an_instance(f"fill{i}", namespace, flavor=flavor) for i in range(5)))
    all_scheduled(apiserver, namespace, 5)
    engine = inv.make_engine(inventory_url)

    def shows_the_inventory(expected: dict[str, int]) -> bool:
        used = inv.host_usage(engine)["h-fill"]
        held = {"vcpus": used.vcpus, "memoryMiB": used.memory_mb, "diskGiB": used.disk_gb}
        return held == expected and allocated(apiserver, "h-fill") == expected

    # One write per interval at most: the fill shows within it (and a lease check).
    five = {"vcpus": 5, "memoryMiB": 5 * 256, "diskGiB": 5}
    eventually(lambda: shows_the_inventory(five), timeout=MIN_WRITE_INTERVAL + 10, what="fill")
    wide = apiserver.kubectl("get", "host", "h-fill", "-o", "wide").stdout.splitlines()
    header, row = wide[0].split(), wide[1].split()
    shown = dict(zip(header, row, strict=True))
    assert (shown["ALLOCVCPUS"], shown["ALLOCMEMORY"], shown["ALLOCDISK"]) == ("5", "1280", "5")
    assert (shown["VCPUS"], shown["MEMORY"], shown["DISK"]) == ("16", "65536", "200")

    for name in ("fill0", "fill1"):
        apiserver.kubectl("delete", "instance", name, "-n", namespace, "--wait=false")
        play_agent_deletes(apiserver, namespace, name)
    three = {"vcpus": 3, "memoryMiB": 3 * 256, "diskGiB": 3}
    eventually(lambda: shows_the_inventory(three), timeout=MIN_WRITE_INTERVAL + 10, what="freed")
