"""The operator against the real apiserver: schedule, refuse with reasons, heal, release."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kubenova.devcluster import ClusterAccess
from kubenova.operator import inventory as inv
from kubenova.operator.inventory.consumers import list_consumers
from tests.builders import a_flavor, a_server_group, an_image, an_instance, as_yaml
from tests.fixtures.operator import OperatorProcess
from tests.support.hosts import SimulatedHosts
from tests.support.waiting import eventually

pytestmark = pytest.mark.apiserver


def get(cluster: ClusterAccess, namespace: str, name: str) -> dict[str, Any] | None:
    result = cluster.kubectl("get", "instance", name, "-n", namespace, "-o", "json", check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None


def condition(body: dict[str, Any] | None, type_: str) -> dict[str, Any]:
    for entry in ((body or {}).get("status") or {}).get("conditions", []):
        if entry["type"] == type_:
            return entry
    return {}


def scheduled(cluster: ClusterAccess, namespace: str, name: str) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        body = get(cluster, namespace, name)
        return body if condition(body, "Scheduled").get("status") == "True" else None

    return eventually(probe, timeout=30, what=f"{name} scheduled")


def refused(
    cluster: ClusterAccess, namespace: str, name: str, reason: str | None = None
) -> dict[str, Any]:
    """Wait for Scheduled=False (with `reason`, when given: the catalog may lag a moment)."""

    def probe() -> dict[str, Any] | None:
        body = get(cluster, namespace, name)
        entry = condition(body, "Scheduled")
        if entry.get("status") != "False" or (reason and entry.get("reason") != reason):
            return None
        return body

    return eventually(probe, timeout=30, what=f"{name} refused")


def apply(cluster: ClusterAccess, *docs: dict[str, Any]) -> None:
    cluster.kubectl("apply", "-f", "-", input=as_yaml(*docs))


def catalog(cluster: ClusterAccess, memory: int = 1024) -> str:
    """A flavor with `memory` MiB (flavors are immutable: one name per size) and the image."""
    flavor = f"t.small-{memory}"
    apply(cluster, a_flavor(flavor, vcpus=1, memory=memory, disk=1), an_image("test-image"))
    return flavor


def host_ready(cluster: ClusterAccess, name: str) -> str:
    """The Ready condition's status of a Host ("" while it is not registered yet)."""
    result = cluster.kubectl("get", "host", name, "-o", "json", check=False)
    if result.returncode != 0:
        return ""
    return condition(json.loads(result.stdout), "Ready").get("status", "")


def wait_ready(cluster: ClusterAccess, *names: str) -> None:
    for name in names:
        eventually(lambda n=name: host_ready(cluster, n) == "True", what=f"{name} Ready")


def play_agent_deletes(cluster: ClusterAccess, namespace: str, name: str) -> None:
    """What the host's agent does on delete: drop its finalizer once the domain is gone."""
    body = get(cluster, namespace, name)
    assert body is not None
    finalizers = [f for f in body["metadata"].get("finalizers", []) if f != "kubenova.io/agent"]
    cluster.kubectl(
        "patch",
        "instance",
        name,
        "-n",
        namespace,
        "--type=merge",
        "-p",
        json.dumps({"metadata": {"finalizers": finalizers}}),
    )


def test_instance_is_scheduled_and_claimed(
    apiserver: ClusterAccess,
    operator: OperatorProcess,
    hosts: SimulatedHosts,
    namespace: str,
    inventory_url: str,
) -> None:
    flavor = catalog(apiserver)
    hosts.add("h-one", memory_mib=4096)
    apply(apiserver, an_instance("web", namespace, flavor=flavor))
    body = scheduled(apiserver, namespace, "web")
    assert body["status"]["host"] == "h-one"
    assert body["status"]["phase"] == "Scheduled"
    assert "kubenova.io/host" not in (body["metadata"].get("labels") or {})  # no label
    assert set(body["metadata"]["finalizers"]) == {"kubenova.io/operator", "kubenova.io/agent"}
    assert body["status"]["observedGeneration"] == body["metadata"]["generation"]
    claim = inv.find_claim(inv.make_engine(inventory_url), body["metadata"]["uid"])
    assert claim is not None
    assert claim.host == "h-one"
    assert claim.resources == inv.Resources(1, 1024, 1)
    # Events are written aside, a moment after the status write that placed it.
    eventually(
        lambda: (
            "placed on host h-one"
            in apiserver.kubectl("get", "events", "-n", namespace, "-o", "json").stdout
        ),
        what="the Scheduled Event",
    )
    # the operator never writes spec: the only manager of spec is kubectl
    full = json.loads(
        apiserver.kubectl(
            "get", "instance", "web", "-n", namespace, "-o", "json", "--show-managed-fields"
        ).stdout
    )
    managers = {
        m["manager"]: m for m in full["metadata"]["managedFields"] if "f:spec" in m["fieldsV1"]
    }
    assert list(managers) == ["kubectl-client-side-apply"]


