"""The admission webhook on the real apiserver: quotas, references, Project deletion."""

from __future__ import annotations

import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from kubenova.devcluster import ClusterAccess
from kubenova.operator import inventory as inv
from kubenova.operator.inventory import quotas
from tests.builders import (
    a_network,
    a_project,
    a_server_group,
    a_volume,
    an_image,
    an_instance,
    as_yaml,
)
from tests.integration.auth.conftest import Tenancy, apply, kubectl_json, unique
from tests.integration.auth.test_claim_quota import scheduled
from tests.support.hosts import SimulatedHosts
from tests.support.waiting import eventually

pytestmark = [pytest.mark.apiserver, pytest.mark.ldap]


def refused(cluster: ClusterAccess, *docs: dict[str, Any]) -> str:
    """Apply `docs`, expecting the webhook to refuse; the apiserver's error text."""
    result = apply(cluster, *docs, check=False)
    assert result.returncode != 0, f"was admitted: {result.stdout}"
    assert "denied the request" in result.stderr, result.stderr
    return result.stderr


def sized(name: str, namespace: str, vcpus: int) -> dict[str, Any]:
    return an_instance(
        name, namespace, flavor=None, resources={"vcpus": vcpus, "memoryMiB": 128, "diskGiB": 1}
    )


def names(cluster: ClusterAccess, kind: str, namespace: str) -> list[str]:
    listing = kubectl_json(cluster, "get", kind, "-n", namespace)
    return sorted(i["metadata"]["name"] for i in listing["items"])


def test_an_instance_over_quota_is_refused_at_apply_time(tenancy: Tenancy) -> None:
    cluster, project = tenancy.cluster, unique("quota")
    tenancy.project(project, quota={"vcpus": 16, "volumes": 1, "volumeGiB": 10})
    apply(cluster, sized("a", project, 8), sized("b", project, 6))
    error = refused(cluster, an_instance("c", project, flavor="q.4"))
    assert f"spec.flavor: quota exceeded in project {project}: vcpus 14 + 4 > 16" in error
    apply(cluster, sized("c", project, 2))  # what still fits gets in
    error = refused(cluster, a_volume("big", project, sizeGiB=11))
    assert f"spec.sizeGiB: quota exceeded in project {project}: volumeGiB 0 + 11 > 10" in error
    apply(cluster, a_volume("data", project, sizeGiB=10))
    error = refused(cluster, a_volume("more", project, sizeGiB=1))
    assert f"quota exceeded in project {project}: volumes 1 + 1 > 1" in error
    # No host runs here, so nothing was claimed: the webhook counted the objects waiting
    # for a claim, and charged nothing itself.
    engine = inv.make_engine(tenancy.operator.database_url)
    try:
        assert quotas.list_charges(engine, project) == []
    finally:
        engine.dispose()
    # Deleting frees the quota at once.
    cluster.kubectl("delete", "instance", "a", "-n", project)
    eventually(
        lambda: (
            apply(cluster, an_instance("d", project, flavor="q.4"), check=False).returncode == 0
        ),
        timeout=15,
        what="room after a delete",
    )


SMALL = {"vcpus": 1, "memoryMiB": 128, "diskGiB": 1}


def test_floating_ips_count_against_the_quota(tenancy: Tenancy) -> None:
    cluster, project = tenancy.cluster, unique("fip")
    tenancy.project(project, quota={"floatingIPs": 1})
    apply(cluster, a_network("outside", project, cidr="10.88.0.0/24"))
    public = {"networks": [{"network": "outside", "floatingIP": True}]}
    apply(
        cluster,
        an_instance(
            "first",
            project,
            flavor=None,
            resources={"vcpus": 1, "memoryMiB": 128, "diskGiB": 1},
            **public,
        ),
    )
    error = refused(
        cluster,
        an_instance(
            "second",
            project,
            flavor=None,
            resources={"vcpus": 1, "memoryMiB": 128, "diskGiB": 1},
            **public,
        ),
    )
    assert f"quota exceeded in project {project}: floatingIPs 1 + 1 > 1" in error
    # an Instance without a floating IP still fits
    apply(cluster, sized("private", project, 1))
    # ... but associating one with it later is refused at apply time, the field named
    nic = {"network": "outside"}
    plain = an_instance("plain", project, flavor=None, resources=SMALL, networks=[nic])
    apply(cluster, plain)
    plain["spec"]["networks"] = [{**nic, "floatingIP": True}]
    error = refused(cluster, plain)
    assert f"quota exceeded in project {project}: floatingIPs 1 + 1 > 1" in error
    assert "spec.networks" in error


