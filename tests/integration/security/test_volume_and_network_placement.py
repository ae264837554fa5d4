"""Placement is the operator's alone, for Volumes and Networks too.

A Volume's operator-written `status.host` decides which host keeps (and destroys) its
backing file, and its host's agent selects it by that field; a Network's
`wired.kubenova.io/<host>` labels decide where its bridge, DHCP and NAT run. Bob (member)
and alice (project admin) may write neither (status is not granted to them; the wiring
labels and the kubenova.io finalizers are refused by policy, on CREATE or UPDATE); a
`kubenova.io/host` label is just theirs and moves nothing. The Volume's claim, file and
export and the Network's wiring stay as they were.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubenova.agents.volume.fake import FakeExportDaemon, FakeExportDriver
from kubenova.operator import inventory as inv
from tests.builders import a_network, a_volume, as_yaml
from tests.integration.auth.conftest import Tenancy
from tests.integration.security.conftest import (
    ADMIN,
    TENANTS,
    as_user,
    claimed_host,
    metadata_of,
    refused_naming,
)
from tests.integration.volume.cluster import volume_in_phase
from tests.support.hosts import SimulatedHosts
from tests.support.volume_agent import VolumeAgent
from tests.support.waiting import eventually

pytestmark = [pytest.mark.apiserver, pytest.mark.ldap]

STORE, OTHER_STORE, GATEWAY = "sec-store", "sec-store2", "sec-gw"


@pytest.fixture
def store(tenancy: Tenancy, hosts: SimulatedHosts, tmp_path: Path) -> Iterator[VolumeAgent]:
    """sec-store runs the volume service (fake exports, real files); sec-store2 could too."""
    hosts.add(STORE, services=("volume",), disk_gib=50)
    hosts.add(OTHER_STORE, services=("volume",), disk_gib=1)  # too small to be chosen
    agent = VolumeAgent(
        tenancy.cluster.kubeconfig,
        STORE,
        {"iscsi": FakeExportDriver("iscsi", FakeExportDaemon(), location="10.0.0.5:3260")},
        tmp_path / STORE,
    )
    yield agent
    agent.stop()


def patch(*args: str, metadata: dict[str, object]) -> tuple[str, ...]:
    return ("patch", *args, "--type=merge", "-p", json.dumps({"metadata": metadata}))


def test_a_tenant_cannot_place_move_or_unplace_a_volume(
    tenancy: Tenancy, tenant_project: str, store: VolumeAgent
) -> None:
    cluster, namespace = tenancy.cluster, tenant_project
    for user in TENANTS:
        manifest = a_volume(f"pre-{user}", namespace, sizeGiB=1)
        manifest["metadata"]["finalizers"] = ["kubenova.io/agent", "kubenova.io/keep"]
        refused_naming(
            as_user(cluster, user, "apply", "-f", "-", stdin=as_yaml(manifest)),
            "metadata.finalizers",
        )
        assert cluster.kubectl(
            "get", "volume", f"pre-{user}", "-n", namespace, check=False
        ).returncode
    made = as_user(
        cluster, "bob", "apply", "-f", "-", stdin=as_yaml(a_volume("data", namespace, sizeGiB=2))
    )
    assert made.returncode == 0, made.stderr
    body = volume_in_phase(cluster, namespace, "data", "Available")
    uid = body["metadata"]["uid"]
    assert body["status"]["host"] == STORE
    before = metadata_of(cluster, "volume", namespace, "data")
    engine = inv.make_engine(tenancy.operator.database_url)
    assert claimed_host(engine, uid) == STORE
    assert store.store.volume_uids() == {uid}

    volume = ("volume", "data", "-n", namespace)
    for user in TENANTS:
        moved = as_user(
            cluster, user, "patch", *volume, "--subresource=status", "--type=merge",
            "-p", json.dumps({"status": {"host": OTHER_STORE}}),
        )  # fmt: skip
        assert moved.returncode != 0, moved.stdout
        assert 'resource "volumes/status"' in moved.stderr, moved.stderr
        may = as_user(
            cluster,
            user,
            "auth",
            "can-i",
            "patch",
            "volumes",
            "--subresource=status",
            "-n",
            namespace,
        )
        assert may.stdout.strip() == "no", may.stdout
        relabelled = as_user(
            cluster, user, "label", *volume, f"kubenova.io/host={OTHER_STORE}", "--overwrite"
        )
        assert relabelled.returncode == 0, relabelled.stderr  # an ordinary label now
        refused_naming(
            as_user(cluster, user, *patch(*volume, metadata={"finalizers": None})),
            "metadata.finalizers",
        )
        refused_naming(
            as_user(
                cluster,
                user,
                *patch(*volume, metadata={"finalizers": [*before["finalizers"], "kubenova.io/x"]}),
            ),
            "metadata.finalizers",
        )

    after = metadata_of(cluster, "volume", namespace, "data")
    assert (after["host"], after["finalizers"]) == (before["host"], before["finalizers"])
    assert claimed_host(engine, uid) == STORE
    assert store.store.volume_uids() == {uid}


def test_a_project_admin_cannot_wire_or_unwire_a_network(
    tenancy: Tenancy, tenant_project: str, hosts: SimulatedHosts
) -> None:
    cluster, namespace = tenancy.cluster, tenant_project
    hosts.add(GATEWAY, services=("network",), underlay_ip="192.168.60.9")
    wired = f"wired.kubenova.io/{GATEWAY}"
    manifest = a_network("pre", namespace, cidr="10.91.0.0/24")
    manifest["metadata"]["labels"] = {wired: "true"}
    refused_naming(
        as_user(cluster, ADMIN, "apply", "-f", "-", stdin=as_yaml(manifest)), "wired.kubenova.io"
    )
    assert cluster.kubectl("get", "network", "pre", "-n", namespace, check=False).returncode
    made = as_user(
        cluster,
        ADMIN,
        "apply",
        "-f",
        "-",
        stdin=as_yaml(a_network("blue", namespace, cidr="10.90.0.0/24")),
    )
    assert made.returncode == 0, made.stderr

    def wired_by_operator() -> dict[str, object] | None:
        meta = metadata_of(cluster, "network", namespace, "blue")
        return meta if meta["labels"].get(wired) == "true" else None

    before = eventually(wired_by_operator, timeout=30, what="the gateway host's wired label")
    network = ("network", "blue", "-n", namespace)
    refused_naming(as_user(cluster, ADMIN, "label", *network, f"{wired}-"), "wired.kubenova.io")
    refused_naming(
        as_user(cluster, ADMIN, "label", *network, "wired.kubenova.io/sec-other=true"),
        "wired.kubenova.io",
    )
    refused_naming(
        as_user(cluster, ADMIN, *patch(*network, metadata={"finalizers": None})),
        "metadata.finalizers",
    )
    # A member has no write on Networks at all (RBAC, before any admission policy).
    member = as_user(cluster, "bob", "label", *network, f"{wired}-")
    assert member.returncode != 0
    assert "forbidden" in member.stderr
    assert metadata_of(cluster, "network", namespace, "blue") == before