def test_no_valid_host_says_why_and_retries_when_capacity_appears(
    apiserver: ClusterAccess,
    operator: OperatorProcess,
    hosts: SimulatedHosts,
    namespace: str,
) -> None:
    flavor = catalog(apiserver, memory=4096)
    hosts.add("h-small-1", memory_mib=2048)
    hosts.add("h-small-2", memory_mib=2048)
    apply(apiserver, an_instance("big", namespace, flavor=flavor))
    body = refused(apiserver, namespace, "big", "NoValidHost")
    entry = condition(body, "Scheduled")
    assert entry["reason"] == "NoValidHost"
    assert "2 hosts" in entry["message"]
    assert "lack memory" in entry["message"]
    assert "need 4096 MiB" in entry["message"]
    assert body["status"]["phase"] == "Pending"
    eventually(
        lambda: (
            "NoValidHost"
            in apiserver.kubectl(
                "get", "events", "-n", namespace, "--field-selector", "type=Warning", "-o", "json"
            ).stdout
        ),
        what="the NoValidHost Event",
    )
    hosts.add("h-large", memory_mib=8192)  # capacity appears: no resubmission needed
    assert scheduled(apiserver, namespace, "big")["status"]["host"] == "h-large"


def test_unknown_flavor_is_reported_then_healed(
    apiserver: ClusterAccess,
    operator: OperatorProcess,
    hosts: SimulatedHosts,
    namespace: str,
) -> None:
    catalog(apiserver)
    hosts.add("h-one")
    apply(apiserver, an_instance("later", namespace, flavor="t.later"))
    entry = condition(refused(apiserver, namespace, "later"), "Scheduled")
    assert entry["reason"] == "FlavorNotFound"
    assert "t.later" in entry["message"]
    apply(apiserver, a_flavor("t.later"))
    assert scheduled(apiserver, namespace, "later")["status"]["host"] == "h-one"


def test_flavor_too_small_for_the_image(
    apiserver: ClusterAccess,
    operator: OperatorProcess,
    hosts: SimulatedHosts,
    namespace: str,
) -> None:
    apply(apiserver, a_flavor("t.tiny-disk", disk=1), an_image("fat-image", minDiskGiB=10))
    hosts.add("h-one")
    apply(apiserver, an_instance("fat", namespace, flavor="t.tiny-disk", image="fat-image"))
    entry = condition(refused(apiserver, namespace, "fat", "FlavorTooSmall"), "Scheduled")
    assert entry["reason"] == "FlavorTooSmall"
    assert "10 GiB" in entry["message"]


