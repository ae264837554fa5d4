"""Evacuation (Nova's `evacuate`): the Instances of a host that failed (its agent frozen with
SIGSTOP: NotReady, its guest for all anyone knows still running) and that an administrator
then marked out of service are rebuilt on other hosts, keeping their fixed IPs, MACs,
floating IPs and volumes; a Manual one waits for an administrator's go-ahead; with no room
anywhere it stays on the failed host's record until capacity appears; and the failed host,
coming back, destroys its stale copy before it reports Ready. Operator and compute agents
are real processes on libvirt's test driver; the volume host runs the fake export driver.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubenova.agents.volume.fake import FakeExportDaemon
from kubenova.devcluster import ClusterAccess
from kubenova.operator import inventory as inv
from kubenova.operator.inventory import volumes as vol
from tests.builders import a_network, a_server_group, a_volume, an_instance
from tests.e2e.test_lifecycle_fake import instance_files, wait_phase
from tests.fixtures.agent import AgentFactory
from tests.fixtures.operator import OperatorProcess, running_operator
from tests.integration.operator.test_scheduling import (
    apply,
    catalog,
    condition,
    get,
    host_ready,
    wait_ready,
)
from tests.integration.reliability.test_fencing import claim_of, fixed_ips_of, frozen
from tests.integration.volume.cluster import volume_in_phase
from tests.support.volume_agent import VolumeAgent
from tests.support.waiting import eventually

pytestmark = pytest.mark.apiserver

SMALL = "vcpus=4,memoryMiB=4096,diskGiB=100"
TINY = "vcpus=4,memoryMiB=256,diskGiB=100"  # no room for the 512 MiB flavor
FLOATING_POOL = "198.51.100.16/29"
OUT_OF_SERVICE = '{"spec":{"outOfService":true}}'


@pytest.fixture
def operator(
    apiserver: ClusterAccess, crds_installed: list[str], inventory_url: str, tmp_path: Path
) -> Iterator[OperatorProcess]:
    """The operator with a floating IP pool (the volume host's fixture uses this one too)."""
    yield from running_operator(
        apiserver, inventory_url, tmp_path, KUBENOVA_FLOATING_IP_POOL=FLOATING_POOL
    )


def events(cluster: ClusterAccess, namespace: str, name: str) -> list[tuple[str, str]]:
    listing = json.loads(cluster.kubectl("get", "events", "-n", namespace, "-o", "json").stdout)
    return [
        (e["reason"], e["message"])
        for e in listing["items"]
        if e["involvedObject"]["name"] == name and e["involvedObject"]["kind"] == "Instance"
    ]


def fence(cluster: ClusterAccess, host: str) -> None:
    """What an administrator does once the host is off: mark it out of service."""
    eventually(lambda: host_ready(cluster, host) == "False", what=f"{host} NotReady")
    cluster.kubectl("patch", "host", host, "--type=merge", "-p", OUT_OF_SERVICE)


def evacuated_to(cluster: ClusterAccess, namespace: str, name: str, away_from: str) -> Any:
    """Wait until the Instance runs on another host than `away_from`; its body."""

    def moved() -> dict[str, Any] | None:
        body = get(cluster, namespace, name) or {}
        status = body.get("status") or {}
        if status.get("host") in (None, away_from) or status.get("phase") != "Running":
            return None
        return body

    return eventually(moved, timeout=60, what=f"{name} running away from {away_from}")


def lease_renewed(cluster: ClusterAccess, host: str) -> str:
    result = cluster.kubectl(
        "get", "lease", f"host-{host}", "-n", "kubenova-system", "-o", "json", check=False
    )
    return str(json.loads(result.stdout)["spec"].get("renewTime")) if result.returncode == 0 else ""


def destroyed_before(agent_log: Path, uid: str, alive: str) -> bool:
    """In the agent's last run, was the stale domain of `uid` destroyed before the log line
    `alive` that follows the heartbeat saying the host is alive?"""
    text = agent_log.read_text()
    run = text[text.rindex("metrics and probes on") :]
    said_alive = run.find(alive)
    destroyed = [
        run.find(line)
        for line in (f"destroying orphan domain kubenova-{uid}", f"domain of {uid} destroyed")
    ]
    return 0 <= min(d for d in destroyed if d >= 0) < said_alive if max(destroyed) >= 0 else False


def test_an_instance_of_a_fenced_host_is_rebuilt_elsewhere_with_its_addresses_and_volume(
    apiserver: ClusterAccess,
    operator: OperatorProcess,
    agents: AgentFactory,
    store_host: VolumeAgent,
    daemon: FakeExportDaemon,
    namespace: str,
    inventory_url: str,
) -> None:
    ns = namespace
    flavor = catalog(apiserver, memory=512)
    apply(apiserver, a_network("net", ns, cidr="10.31.0.0/24"), a_server_group("web", ns))
    apply(apiserver, a_volume("data", ns))
    volume_in_phase(apiserver, ns, "data", "Available")
    host_a = agents.start("evac-a", capacity=SMALL)
    wait_ready(apiserver, "evac-a")
    apply(
        apiserver,
        an_instance(
            "vm",
            ns,
            flavor=flavor,
            networks=[{"network": "net", "ip": "10.31.0.9", "floatingIP": True}],
            volumes=[{"volume": "data"}],
            placement={"group": "web"},
        ),
    )
    before = wait_phase(apiserver, ns, "vm", "Running")
    uid = before["metadata"]["uid"]
    assert before["status"]["host"] == "evac-a"
    [address] = before["status"]["addresses"]
    assert address["ip"] == "10.31.0.9"
    assert address["floatingIP"]
    iqn = volume_in_phase(apiserver, ns, "data", "InUse")["status"]["target"]["iqn"]
    assert daemon.exports[iqn].acl == ("iqn.2010-10.io.kubenova:host.evac-a",)
    # Two more hosts; a second member of the anti-affinity group takes one of them.
    agents.start("evac-b", capacity=SMALL)
    agents.start("evac-c", capacity=SMALL)
    wait_ready(apiserver, "evac-b", "evac-c")
    apply(apiserver, an_instance("peer", ns, flavor=flavor, placement={"group": "web"}))
    peer_host = wait_phase(apiserver, ns, "peer", "Running")["status"]["host"]
    assert peer_host in ("evac-b", "evac-c")
    free_host = ({"evac-b", "evac-c"} - {peer_host}).pop()

    with frozen(host_a):
        fence(apiserver, "evac-a")
        after = evacuated_to(apiserver, ns, "vm", "evac-a")
        # The failed host's agent dies (restarted below, with the stale domain still there).
        assert host_a.process is not None
        host_a.process.kill()
        host_a.process.wait(timeout=10)
        # Read once its agent is gone: read before the freeze, a renewal in between would
        # pass for the restarted agent's first heartbeat.
        renewed_before = lease_renewed(apiserver, "evac-a")
    assert after["status"]["host"] == free_host  # not the peer's: anti-affinity holds
    assert after["metadata"]["uid"] == uid
    assert after["status"]["addresses"] == [address]  # same IP, MAC and floating IP
    evacuated = condition(after, "Evacuated")
    assert (evacuated["status"], evacuated["reason"]) == ("True", "Evacuated")
    story = f"evacuated from host evac-a (failed, out of service) to host {free_host}"
    assert evacuated["message"] == story
    told = events(apiserver, ns, "vm")
    assert ("Evacuated", story) in told
    assert any(reason == "Evacuating" and "evac-a" in message for reason, message in told)
    wide = apiserver.kubectl("get", "inst", "vm", "-n", ns, "-o", "wide").stdout
    assert free_host in wide.splitlines()[1].split()

    # The inventory: one claim, moved; the same address; the volume's attachment moved,
    # and the volume host's access list follows (the failed host is out of it).
    claim = claim_of(inventory_url, uid)
    assert claim is not None
    assert claim.host == free_host
    assert fixed_ips_of(inventory_url, uid) == ["10.31.0.9"]
    engine = inv.make_engine(inventory_url)
    try:
        [attachment] = vol.attachments_of_instance(engine, uid)
        assert attachment.host == free_host
        usage = inv.host_usage(engine)
        assert usage.get("evac-a", inv.Resources()).memory_mb == 0
    finally:
        engine.dispose()
    eventually(
        lambda: daemon.exports[iqn].acl == (f"iqn.2010-10.io.kubenova:host.{free_host}",),
        what="the access list follows the Instance",
    )
    eventually(
        lambda: (get(apiserver, ns, "vm") or {}).get("status", {}).get("volumes"),
        what="the volume plugged on the new host",
    )

    # The failed host comes back (its agent restarted; libvirt kept the stale domain): the
    # stale copy is destroyed before the host's first heartbeat says it is alive.
    assert len(instance_files(host_a.state_dir)) == 1  # the stale copy, still defined
    agents.start("evac-a", capacity=SMALL)
    eventually(
        lambda: lease_renewed(apiserver, "evac-a") != renewed_before,
        timeout=60,
        what="evac-a heart-beating again",
    )
    assert instance_files(host_a.state_dir) == []
    assert destroyed_before(host_a.log_path, uid, "first heartbeat sent")
    eventually(lambda: host_ready(apiserver, "evac-a") == "True", what="evac-a Ready again")
    assert (get(apiserver, ns, "vm") or {})["status"]["host"] == free_host


def test_a_manual_instance_waits_for_the_go_ahead_and_for_room(
    apiserver: ClusterAccess,
    operator: OperatorProcess,
    agents: AgentFactory,
    namespace: str,
    inventory_url: str,
) -> None:
    ns = namespace
    flavor = catalog(apiserver, memory=512)
    host_a = agents.start("manual-a", capacity=SMALL)
    wait_ready(apiserver, "manual-a")
    apply(apiserver, an_instance("vm", ns, flavor=flavor, evacuation="Manual"))
    uid = wait_phase(apiserver, ns, "vm", "Running")["metadata"]["uid"]
    agents.start("manual-b", capacity=TINY)
    wait_ready(apiserver, "manual-b")
    member = "mallory"  # a project member
    an_editor_of_instances(apiserver, ns, member)

    with frozen(host_a):
        fence(apiserver, "manual-a")
        waiting = eventually(
            lambda: _evacuated_reason(apiserver, ns, "AwaitingGoAhead"),
            what="vm awaiting the go-ahead",
        )
        assert "spec.evacuation is Manual" in waiting["message"]
        assert "kubenova.io/evacuate-from=manual-a" in waiting["message"]
        assert (get(apiserver, ns, "vm") or {})["status"]["host"] == "manual-a"

        # A project member who may edit the Instance may not give the go-ahead.
        refused = apiserver.kubectl(
            "annotate", "--as", member, "instance", "vm", "-n", ns,
            "kubenova.io/evacuate-from=manual-a", check=False,
        )  # fmt: skip
        assert refused.returncode != 0
        assert "instances/evacuate" in refused.stderr, refused.stderr
        assert "go-ahead to evacuate" in refused.stderr

        # The administrator's go-ahead; but manual-b has no room: it stays on manual-a.
        apiserver.kubectl(
            "annotate", "instance", "vm", "-n", ns, "kubenova.io/evacuate-from=manual-a"
        )
        no_room = eventually(
            lambda: _evacuated_reason(apiserver, ns, "NoValidHost"), what="vm finds no host"
        )
        assert no_room["message"].startswith(
            "host manual-a failed and is out of service, and no other host can take the Instance"
        )
        assert (get(apiserver, ns, "vm") or {})["status"]["host"] == "manual-a"
        claim = claim_of(inventory_url, uid)
        assert claim is not None
        assert claim.host == "manual-a"

        # Capacity appears: it is tried again and moves there.
        agents.start("manual-c", capacity=SMALL)
        after = evacuated_to(apiserver, ns, "vm", "manual-a")
        assert len(instance_files(host_a.state_dir)) == 1  # the frozen host's stale copy
        renewed_before = lease_renewed(apiserver, "manual-a")
    # SIGCONT: the agent resumes after a long gap; it destroys the stale copy before its
    # next renewal says the host is alive.
    eventually(
        lambda: lease_renewed(apiserver, "manual-a") != renewed_before,
        what="manual-a heart-beating again",
    )
    assert instance_files(host_a.state_dir) == []
    assert destroyed_before(host_a.log_path, uid, "heart-beating again after the gap")
    assert after["status"]["host"] == "manual-c"
    claim = claim_of(inventory_url, uid)
    assert claim is not None
    assert claim.host == "manual-c"


def _evacuated_reason(cluster: ClusterAccess, namespace: str, reason: str) -> Any:
    entry = condition(get(cluster, namespace, "vm"), "Evacuated")
    return entry if entry.get("reason") == reason and entry.get("status") == "False" else None


def an_editor_of_instances(cluster: ClusterAccess, namespace: str, user: str) -> None:
    """RBAC lets `user` edit the namespace's Instances (as a project member may)."""
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "instance-editor", "namespace": namespace},
        "rules": [
            {
                "apiGroups": ["kubenova.io"],
                "resources": ["instances"],
                "verbs": ["get", "list", "watch", "patch", "update"],
            }
        ],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "instance-editor", "namespace": namespace},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": "instance-editor",
        },
        "subjects": [{"kind": "User", "name": user, "apiGroup": "rbac.authorization.k8s.io"}],
    }
    apply(cluster, role, binding)
    eventually(
        lambda: cluster.kubectl(
            "auth", "can-i", "patch", "instances.kubenova.io", "-n", namespace, "--as", user,
            check=False,
        ).stdout.strip() == "yes",
        what=f"{user} may patch instances",
    )  # fmt: skip


