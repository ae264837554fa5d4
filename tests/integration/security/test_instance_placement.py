"""Placement is the operator's alone: a tenant cannot place, move or unplace an Instance.

Where an Instance runs is its `status.host`, which agents select by: bob (project member)
and alice (project admin) may not write status at all (RBAC), and every write of what is
left of placement in metadata (a wiring label, the kubenova.io finalizers) is refused at
the API with the field named. A `kubenova.io/host` label is just a label now: theirs to
set, and it moves nothing. Afterwards the Instance, its claim in the inventory and its
domain on the host are exactly as the operator and agent left them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kubenova.devcluster import ClusterAccess
from kubenova.operator import inventory as inv
from kubenova.operator.inventory.consumers import list_consumers
from tests.builders import an_instance, as_yaml
from tests.fixtures.agent import AgentFactory
from tests.integration.auth.conftest import Tenancy
from tests.integration.operator.test_scheduling import get, wait_ready
from tests.integration.security.conftest import (
    TENANTS,
    as_user,
    claimed_host,
    metadata_of,
    refused_naming,
)
from tests.support.waiting import eventually

pytestmark = [pytest.mark.apiserver, pytest.mark.ldap]

HOSTS = ("sec-a", "sec-b")
FLAVOR = "q.4"  # made by the tenancy fixture


def domains(state_dir: Path) -> list[str]:
    """The fake driver's per-domain files on a host (its hypervisor state is the agent's)."""
    root = state_dir / "fake-libvirt"
    return sorted(p.name for p in root.glob("kubenova-*")) if root.exists() else []


def running(cluster: ClusterAccess, namespace: str, name: str) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        body = get(cluster, namespace, name)
        return body if ((body or {}).get("status") or {}).get("phase") == "Running" else None

    return eventually(probe, timeout=60, what=f"{namespace}/{name} Running")


def merge_patch(metadata: dict[str, Any]) -> str:
    return json.dumps({"metadata": metadata})


def test_a_tenant_cannot_create_an_instance_already_placed(
    tenancy: Tenancy, tenant_project: str, agents: AgentFactory
) -> None:
    cluster, namespace = tenancy.cluster, tenant_project
    for host in HOSTS:
        agents.start(host, capacity="vcpus=8,memoryMiB=4096,diskGiB=100")
    wait_ready(cluster, *HOSTS)
    attempts = {
        "wired.kubenova.io/": {"labels": {"wired.kubenova.io/sec-a": "true"}},
        # What admission adds at creation is admitted; any other kubenova.io one is not.
        "metadata.finalizers": {"finalizers": ["kubenova.io/agent", "kubenova.io/mine"]},
    }
    for user in TENANTS:
        for named, metadata in attempts.items():
            manifest = an_instance(f"pre-{user}", namespace, flavor=FLAVOR)
            manifest["metadata"] |= metadata
            result = as_user(cluster, user, "apply", "-f", "-", stdin=as_yaml(manifest))
            refused_naming(result, named, "operator")
            assert get(cluster, namespace, f"pre-{user}") is None
    engine = inv.make_engine(tenancy.operator.database_url)
    assert list_consumers(engine, "Instance") == []
    assert all(domains(agent.state_dir) == [] for agent in agents.agents)


def test_admission_adds_the_finalizers_at_creation(tenancy: Tenancy, tenant_project: str) -> None:
    """The mutating webhook, not a later write: a server-side dry run already shows them."""
    cluster, namespace = tenancy.cluster, tenant_project
    manifest = an_instance("dry", namespace, flavor=FLAVOR)
    manifest["metadata"]["finalizers"] = ["example.com/backup"]  # a tenant's own, kept
    dry = as_user(
        cluster, "bob", "create", "--dry-run=server", "-o", "json", "-f", "-",
        stdin=as_yaml(manifest),
    )  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["metadata"]["finalizers"] == [
        "example.com/backup",
        "kubenova.io/operator",
        "kubenova.io/agent",
    ]
    assert get(cluster, namespace, "dry") is None  # a dry run stores nothing


def test_a_tenant_cannot_unplace_move_or_unfinalize_a_running_instance(
    tenancy: Tenancy, tenant_project: str, agents: AgentFactory
) -> None:
    cluster, namespace = tenancy.cluster, tenant_project
    for host in HOSTS:
        agents.start(host, capacity="vcpus=8,memoryMiB=4096,diskGiB=100")
    wait_ready(cluster, *HOSTS)
    made = as_user(
        cluster,
        "bob",
        "apply",
        "-f",
        "-",
        stdin=as_yaml(an_instance("vm", namespace, flavor=FLAVOR)),
    )
    assert made.returncode == 0, made.stderr
    body = running(cluster, namespace, "vm")
    uid, host = body["metadata"]["uid"], body["status"]["host"]
    other = next(h for h in HOSTS if h != host)
    on_host = next(a for a in agents.agents if a.host == host)
    before = metadata_of(cluster, "instance", namespace, "vm")
    # Finalizers from creation (the mutating webhook), the operator's one status write.
    assert set(before["finalizers"]) == {"kubenova.io/operator", "kubenova.io/agent"}
    engine = inv.make_engine(tenancy.operator.database_url)
    assert claimed_host(engine, uid) == host
    domains_before = domains(on_host.state_dir)
    assert len(domains_before) == 1

    for user in TENANTS:
        # status (status.host above all) is not theirs to write, nor even to read through
        # the subresource: RBAC refuses it outright.
        for status in ({"host": other}, {"host": None}, {"phase": "Deleting"}):
            moved = as_user(
                cluster, user, "patch", "instance", "vm", "-n", namespace,
                "--subresource=status", "--type=merge", "-p", json.dumps({"status": status}),
            )  # fmt: skip
            assert moved.returncode != 0, moved.stdout
            assert 'resource "instances/status"' in moved.stderr, moved.stderr
        may = as_user(
            cluster,
            user,
            "auth",
            "can-i",
            "patch",
            "instances",
            "--subresource=status",
            "-n",
            namespace,
        )
        assert may.stdout.strip() == "no", may.stdout
        label = ("label", "instance", "vm", "-n", namespace)
        # A host label is an ordinary label: admitted, and (below) it moves nothing.
        relabelled = as_user(cluster, user, *label, f"kubenova.io/host={other}", "--overwrite")
        assert relabelled.returncode == 0, relabelled.stderr
        refused_naming(
            as_user(cluster, user, *label, f"wired.kubenova.io/{other}=true"), "wired.kubenova.io"
        )
        patch = ("patch", "instance", "vm", "-n", namespace, "--type=merge", "-p")
        refused_naming(
            as_user(cluster, user, *patch, merge_patch({"finalizers": None})),
            "metadata.finalizers",
        )
        refused_naming(
            as_user(
                cluster,
                user,
                *patch,
                merge_patch({"finalizers": [*before["finalizers"], "kubenova.io/mine"]}),
            ),
            "metadata.finalizers",
        )
        # What is theirs stays theirs: an ordinary label is still the tenant's to set.
        allowed = as_user(cluster, user, *label, f"owner={user}", "--overwrite")
        assert allowed.returncode == 0, allowed.stderr

    after = metadata_of(cluster, "instance", namespace, "vm")
    assert after["labels"]["kubenova.io/host"] == other  # the tenant's label, nothing more
    assert not any(k.startswith("wired.kubenova.io/") for k in after["labels"])
    assert after["finalizers"] == before["finalizers"]
    assert after["host"] == host
    assert claimed_host(engine, uid) == host
    assert domains(on_host.state_dir) == domains_before
    assert domains(next(a for a in agents.agents if a.host == other).state_dir) == []