def decided(
    cluster: ClusterAccess, namespace: str, names: list[str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(placed, refused) once each of `names` is Scheduled=True or NoValidHost."""

    def probe() -> tuple[list[dict[str, Any]], list[dict[str, Any]]] | None:
        bodies = [get(cluster, namespace, name) for name in names]
        placed = [b for b in bodies if b and condition(b, "Scheduled").get("status") == "True"]
        refused_ = [
            b for b in bodies if b and condition(b, "Scheduled").get("reason") == "NoValidHost"
        ]
        return (placed, refused_) if len(placed) + len(refused_) == len(names) else None

    return eventually(probe, what=f"{len(names)} instances decided")


def test_anti_affinity_spreads_over_three_hosts(
    apiserver: ClusterAccess,
    operator: OperatorProcess,
    hosts: SimulatedHosts,
    namespace: str,
) -> None:
    flavor = catalog(apiserver)
    for name in ("h-a", "h-b", "h-c"):
        hosts.add(name, memory_mib=65536)
    wait_ready(apiserver, "h-a", "h-b", "h-c")
    apply(apiserver, a_server_group("spread", namespace, "anti-affinity"))
    names = [f"m{i}" for i in range(5)]
    members = [
        an_instance(name, namespace, flavor=flavor, placement={"group": "spread"}) for name in names
    ]
    apply(apiserver, *members)  # one batch: members decided together still spread
    placed, extra = decided(apiserver, namespace, names)
    assert sorted(b["status"]["host"] for b in placed) == ["h-a", "h-b", "h-c"]
    assert len(extra) == 2
    for body in extra:
        message = condition(body, "Scheduled")["message"]
        assert "3 hosts: 3 already run a member of server group spread" in message


def test_affinity_puts_a_group_on_one_host_and_refuses_when_it_is_full(
    apiserver: ClusterAccess,
    operator: OperatorProcess,
    hosts: SimulatedHosts,
    namespace: str,
) -> None:
    flavor = catalog(apiserver)
    together = ("h-aff-a", "h-aff-b", "h-aff-c")
    for name in together:
        hosts.add(name, memory_mib=4096)  # x1.5: room for 6 guests each
    wait_ready(apiserver, *together)
    apply(apiserver, a_server_group("together", namespace, "affinity"))
    names = [f"g{i}" for i in range(7)]
    apply(
        apiserver,
        *[
            an_instance(name, namespace, flavor=flavor, placement={"group": "together"})
            for name in names
        ],
    )  # one batch, onto hosts the default weighers would spread it over
    placed, refused_ = decided(apiserver, namespace, names)
    where = {b["status"]["host"] for b in placed}
    assert len(placed) == 6, [condition(b, "Scheduled") for b in refused_]
    assert len(where) == 1, f"an affinity group split over {where}"
    (host,) = where
    (last,) = refused_
    message = condition(last, "Scheduled")["message"]
    assert f"2 not where server group together runs ({host})" in message, message
    assert "1 lacks memory" in message, message
    # The other hosts had room all along: the refusal was the group's, not the cloud's.
    apply(apiserver, an_instance("loner", namespace, flavor=flavor))
    assert scheduled(apiserver, namespace, "loner")["status"]["host"] != host


def test_availability_zone_keeps_instances_on_its_hosts_and_says_when_it_is_full(
    apiserver: ClusterAccess,
    operator: OperatorProcess,
    hosts: SimulatedHosts,
    namespace: str,
    inventory_url: str,
) -> None:
    flavor = catalog(apiserver)
    hosts.add("h-zone-a1", memory_mib=2048, zone="zone-a")  # x1.5: room for 3 guests each
    hosts.add("h-zone-a2", memory_mib=2048, zone="zone-a")
    hosts.add("h-zone-b", memory_mib=65536, zone="zone-b")
    wait_ready(apiserver, "h-zone-a1", "h-zone-a2", "h-zone-b")
    names = [f"z{i}" for i in range(7)]
    apply(
        apiserver,
        *[an_instance(name, namespace, flavor=flavor, availabilityZone="zone-a") for name in names],
    )
    placed, refused_ = decided(apiserver, namespace, names)
    assert sorted(b["status"]["host"] for b in placed) == ["h-zone-a1"] * 3 + ["h-zone-a2"] * 3
    (last,) = refused_
    message = condition(last, "Scheduled")["message"]
    assert message.startswith("3 hosts: "), message
    assert "1 outside availability zone zone-a" in message, message
    assert "2 lack memory" in message, message
    # zone-a is full, zone-b and zone-less requests still have room: on zone-b's host.
    apply(
        apiserver,
        an_instance("in-b", namespace, flavor=flavor, availabilityZone="zone-b"),
        an_instance("anywhere", namespace, flavor=flavor),
    )
    assert scheduled(apiserver, namespace, "in-b")["status"]["host"] == "h-zone-b"
    assert scheduled(apiserver, namespace, "anywhere")["status"]["host"] == "h-zone-b"
    claims = {c.uid: c.host for c in list_consumers(inv.make_engine(inventory_url), "Instance")}
    assert sorted(claims.values()) == sorted(
        ["h-zone-a1"] * 3 + ["h-zone-a2"] * 3 + ["h-zone-b"] * 2
    )
    assert (
        condition(get(apiserver, namespace, last["metadata"]["name"]), "Scheduled")["reason"]
        == "NoValidHost"
    ), "zone-b's room went to a zone-a request"


def test_host_going_not_ready_gets_no_placements(
    apiserver: ClusterAccess,
    operator: OperatorProcess,
    hosts: SimulatedHosts,
    namespace: str,
) -> None:
    flavor = catalog(apiserver)
    hosts.add("h-dying", memory_mib=65536)
    hosts.add("h-alive", memory_mib=1024)  # x1.5 overcommit: room for one 1024 MiB guest

    wait_ready(apiserver, "h-dying")
    hosts.stop_heartbeat("h-dying")
    eventually(
        lambda: host_ready(apiserver, "h-dying") == "False", timeout=20, what="h-dying NotReady"
    )
    body = json.loads(apiserver.kubectl("get", "host", "h-dying", "-o", "json").stdout)
    assert condition(body, "Ready")["reason"] == "HeartbeatLost"
    apply(apiserver, an_instance("after", namespace, flavor=flavor))
    assert scheduled(apiserver, namespace, "after")["status"]["host"] == "h-alive"
    apply(apiserver, an_instance("after2", namespace, flavor=flavor))
    entry = condition(refused(apiserver, namespace, "after2", "NoValidHost"), "Scheduled")
    assert "not ready" in entry["message"]


def test_delete_waits_for_the_agent_then_releases_every_claim(
    apiserver: ClusterAccess,
    operator: OperatorProcess,
    hosts: SimulatedHosts,
    namespace: str,
    inventory_url: str,
) -> None:
    flavor = catalog(apiserver)
    hosts.add("h-one")
    apply(apiserver, an_instance("gone", namespace, flavor=flavor))
    uid = scheduled(apiserver, namespace, "gone")["metadata"]["uid"]
    engine = inv.make_engine(inventory_url)
    assert inv.find_claim(engine, uid) is not None
    apiserver.kubectl("delete", "instance", "gone", "-n", namespace, "--wait=false")
    body = eventually(lambda: get(apiserver, namespace, "gone"), what="still there")
    assert body["metadata"].get("deletionTimestamp")
    assert inv.find_claim(engine, uid) is not None, "released before the agent let go"
    play_agent_deletes(apiserver, namespace, "gone")
    eventually(lambda: get(apiserver, namespace, "gone") is None, what="instance deleted")
    eventually(lambda: inv.find_claim(engine, uid) is None, what="claim released")


def test_weighers_are_configured_pack_instead_of_spread(
    apiserver: ClusterAccess,
    operator: OperatorProcess,
    hosts: SimulatedHosts,
    namespace: str,
) -> None:
    operator.stop()
    operator.extra_args = ("--scheduler-weighers", "ram=-1.0,cpu=-1.0")
    operator.start()
    flavor = catalog(apiserver)
    hosts.add("h-pack-a", memory_mib=65536)
    hosts.add("h-pack-b", memory_mib=65536)
    wait_ready(apiserver, "h-pack-a", "h-pack-b")
    for i in range(4):
        apply(apiserver, an_instance(f"p{i}", namespace, flavor=flavor))
        scheduled(apiserver, namespace, f"p{i}")
    placed = {get(apiserver, namespace, f"p{i}")["status"]["host"] for i in range(4)}  # type: ignore[index]
    assert len(placed) == 1, f"a negative RAM/CPU multiplier packs: {placed}"


def test_instances_only_go_to_hosts_running_the_compute_service(
    apiserver: ClusterAccess,
    operator: OperatorProcess,
    hosts: SimulatedHosts,
    namespace: str,
) -> None:
    flavor = catalog(apiserver)
    hosts.add("h-storage", memory_mib=65536, services=("volume", "network"))
    wait_ready(apiserver, "h-storage")
    apply(apiserver, an_instance("needs-compute", namespace, flavor=flavor))
    entry = condition(refused(apiserver, namespace, "needs-compute", "NoValidHost"), "Scheduled")
    assert "1 host: 1 run no compute service" in entry["message"]
    hosts.add("h-compute", memory_mib=4096)
    assert scheduled(apiserver, namespace, "needs-compute")["status"]["host"] == "h-compute"
