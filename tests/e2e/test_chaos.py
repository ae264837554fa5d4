"""kill -9 of the operator and an agent at random moments during 200 creates and deletes.

Afterwards: every Instance that should exist runs exactly once, every deleted one is gone
with its claim and its domain — nothing lost, duplicated or orphaned.
"""

from __future__ import annotations

import json
import random
import threading
import time

import pytest

from kubenova.devcluster import ClusterAccess
from kubenova.operator import inventory as inv
from kubenova.operator.inventory.consumers import list_consumers
from tests.builders import an_instance, as_yaml
from tests.e2e.test_lifecycle_fake import instance_files
from tests.fixtures.agent import AgentFactory
from tests.fixtures.operator import OperatorProcess
from tests.integration.operator.test_scheduling import catalog, wait_ready
from tests.support.waiting import eventually

pytestmark = [pytest.mark.apiserver, pytest.mark.slow]

TOTAL = 200
KEEP_EVERY = 4  # every 4th Instance survives; the others are deleted again


def instances(cluster: ClusterAccess, namespace: str) -> list[dict[str, object]]:
    out = cluster.kubectl("get", "instances", "-n", namespace, "-o", "json").stdout
    return list(json.loads(out)["items"])


def test_kill_nine_anywhere_loses_and_leaks_nothing(
    apiserver: ClusterAccess,
    operator: OperatorProcess,
    agents: AgentFactory,
    namespace: str,
    inventory_url: str,
) -> None:
    rng = random.Random(20261125)
    flavor = catalog(apiserver, memory=64)
    agent = agents.start("chaos-host", capacity="vcpus=4096,memoryMiB=1048576,diskGiB=100000")
    wait_ready(apiserver, "chaos-host")
    kills = {"operator": 0, "agent": 0}
    failures: list[BaseException] = []

    def kill_and_restart(victim: str, pause: float) -> None:
        process = operator if victim == "operator" else agent
        try:
            process.kill()
            kills[victim] += 1
            time.sleep(pause)
            process.start()
        except BaseException as error:  # reported by the test, not lost in the thread
            failures.append(error)

    names = [f"c{i:03d}" for i in range(TOTAL)]
    for start in range(0, TOTAL, 20):
        batch = names[start : start + 20]
        # One kill -9 per batch at a random moment of its creates and deletes: the kills
        # are paced by the load, not by the clock, so however fast or slow the machine,
        # each lands while a batch is being worked and before the next one.
        victim = rng.choice(["operator", "agent"])
        delay, pause = rng.uniform(0.0, 0.5), rng.uniform(0.0, 0.5)
        monkey = threading.Timer(delay, kill_and_restart, (victim, pause))
        monkey.start()
        apiserver.kubectl(
            "apply",
            "-f",
            "-",
            input=as_yaml(*[an_instance(n, namespace, flavor=flavor) for n in batch]),
        )
        doomed = [n for i, n in enumerate(batch, start) if i % KEEP_EVERY]
        apiserver.kubectl("delete", "instances", "-n", namespace, "--wait=false", *doomed)
        monkey.join()
    assert not failures, failures
    # both processes run again; let them converge
    kept = sorted(n for i, n in enumerate(names) if i % KEEP_EVERY == 0)

    def converged() -> bool:
        items = instances(apiserver, namespace)
        present = sorted(str(i["metadata"]["name"]) for i in items)  # type: ignore[index]
        running = [i for i in items if (i.get("status") or {}).get("phase") == "Running"]  # type: ignore[union-attr]
        return present == kept and len(running) == len(kept)

    eventually(converged, timeout=240, interval=1, what="only the kept Instances, all Running")
    uids = {str(i["metadata"]["uid"]) for i in instances(apiserver, namespace)}  # type: ignore[index]
    engine = inv.make_engine(inventory_url)
    eventually(
        lambda: {c.uid for c in list_consumers(engine, "Instance")} == uids,
        timeout=60,
        what="claims exactly for the kept Instances",
    )
    eventually(
        lambda: len(instance_files(agent.state_dir)) == len(kept),
        timeout=120,
        what="one domain per kept Instance, no orphans",
    )
    assert sorted(f.removeprefix("kubenova-") for f in instance_files(agent.state_dir)) == sorted(
        uids
    )
    assert kills["operator"] + kills["agent"] == TOTAL // 20, kills
    print(f"chaos: {kills} kills during {TOTAL} creates / {TOTAL - len(kept)} deletes")
