"""Admin-only fields are admin-only (issue 12, item 2), on the real apiserver and webhook.

`spec.placement.host` of an Instance and a Network's provider fields (mode flat or vlan,
`physicalInterface`) need the virtual subresources `instances/forcehost` and
`networks/provider`. Two doors ask for them, each shown alone here: the operator's webhook
(a SubjectAccessReview for the requesting user; the policies' bindings are lifted for
those tests) and the ValidatingAdmissionPolicies of charts/kubenova/policies/
admin-only-fields.yaml (CEL `authorizer`, no webhook running). A project admin is refused
naming the field and nothing is left behind (no object, no quota charge); a cluster admin
and a user bound to the chart's `kubenova-cloud-admin` ClusterRole get through.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubenova.devcluster import POLICY_DIR, ClusterAccess, install_policies
from kubenova.devcluster.binaries import cache_bin_dir
from kubenova.operator import inventory as inv
from kubenova.operator.inventory import quotas
from tests.builders import a_host, a_network, an_instance, as_yaml
from tests.integration.auth.conftest import Tenancy, apply, kubectl_json, unique
from tests.support.waiting import eventually

pytestmark = [pytest.mark.apiserver, pytest.mark.ldap]

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "charts" / "kubenova"
POLICIES = ("kubenova-instance-forcehost", "kubenova-network-provider")
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
    # The webhook alone: the policies would refuse first (they run before webhooks).
    cluster.kubectl("delete", "validatingadmissionpolicybinding", *POLICIES, check=False)
    try:
        eventually(
            lambda: "admission webhook" in apply_as(cluster, "alice", pinned("probe", name)).stderr,
            timeout=30,
            what="the webhook (not the policy) refusing",
        )
        yield name
    finally:
        install_policies(cluster, REPO / POLICY_DIR)
        for kind, obj in (("clusterrolebinding", crb), ("clusterrole", cloud_admin_role())):
            cluster.kubectl("delete", kind, obj["metadata"]["name"], check=False)
        cluster.kubectl("delete", "host", HOST, check=False)
        cluster.kubectl("delete", "networks", "--all", "-n", name, "--wait=false", check=False)


def apply_as(cluster: ClusterAccess, user: str, *docs: dict[str, Any]) -> Any:
    return cluster.kubectl("apply", "--as", user, "-f", "-", input=as_yaml(*docs), check=False)


def assert_refused(result: Any, field: str, door: str = "admission webhook") -> None:
    assert result.returncode != 0, f"admitted: {result.stdout}"
    assert door in result.stderr, result.stderr
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


# -- the policies alone: no operator, no webhook ------------------------------------------


@pytest.fixture
def bare_namespace(apiserver: ClusterAccess, crds_installed: list[str]) -> Iterator[str]:
    """A namespace where alice and erin may write Instances and Networks (a plain Role),
    erin is a cloud admin, and no webhook is configured."""
    namespace = unique("policy-only")
    apiserver.kubectl("delete", "validatingwebhookconfiguration,mutatingwebhookconfiguration",
                      "kubenova-admission", check=False)  # fmt: skip
    apiserver.kubectl("create", "namespace", namespace)
    writer = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "writer", "namespace": namespace},
        "rules": [
            {
                "apiGroups": ["kubenova.io"],
                "resources": ["instances", "networks"],
                "verbs": ["get", "create", "patch", "update"],
            }
        ],
    }
    bindings = [
        binding("RoleBinding", f"{user}-writer", "writer", user, namespace)
        | {"roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "writer"}}
        for user in ("alice", CLOUD_ADMIN)
    ]
    crb = binding("ClusterRoleBinding", f"{CLOUD_ADMIN}-cloud-admin", CLOUD_ADMIN_ROLE, CLOUD_ADMIN)
    apply(apiserver, cloud_admin_role(), writer, *bindings, crb)
    try:
        yield namespace
    finally:
        apiserver.kubectl("delete", "clusterrolebinding", crb["metadata"]["name"], check=False)
        apiserver.kubectl("delete", "clusterrole", CLOUD_ADMIN_ROLE, check=False)
        apiserver.kubectl("delete", "instances,networks", "--all", "-n", namespace,
                          "--wait=false", check=False)  # fmt: skip


POLICY_CASES = [
    (pinned("pinned", "NS"), "spec.placement.host", "instances/forcehost"),
    (a_network("flat", "NS", mode="flat"), "spec.mode", "networks/provider"),
    (a_network("nic", "NS", physicalInterface="eth0"), "spec.physicalInterface",
     "networks/provider"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("manifest", "field", "privilege"), POLICY_CASES, ids=["host", "flat", "interface"]
)
def test_the_policies_refuse_admin_only_fields_without_any_webhook(
    apiserver: ClusterAccess,
    bare_namespace: str,
    manifest: dict[str, Any],
    field: str,
    privilege: str,
) -> None:
    manifest = manifest | {"metadata": manifest["metadata"] | {"namespace": bare_namespace}}
    name = manifest["metadata"]["name"]
    kind = manifest["kind"].lower()

    def past_rbac() -> Any:
        # RBAC may take a moment to see the new binding: until then alice is simply forbidden.
        result = apply_as(apiserver, "alice", manifest)
        return None if "is forbidden: User" in result.stderr else result

    result = eventually(past_rbac, timeout=15, what="alice's Role in effect")
    assert_refused(result, field, door="ValidatingAdmissionPolicy")
    assert privilege in result.stderr
    assert absent(apiserver, kind, name, bare_namespace)
    # Without the field alice may; erin (cloud admin) and a cluster admin may with it.
    plain = manifest | {"metadata": {"name": f"plain-{name}", "namespace": bare_namespace}}
    spec = dict(plain["spec"])
    spec.pop("placement", None)
    spec.pop("physicalInterface", None)
    spec["mode"] = spec.get("mode") if kind == "instance" else "vxlan"
    plain["spec"] = {k: v for k, v in spec.items() if v is not None}
    assert apply_as(apiserver, "alice", plain).returncode == 0
    result = apply_as(apiserver, CLOUD_ADMIN, manifest)
    assert result.returncode == 0, result.stderr
    updated = manifest | {"metadata": {"name": f"admin-{name}", "namespace": bare_namespace}}
    apply(apiserver, updated)
