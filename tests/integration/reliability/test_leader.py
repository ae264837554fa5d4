"""One active brain: operator replicas on PostgreSQL, one leader Lease, one writer.

Each replica is a real `kubenova-operator` process with its own POD_NAME (as two pods
would be), so a takeover waits out the lease instead of seeing the old holder's pid gone
on this host. The standby's own metrics show it wrote nothing; the inventory shows every
Instance claimed exactly once; a leader paused past its lease and resumed after another
took over writes nothing more and exits.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kubenova.devcluster import ClusterAccess
from kubenova.operator import inventory as inv
from kubenova.operator.inventory.consumers import list_consumers
from tests.builders import an_instance
from tests.fixtures.operator import OperatorProcess, clean_slate
from tests.fixtures.postgres import PostgresCluster
from tests.integration.operator.test_resilience import all_scheduled
from tests.integration.operator.test_scheduling import apply, catalog, host_ready, wait_ready
from tests.support.hosts import SimulatedHosts
from tests.support.waiting import eventually

pytestmark = [pytest.mark.apiserver, pytest.mark.postgres]

# The acceptance bound of issue 13: a killed leader is replaced within this.
TAKEOVER_BOUND = 15.0

Replicas = Callable[[str], OperatorProcess]


@pytest.fixture
def pg_inventory(postgres_cluster: PostgresCluster) -> str:
    url = postgres_cluster.create_database()
    inv.upgrade(url)
    return url


@pytest.fixture
def replicas(
    apiserver: ClusterAccess, crds_installed: list[str], pg_inventory: str, tmp_path: Path
) -> Iterator[Replicas]:
    """Start replica `name` (POD_NAME replica-<name>) on the shared PostgreSQL inventory."""
    clean_slate(apiserver)
    started: list[OperatorProcess] = []

    def start(name: str) -> OperatorProcess:
        process = OperatorProcess(
            log_path=tmp_path / f"operator-{name}.log",
            env={**os.environ, "POD_NAME": f"replica-{name}"},
            kubeconfig=apiserver.kubeconfig,
            database_url=pg_inventory,
        )
        process.start()
        started.append(process)
        return process

    yield start
    for process in started:
        if process.process is not None and process.process.poll() is None:
            os.kill(process.process.pid, signal.SIGCONT)  # a paused one must hear SIGTERM
        process.stop()


def leads(process: OperatorProcess) -> bool:
    return "leading as" in process.log()


def stands_by(process: OperatorProcess) -> bool:
    return "standing by for leader lease" in process.log()


def writes(process: OperatorProcess) -> dict[str, int]:
    """The replica's API writes since it started ("PATCH hosts/status" -> count)."""
    url = f"http://127.0.0.1:{process.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    found = re.findall(
        r'kubenova_api_writes_total\{component="kubenova-operator",resource="([^"]+)",'
        r'verb="([A-Z]+)"\} ([0-9.]+)',
        text,
    )
    return {f"{verb} {resource}": int(float(n)) for resource, verb, n in found if float(n)}


def steady_writes(process: OperatorProcess) -> dict[str, int]:
    """The replica's writes (its Lease's aside) once a second passes without one: steady
    by observation, not by a fixed sleep that a loaded machine outlasts."""
    last: dict[str, int] = {}

    def unchanged() -> tuple[dict[str, int]] | None:
        nonlocal last
        now = {k: v for k, v in writes(process).items() if "leases" not in k}
        same = now == last
        last = now
        return (now,) if same else None  # a tuple: no writes at all is steady too

    (steady,) = eventually(unchanged, timeout=30, interval=1.0, what="the leader's writes steady")
    return steady


def started(replicas: Replicas, count: int) -> list[OperatorProcess]:
    """`count` replicas, the first one leading, the others standing by."""
    first = replicas("a")
    eventually(lambda: leads(first), timeout=30, what="the first replica to lead")
    others = [replicas(name) for name in "bcdefgh"[: count - 1]]
    for other in others:
        eventually(lambda o=other: stands_by(o), timeout=30, what="a replica to stand by")
    return [first, *others]