def test_twenty_concurrent_creates_against_a_quota_of_five_claim_exactly_five(
    tenancy: Tenancy, hosts: SimulatedHosts
) -> None:
    # The webhook only reads, so creates racing past it may all be admitted; the claim,
    # which re-checks under a lock, is what holds the quota.
    cluster, project = tenancy.cluster, unique("race")
    tenancy.project(project, quota={"instances": 5})
    hosts.add(unique("h-race"), vcpus=100, memory_mib=100 * 128)

    def create(i: int) -> subprocess.CompletedProcess[str]:
        return cluster.kubectl(
            "create", "-f", "-", input=as_yaml(an_instance(f"vm{i:02d}", project, flavor="q.4")),
            check=False,
        )  # fmt: skip

    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(create, range(20)))
    denied = [r.stderr for r in results if r.returncode != 0]
    assert all(f"quota exceeded in project {project}: instances" in error for error in denied), (
        denied
    )
    created = names(cluster, "instances", project)
    assert len(created) >= 5, denied

    def settled() -> dict[str, str] | None:
        states = scheduled(cluster, project)
        return states if len(states) == len(created) else None

    states = eventually(settled, timeout=60, what="every Instance claimed or refused")
    claimed = [name for name, state in states.items() if state.startswith("True")]
    waiting = {state for state in states.values() if state.startswith("False")}
    assert len(claimed) == 5, states
    assert waiting <= {f"False: quota exceeded in project {project}: instances 5 + 1 > 5"}
    engine = inv.make_engine(tenancy.operator.database_url)
    try:
        assert quotas.usage(engine, project).instances == 5
    finally:
        engine.dispose()

    def usage_published() -> bool:
        body = kubectl_json(cluster, "get", "project", project)
        return ((body.get("status") or {}).get("usage") or {}).get("instances") == 5

    eventually(usage_published, timeout=15, what="usage in the Project's status")
    # Once the project is full, the webhook refuses at the door.
    error = refused(cluster, an_instance("late", project, flavor="q.4"))
    assert f"quota exceeded in project {project}: instances" in error


def test_placed_instances_count_by_their_charge_and_waiting_ones_by_their_spec(
    tenancy: Tenancy, hosts: SimulatedHosts
) -> None:
    # The webhook lists only what has no status.host (a field selector): a placed one
    # counts by the charge its claim holds, so neither is missed nor counted twice.
    cluster, project = tenancy.cluster, unique("mixed")
    zone = unique("zone")  # the session's other hosts are out of reach
    tenancy.project(project, quota={"instances": 3})
    hosts.add(unique("h-mixed"), memory_mib=1400, zone=zone)  # x1.5: room for two of 1 GiB

    def vm(name: str) -> dict[str, Any]:
        resources = {"vcpus": 1, "memoryMiB": 1024, "diskGiB": 1}
        return an_instance(name, project, flavor=None, resources=resources, availabilityZone=zone)

    apply(cluster, *(vm(f"vm{i}") for i in range(3)))

    def two_placed_one_waiting() -> dict[str, str] | None:
        states = scheduled(cluster, project)
        placed = [s for s in states.values() if s.startswith("True")]
        return states if len(placed) == 2 and len(states) == 3 else None

    states = eventually(two_placed_one_waiting, timeout=60, what="two placed, one without room")
    error = refused(cluster, vm("vm3"))
    assert f"quota exceeded in project {project}: instances 3 + 1 > 3" in error
    # The waiting one goes (nothing runs it): its room is free at once. A placed one's
    # stays charged until its host's agent has removed the guest.
    (waiting,) = [name for name, state in states.items() if state.startswith("False")]
    cluster.kubectl("delete", "instance", waiting, "-n", project)
    eventually(
        lambda: apply(cluster, vm("vm3"), check=False).returncode == 0,
        timeout=15,
        what="room once the waiting Instance is deleted",
    )


