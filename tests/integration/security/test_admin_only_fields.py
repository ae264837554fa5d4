"""Admin-only fields are admin-only (issue 12, item 2), on the real apiserver and webhook.

`spec.placement.host` of an Instance and a Network's provider fields (mode flat or vlan,
`physicalInterface`) need the virtual subresources `instances/forcehost` and
`networks/provider`, which the webhook asks the apiserver about with a
SubjectAccessReview for the requesting user. A project admin is refused naming the field
and nothing is left behind (no object, no quota charge); a cluster admin and a user bound
to the chart's `kubenova-cloud-admin` ClusterRole get through.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubenova.devcluster import ClusterAccess
from kubenova.devcluster.binaries import cache_bin_dir
from kubenova.operator import inventory as inv
from kubenova.operator.inventory import quotas
from tests.builders import a_host, a_network, an_instance, as_yaml
from tests.integration.auth.conftest import Tenancy, apply, kubectl_json, unique
from tests.support.waiting import eventually

pytestmark = [pytest.mark.apiserver, pytest.mark.ldap]

CHART = Path(__file__).resolve().parents[3] / "charts" / "kubenova"
CLOUD_ADMIN_ROLE = "kubenova-cloud-admin"
CLOUD_ADMIN = "erin"  # in no project; bound to the cloud-admin role by the test
HOST = "pinned-host"


def cloud_admin_role() -> dict[str, Any]:
    """The chart's kubenova-cloud-admin ClusterRole, as helm renders it."""
    argv = [str(cache_bin_dir() / "helm"), "template", "kubenova", str(CHART),
            "-n", "kubenova-system", "--kube-version=1.33.0",
            "--show-only", "templates/cloud-admin-rbac.yaml"]  # fmt: skip
    rendered = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=120).stdout
    [role] = [doc for doc in yaml.safe_load_all(rendered) if doc]
    assert role["metadata"]["name"] == CLOUD_ADMIN_ROLE
    return dict(role)


def binding(kind: str, name: str, role: str, user: str, namespace: str = "") -> dict[str, Any]:
    meta = {"name": name} | ({"namespace": namespace} if namespace else {})
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": kind,
        "metadata": meta,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    }


@pytest.fixture
def project(tenancy: Tenancy) -> Iterator[str]:
    """A project whose admin is alice, a Host to pin to, and erin as a cloud admin."""
    cluster, name = tenancy.cluster, unique("admin-only")
    tenancy.slapd.add_to_group(f"{name}-admins", "alice")
    tenancy.project(name)
    eventually(
        lambda: "alice" in str(kubectl_json(cluster, "get", "rolebinding", "-n", name)),
        timeout=30,
        what=f"alice bound as admin of {name}",
    )
    crb = binding("ClusterRoleBinding", f"{CLOUD_ADMIN}-cloud-admin", CLOUD_ADMIN_ROLE, CLOUD_ADMIN)
    in_project = binding(
        "RoleBinding", f"{CLOUD_ADMIN}-project-admin", "kubenova-project-admin", CLOUD_ADMIN, name
    )
    apply(cluster, cloud_admin_role(), crb, in_project, a_host(HOST))
    try:
        yield name
    finally:
        for kind, obj in (("clusterrolebinding", crb), ("clusterrole", cloud_admin_role())):
            cluster.kubectl("delete", kind, obj["metadata"]["name"], check=False)
        cluster.kubectl("delete", "host", HOST, check=False)
        cluster.kubectl("delete", "networks", "--all", "-n", name, "--wait=false", check=False)


def apply_as(cluster: ClusterAccess, user: str, *docs: dict[str, Any]) -> Any:
    return cluster.kubectl("apply", "--as", user, "-f", "-", input=as_yaml(*docs), check=False)


def assert_refused(result: Any, field: str) -> None:
    assert result.returncode != 0, f"admitted: {result.stdout}"
    assert "denied the request" in result.stderr, result.stderr
    assert field in result.stderr, result.stderr


def absent(cluster: ClusterAccess, kind: str, name: str, namespace: str) -> bool:
    return kubectl_json(cluster, "get", kind, name, "-n", namespace) is None


def pinned(name: str, namespace: str) -> dict[str, Any]:
    return an_instance(name, namespace, flavor="q.4", placement={"host": HOST})


def test_a_project_admin_cannot_pin_an_instance_to_a_host(tenancy: Tenancy, project: str) -> None:
    cluster = tenancy.cluster
    result = apply_as(cluster, "alice", pinned("pinned", project))
    assert_refused(result, "spec.placement.host")
    assert "instances/forcehost" in result.stderr
    assert absent(cluster, "instance", "pinned", project)
    engine = inv.make_engine(tenancy.operator.database_url)
    try:
        assert quotas.usage(engine, project).instances == 0  # no reservation left behind
    finally:
        engine.dispose()
    # Without the field the same request is the project admin's to make.
    unpinned = an_instance("unpinned", project, flavor="q.4")
    assert apply_as(cluster, "alice", unpinned).returncode == 0


def test_a_cluster_admin_and_a_cloud_admin_may_pin_an_instance(
    tenancy: Tenancy, project: str
) -> None:
    cluster = tenancy.cluster
    apply(cluster, pinned("by-cluster-admin", project))
    result = apply_as(cluster, CLOUD_ADMIN, pinned("by-cloud-admin", project))
    assert result.returncode == 0, result.stderr
    spec = kubectl_json(cluster, "get", "instance", "by-cloud-admin", "-n", project)["spec"]
    assert spec["placement"]["host"] == HOST


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"mode": "flat"}, "spec.mode"),
        ({"mode": "vlan"}, "spec.mode"),
        ({"physicalInterface": "eth0"}, "spec.physicalInterface"),
    ],
    ids=["flat", "vlan", "physical-interface"],
)
def test_a_project_admin_cannot_create_a_provider_network(
    tenancy: Tenancy, project: str, spec: dict[str, Any], field: str
) -> None:
    cluster = tenancy.cluster
    result = apply_as(cluster, "alice", a_network("provider", project, **spec))
    assert_refused(result, field)
    assert "networks/provider" in result.stderr
    assert absent(cluster, "network", "provider", project)
    # The cloud admin may.
    result = apply_as(cluster, CLOUD_ADMIN, a_network("provider", project, **spec))
    assert result.returncode == 0, result.stderr


def test_a_project_admin_cannot_add_a_physical_interface_to_a_tenant_network(
    tenancy: Tenancy, project: str
) -> None:
    cluster = tenancy.cluster
    tenant = a_network("tenant", project, cidr="10.31.0.0/24")
    assert apply_as(cluster, "alice", tenant).returncode == 0  # vxlan: a tenant network
    changed = a_network("tenant", project, cidr="10.31.0.0/24", physicalInterface="eth0")
    assert_refused(apply_as(cluster, "alice", changed), "spec.physicalInterface")
    spec = kubectl_json(cluster, "get", "network", "tenant", "-n", project)["spec"]
    assert "physicalInterface" not in spec
    # A cluster admin may create one with a host interface.
    apply(cluster, a_network("admins", project, cidr="10.32.0.0/24", mode="flat",
                             physicalInterface="eth1"))  # fmt: skip