def test_an_operator_killed_after_moving_the_claim_hands_the_instance_over_on_restart(
    apiserver: ClusterAccess,
    operator: OperatorProcess,
    agents: AgentFactory,
    namespace: str,
    inventory_url: str,
) -> None:
    """kill -9 between the two steps: the claim moved (committed), status.host not written.
    The restarted operator finds the moved claim and writes the hand-over: nothing is
    claimed twice, nothing is lost."""
    ns = namespace
    flavor = catalog(apiserver, memory=512)
    host_a = agents.start("crash-a", capacity=SMALL)
    wait_ready(apiserver, "crash-a")
    apply(apiserver, an_instance("vm", ns, flavor=flavor))
    body = wait_phase(apiserver, ns, "vm", "Running")
    uid = body["metadata"]["uid"]
    agents.start("crash-b", capacity=SMALL)
    wait_ready(apiserver, "crash-b")
    with frozen(host_a):
        eventually(lambda: host_ready(apiserver, "crash-a") == "False", what="crash-a NotReady")
        operator.kill()
        # What the killed operator had committed: the claim's move, and nothing after it.
        engine = inv.make_engine(inventory_url)
        try:
            with inv.write_transaction(engine) as connection:
                consumer = inv.Consumer(uid, "vm", ns)
                resources = inv.Resources(1, 512, 1)
                inv.move_in(connection, consumer, "crash-a", "crash-b", resources=resources)
        finally:
            engine.dispose()
        apiserver.kubectl("patch", "host", "crash-a", "--type=merge", "-p", OUT_OF_SERVICE)
        assert (get(apiserver, ns, "vm") or {})["status"]["host"] == "crash-a"
        operator.start()
        after = evacuated_to(apiserver, ns, "vm", "crash-a")
    assert after["status"]["host"] == "crash-b"
    assert condition(after, "Evacuated")["status"] == "True"
    engine = inv.make_engine(inventory_url)
    try:
        usage = inv.host_usage(engine)
        assert usage.get("crash-a", inv.Resources()) == inv.Resources()
        assert usage["crash-b"] == inv.Resources(1, 512, 1)  # claimed once
    finally:
        engine.dispose()