def test_a_server_side_dry_run_is_checked_too(tenancy: Tenancy) -> None:
    cluster, project = tenancy.cluster, unique("dry")
    tenancy.project(project, quota={"instances": 1})
    for _ in range(3):
        cluster.kubectl(
            "apply",
            "--dry-run=server",
            "-f",
            "-",
            input=as_yaml(an_instance("vm", project, flavor="q.4")),
        )
    apply(cluster, an_instance("vm", project, flavor="q.4"))
    dry = cluster.kubectl(
        "apply", "--dry-run=server", "-f", "-",
        input=as_yaml(an_instance("vm2", project, flavor="q.4")), check=False,
    )  # fmt: skip
    assert "instances 1 + 1 > 1" in dry.stderr


def test_references_must_resolve_in_the_instances_own_namespace(tenancy: Tenancy) -> None:
    cluster = tenancy.cluster
    mine, theirs = unique("mine"), unique("theirs")
    tenancy.project(mine)
    tenancy.project(theirs)
    apply(cluster, a_volume("data", theirs), a_network("net", theirs))
    apply(cluster, a_network("net", mine, cidr="10.30.0.0/24", gateway="10.30.0.1"))
    cases = {
        "spec.flavor: Flavor nope does not exist": an_instance("x", mine, flavor="nope"),
        "spec.image: Image nope does not exist": an_instance("x", mine, flavor="q.4", image="nope"),
        f"spec.volumes[0].volume: Volume data does not exist in namespace {mine}": an_instance(
            "x", mine, flavor="q.4", volumes=[{"volume": "data"}]
        ),
        f"spec.networks[1].network: Network other does not exist in namespace {mine}": (
            an_instance(
                "x", mine, flavor="q.4", networks=[{"network": "net"}, {"network": "other"}]
            )
        ),
        "spec.networks[0].ip: 10.9.9.9 is outside network net (10.30.0.0/24)": an_instance(
            "x", mine, flavor="q.4", networks=[{"network": "net", "ip": "10.9.9.9"}]
        ),
        "spec.networks[0].ip: 10.30.0.1 is the gateway of network net": an_instance(
            "x", mine, flavor="q.4", networks=[{"network": "net", "ip": "10.30.0.1"}]
        ),
        f"spec.placement.group: ServerGroup sg does not exist in namespace {mine}": an_instance(
            "x", mine, flavor="q.4", placement={"group": "sg"}
        ),
        "spec.resources.diskGiB: image big-image needs a root disk of at least 20 GiB": (
            an_instance(
                "x",
                mine,
                flavor=None,
                image="big-image",
                resources={"vcpus": 1, "memoryMiB": 128, "diskGiB": 1},
            )
        ),
        "spec.image: Image nope does not exist (kubectl get images": a_volume(
            "v", mine, image="nope"
        ),
    }
    apply(cluster, an_image("big-image", minDiskGiB=20))
    for expected, manifest in cases.items():
        assert expected in refused(cluster, manifest)
    assert names(cluster, "instances", mine) == []
    # The same names resolve once they exist in the Instance's own namespace.
    apply(cluster, a_volume("data", mine), a_server_group("sg", mine))
    apply(
        cluster,
        an_instance(
            "ok", mine, flavor="q.4", volumes=[{"volume": "data"}],
            networks=[{"network": "net", "ip": "10.30.0.5"}], placement={"group": "sg"},
        ),
    )  # fmt: skip
    # An update is checked for what it adds.
    body = kubectl_json(cluster, "get", "instance", "ok", "-n", mine)
    body["spec"]["volumes"].append({"volume": "missing"})
    error = refused(cluster, body)
    assert f"spec.volumes[1].volume: Volume missing does not exist in namespace {mine}" in error


