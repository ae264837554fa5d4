"""Crashes, leaks and the write budget: the operator loses nothing and writes little."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.error
import urllib.request
from typing import Any

import pytest

from kubenova.devcluster import ClusterAccess
from kubenova.operator import inventory as inv
from kubenova.operator.inventory.consumers import list_consumers
from tests.builders import an_instance
from tests.fixtures.operator import OperatorProcess
from tests.integration.operator.test_scheduling import apply, catalog, wait_ready
from tests.support.admission import hand_overs_refused
from tests.support.hosts import SimulatedHosts
from tests.support.waiting import eventually

pytestmark = pytest.mark.apiserver


def scheduled(cluster: ClusterAccess, namespace: str) -> list[dict[str, Any]]:
    """The Instances of `namespace` handed over to a host."""
    items = json.loads(cluster.kubectl("get", "instances", "-n", namespace, "-o", "json").stdout)[
        "items"
    ]
    # One status write commits the hand-over: host and Scheduled come together.
    return [
        i
        for i in items
        if any(
            c["type"] == "Scheduled" and c["status"] == "True"
            for c in (i.get("status") or {}).get("conditions", [])
        )
        and (i.get("status") or {}).get("host")
    ]


def all_scheduled(cluster: ClusterAccess, namespace: str, count: int) -> list[dict[str, Any]]:
    def probe() -> list[dict[str, Any]] | None:
        done = scheduled(cluster, namespace)
        return done if len(done) == count else None

    return eventually(probe, timeout=60, what=f"{count} instances scheduled")


def delete_behind_the_operators_back(cluster: ClusterAccess, namespace: str, name: str) -> None:
    """Strip an Instance's finalizers and delete it: gone without the operator seeing it."""
    cluster.kubectl(
        "patch",
        "instance",
        name,
        "-n",
        namespace,
        "--type=merge",
        "-p",
        '{"metadata":{"finalizers":null}}',
    )
    cluster.kubectl("delete", "instance", name, "-n", namespace)