def claimed_once(url: str, bodies: list[dict[str, object]]) -> None:
    claims = list_consumers(inv.make_engine(url), "Instance")
    uids = [c.uid for c in claims]
    assert len(uids) == len(set(uids)), "an Instance was claimed twice"
    assert sorted(uids) == sorted(b["metadata"]["uid"] for b in bodies)  # type: ignore[index]


@pytest.mark.parametrize("count", [2, 3])
def test_one_replica_leads_and_a_killed_leader_is_replaced_within_15_s(
    apiserver: ClusterAccess,
    replicas: Replicas,
    hosts: SimulatedHosts,
    namespace: str,
    pg_inventory: str,
    count: int,
) -> None:
    first, *standbys = started(replicas, count)
    flavor = catalog(apiserver)
    hosts.add("h-leader", memory_mib=65536)
    wait_ready(apiserver, "h-leader")
    apply(apiserver, *[an_instance(f"l{i}", namespace, flavor=flavor) for i in range(5)])
    all_scheduled(apiserver, namespace, 5)
    for standby in standbys:
        assert not leads(standby)
        assert writes(standby) == {}, "a standby wrote (not even its own Lease is written)"

    first.kill()
    killed = time.monotonic()
    # A backlog that only the next leader can place.
    apply(apiserver, *[an_instance(f"k{i}", namespace, flavor=flavor) for i in range(20)])
    leader = eventually(
        lambda: next((s for s in standbys if leads(s)), None),
        timeout=30,
        interval=0.1,
        what="a standby to lead",
    )
    takeover = time.monotonic() - killed
    bodies = all_scheduled(apiserver, namespace, 25)
    claimed_once(pg_inventory, bodies)
    print(f"takeover after kill -9 ({count} replicas): {takeover:.1f}s")
    assert takeover < TAKEOVER_BOUND
    assert [s for s in standbys if leads(s)] == [leader], "two replicas led"
    lease = json.loads(
        apiserver.kubectl(
            "get", "lease", "kubenova-operator-leader", "-n", "kubenova-system", "-o", "json"
        ).stdout
    )
    assert leader.process is not None
    assert lease["spec"]["holderIdentity"].endswith(f"_{leader.process.pid}")


def test_a_paused_leader_resumed_after_a_takeover_writes_nothing_and_exits(
    apiserver: ClusterAccess,
    replicas: Replicas,
    hosts: SimulatedHosts,
    namespace: str,
    pg_inventory: str,
) -> None:
    first, second = started(replicas, 2)
    flavor = catalog(apiserver)
    hosts.add("h-pause", memory_mib=65536)
    wait_ready(apiserver, "h-pause")
    apply(apiserver, *[an_instance(f"p{i}", namespace, flavor=flavor) for i in range(3)])
    all_scheduled(apiserver, namespace, 3)
    before = steady_writes(first)

    assert first.process is not None
    first.process.send_signal(signal.SIGSTOP)
    stopped = time.monotonic()
    eventually(lambda: leads(second), timeout=30, interval=0.1, what="the standby to lead")
    print(f"takeover from a paused leader: {time.monotonic() - stopped:.1f}s")
    apply(apiserver, *[an_instance(f"q{i}", namespace, flavor=flavor) for i in range(5)])
    bodies = all_scheduled(apiserver, namespace, 8)
    # The paused one's last sight of h-pause's heartbeat is now far older than the host
    # lease timeout: were it to act on its view, it would call the host NotReady.
    first.process.send_signal(signal.SIGCONT)
    assert first.process.wait(timeout=15) == 1, "a demoted replica exits"
    log = first.log()
    assert "lost the leader lease" in log
    found = re.findall(r"leadership lost: exiting; api writes: (\{.*\})", log)
    assert found, log[-2000:]
    after = json.loads(found[-1])
    assert after == before, "the resumed replica wrote after it was paused"
    for _ in range(6):  # nothing it queued reaches the host either
        assert host_ready(apiserver, "h-pause") == "True"
        time.sleep(0.5)
    assert leads(second)
    assert "leadership lost" not in second.log()
    claimed_once(pg_inventory, bodies)