def test_a_project_cannot_take_a_reserved_or_anothers_namespace(tenancy: Tenancy) -> None:
    cluster, owner = tenancy.cluster, unique("owner")
    tenancy.project(owner)
    assert f"spec.namespace: namespace {owner} belongs to project {owner}" in refused(
        cluster, a_project(unique("thief"), namespace=owner)
    )
    assert "spec.namespace: namespace kube-system is reserved" in refused(
        cluster, a_project(unique("sys"), namespace="kube-system")
    )


def test_deleting_a_project_is_refused_while_it_holds_instances_or_volumes(
    tenancy: Tenancy,
) -> None:
    cluster, project = tenancy.cluster, unique("busy")
    tenancy.project(project)
    apply(cluster, an_instance("vm", project, flavor="q.4"), a_volume("data", project))
    result = cluster.kubectl("delete", "project", project, "--wait=false", check=False)
    assert result.returncode != 0
    assert (
        f"project {project} still holds 1 Instance and 1 Volume in namespace {project}: "
        "delete them first" in result.stderr
    )
    assert kubectl_json(cluster, "get", "project", project) is not None
    cluster.kubectl("delete", "instance", "vm", "-n", project)
    cluster.kubectl("delete", "volume", "data", "-n", project)
    cluster.kubectl("delete", "project", project, "--wait=false")
    eventually(
        lambda: kubectl_json(cluster, "get", "project", project) is None,
        timeout=30,
        what="the Project finalised",
    )
    namespace = kubectl_json(cluster, "get", "namespace", project)
    # No controller-manager runs here, so the namespace stays Terminating, but it was deleted.
    assert namespace is None or namespace["metadata"].get("deletionTimestamp")
    assert (
        kubectl_json(cluster, "get", "rolebindings", "-n", project, "-l", "kubenova.io/project")
        or {"items": []}
    )["items"] == []


def test_with_the_operator_down_new_specs_wait_but_status_metadata_and_deletes_pass(
    tenancy: Tenancy,
) -> None:
    cluster, project = tenancy.cluster, unique("down")
    tenancy.project(project)
    apply(
        cluster, an_instance("vm", project, flavor="q.4"), an_instance("vm2", project, flavor="q.4")
    )
    tenancy.operator.stop()
    try:
        error = apply(cluster, an_instance("new", project, flavor="q.4"), check=False).stderr
        assert "failed calling webhook" in error
        status = {"status": {"phase": "Error", "conditions": []}}
        cluster.kubectl(
            "patch", "instance", "vm", "-n", project, "--subresource=status", "--type=merge",
            "-p", json.dumps(status),
        )  # fmt: skip
        cluster.kubectl(
            "patch", "instance", "vm", "-n", project, "--type=merge",
            "-p", json.dumps(
                {"metadata": {"labels": {"example.org/tag": "x"}, "finalizers": ["example.org/f"]}}
            ),
        )  # fmt: skip
        cluster.kubectl(
            "patch", "instance", "vm", "-n", project, "--type=merge",
            "-p", '{"metadata":{"finalizers":null}}',
        )  # fmt: skip
        # The delete is admitted; it completes once the operator is back, since vm2 carries
        # the finalizers admission gave it at creation (never placed: released at once).
        cluster.kubectl("delete", "instance", "vm2", "-n", project, "--wait=false")
        deleting = kubectl_json(cluster, "get", "instance", "vm2", "-n", project)
        assert deleting["metadata"].get("deletionTimestamp")
        body = kubectl_json(cluster, "get", "instance", "vm", "-n", project)
        assert body["status"]["phase"] == "Error"
        assert body["metadata"]["labels"]["example.org/tag"] == "x"
    finally:
        tenancy.operator.start()
        eventually(
            lambda: (
                apply(cluster, an_instance("new", project, flavor="q.4"), check=False).returncode
                == 0
            ),
            timeout=60,
            what="the webhook back with the operator",
        )
    eventually(
        lambda: kubectl_json(cluster, "get", "instance", "vm2", "-n", project) is None,
        timeout=60,
        what="vm2 finalised by the operator back",
    )