def run_audit(cluster: ClusterAccess, inventory_url: str) -> subprocess.CompletedProcess[str]:
    """`kubenova audit` as a user runs it."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "kubenova.cli",
            "audit",
            "--kubeconfig",
            str(cluster.kubeconfig),
            "--database-url",
            inventory_url,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_kill_minus_nine_mid_way_resumes_without_duplicate_claims(
    apiserver: ClusterAccess,
    operator: OperatorProcess,
    hosts: SimulatedHosts,
    namespace: str,
    inventory_url: str,
) -> None:
    flavor = catalog(apiserver)
    count = 30
    apply(apiserver, *[an_instance(f"vm{i}", namespace, flavor=flavor) for i in range(count)])
    engine = inv.make_engine(inventory_url)
    # Part of the way by construction, however fast the operator: it may claim every
    # Instance but hand over (write status.host for) only vm0..vm19, and is killed once
    # some are claimed; the hosts come after the hold, so nothing is placed before it.
    held = [f"vm{i}" for i in range(20, count)]
    with hand_overs_refused(apiserver, namespace, held):
        hosts.add("h-1", memory_mib=16384)
        hosts.add("h-2", memory_mib=16384)
        eventually(
            lambda: len(list_consumers(engine, "Instance")) >= 10,
            interval=0.01,
            what="some claimed before the kill",
        )
        operator.kill()
        at_kill = len(scheduled(apiserver, namespace))
    assert at_kill < count, "the kill came after the hand-overs: nothing was tested"
    operator.start()
    bodies = all_scheduled(apiserver, namespace, count)
    claims = {c.uid: c for c in list_consumers(engine, "Instance")}
    assert len(claims) == count
    for body in bodies:
        claim = claims[body["metadata"]["uid"]]
        assert claim.host == body["status"]["host"]
    usage = inv.host_usage(engine)
    assert sum(u.memory_mb for u in usage.values()) == count * 1024
    assert operator.starts == 2


def test_audit_repairs_what_changed_behind_the_operators_back(
    apiserver: ClusterAccess,
    operator: OperatorProcess,
    hosts: SimulatedHosts,
    namespace: str,
    inventory_url: str,
) -> None:
    flavor = catalog(apiserver)
    hosts.add("h-1", memory_mib=16384)
    apply(apiserver, *[an_instance(f"a{i}", namespace, flavor=flavor) for i in range(3)])
    bodies = all_scheduled(apiserver, namespace, 3)
    operator.stop()
    engine = inv.make_engine(inventory_url)
    # 1. a claim loses its row behind the operator's back
    lost = bodies[0]["metadata"]["uid"]
    inv.release(engine, lost)
    # 2. an Instance disappears while the operator is down (finalizers stripped)
    leaked = bodies[1]["metadata"]
    delete_behind_the_operators_back(apiserver, namespace, leaked["name"])
    audit = run_audit(apiserver, inventory_url)
    assert audit.returncode == 0, audit.stderr
    out = audit.stdout
    assert re.search(rf"released leaked claim: {namespace}/{leaked['name']} .* on h-1", out), out
    assert f"re-claimed missing claim: {namespace}/{bodies[0]['metadata']['name']} on h-1" in out
    claims = {c.uid for c in list_consumers(engine, "Instance")}
    assert lost in claims
    assert leaked["uid"] not in claims
    again = run_audit(apiserver, inventory_url)
    assert again.returncode == 0, again.stderr
    assert "inventory and resources agree" in again.stdout


def test_restarted_operator_gives_back_claims_of_instances_deleted_while_it_was_down(
    apiserver: ClusterAccess,
    operator: OperatorProcess,
    hosts: SimulatedHosts,
    namespace: str,
    inventory_url: str,
) -> None:
    # An operator killed between claiming and adding its finalizer leaves an Instance that
    # can be deleted at once; no watch event ever names it again, only the start-up audit.
    flavor = catalog(apiserver)
    hosts.add("h-1", memory_mib=16384)
    apply(apiserver, *[an_instance(f"d{i}", namespace, flavor=flavor) for i in range(2)])
    kept, gone = (b["metadata"] for b in all_scheduled(apiserver, namespace, 2))
    operator.kill()
    delete_behind_the_operators_back(apiserver, namespace, gone["name"])
    engine = inv.make_engine(inventory_url)
    assert gone["uid"] in {c.uid for c in list_consumers(engine, "Instance")}
    operator.start()
    eventually(
        lambda: {c.uid for c in list_consumers(engine, "Instance")} == {kept["uid"]},
        timeout=45,
        what="the deleted Instance's claim released without anyone running an audit",
    )
    assert re.search(rf"released leaked claim: {namespace}/{gone['name']} ", operator.log())


def test_operator_writes_per_instance(
    apiserver: ClusterAccess,
    operator: OperatorProcess,
    hosts: SimulatedHosts,
    namespace: str,
) -> None:
    flavor = catalog(apiserver)
    hosts.add("h-1", memory_mib=65536)
    wait_ready(apiserver, "h-1")  # else the first Instances are (rightly) reported Pending
    count = 20
    apply(apiserver, *[an_instance(f"w{i}", namespace, flavor=flavor) for i in range(count)])
    all_scheduled(apiserver, namespace, count)
    operator.stop()
    match = re.findall(r"api writes: (\{.*\})", operator.log())
    assert match, operator.log()[-2000:]
    writes = json.loads(match[-1])
    instance_writes = sum(v for k, v in writes.items() if k.split()[1].startswith("instances"))
    per_instance = instance_writes / count
    print(f"operator writes per Instance (create -> Scheduled): {per_instance:.2f} {writes}")
    assert per_instance <= 2.0, writes


def test_metrics_and_probes(
    apiserver: ClusterAccess,
    operator: OperatorProcess,
    hosts: SimulatedHosts,
    namespace: str,
) -> None:
    flavor = catalog(apiserver)
    hosts.add("h-metrics", memory_mib=4096)
    wait_ready(apiserver, "h-metrics")
    apply(apiserver, an_instance("measured", namespace, flavor=flavor))
    all_scheduled(apiserver, namespace, 1)
    base = f"http://127.0.0.1:{operator.metrics_port}"

    def fetch(path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(base + path, timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, ""

    assert fetch("/healthz")[0] == 200
    eventually(lambda: fetch("/readyz")[0] == 200, what="operator ready")
    # Usage is published periodically: wait for the publish that follows the claim.
    allocated = 'kubenova_host_allocated{host="h-metrics",resource="MEMORY_MB"} 1024.0'
    text = eventually(
        lambda: (t := fetch("/metrics")[1]) and allocated in t and t,
        what="host metrics",
    )
    assert 'kubenova_scheduler_decisions_total{result="placed"} 1.0' in text
    assert "kubenova_placements_total 1.0" in text
    assert 'kubenova_reconcile_total{component="operator",kind="instances",result="ok"}' in text
    assert 'kubenova_host_capacity{host="h-metrics",resource="MEMORY_MB"} 4096.0' in text
    assert 'kubenova_host_allocated{host="h-metrics",resource="MEMORY_MB"} 1024.0' in text
    assert 'kubenova_host_ready{host="h-metrics"} 1.0' in text
    assert (
        'kubenova_api_writes_total{component="kubenova-operator",resource="instances/status"'
        in (text)
    )
