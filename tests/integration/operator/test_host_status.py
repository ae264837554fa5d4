"""Host status costs the API server a write only when a reader would see a change."""

from __future__ import annotations

import json
import re
import urllib.request
from datetime import datetime

import pytest

from kubenova.devcluster import ClusterAccess
from kubenova.wellknown import SYSTEM_NAMESPACE, lease_name
from tests.builders import an_instance
from tests.fixtures.operator import OperatorProcess
from tests.integration.operator.test_resilience import all_scheduled
from tests.integration.operator.test_scheduling import apply, catalog, host_ready, wait_ready
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


def test_placements_and_a_dead_host_cost_no_more_host_status_writes(
    apiserver: ClusterAccess,
    operator: OperatorProcess,
    hosts: SimulatedHosts,
    namespace: str,
) -> None:
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

    # Per host: NotReady ("no heartbeat yet": the Host is created before its Lease), then
    # Ready; and the dead one's NotReady. Forty placements and the checks add nothing.
    assert host_status_writes(operator) <= 2 * len(HOSTS) + 1
