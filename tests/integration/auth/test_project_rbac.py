"""Projects on the real apiserver and slapd: namespaces, RoleBindings from LDAP, least privilege."""

from __future__ import annotations

from typing import Any

import pytest

from kubenova.devcluster import ClusterAccess
from tests.integration.auth.conftest import Tenancy, kubectl_json, unique
from tests.support.waiting import eventually

pytestmark = [pytest.mark.apiserver, pytest.mark.ldap]


def bindings(cluster: ClusterAccess, namespace: str) -> dict[str, list[str]]:
    """RoleBinding name -> user names, of the kubenova bindings in `namespace`."""
    listing = kubectl_json(
        cluster, "get", "rolebindings", "-n", namespace, "-l", "app.kubernetes.io/managed-by"
    )
    return {
        b["metadata"]["name"]: sorted(s["name"] for s in b.get("subjects") or [])
        for b in (listing or {"items": []})["items"]
    }


def bindings_of(cluster: ClusterAccess, user: str, *namespaces: str) -> list[tuple[str, str]]:
    return sorted(
        (namespace, name)
        for namespace in namespaces
        for name, users in bindings(cluster, namespace).items()
        if user in users
    )


def can_i(cluster: ClusterAccess, user: str, *args: str) -> bool:
    result = cluster.kubectl("auth", "can-i", *args, "--as", user, check=False)
    assert result.stdout.strip() in ("yes", "no"), result.stderr
    return result.stdout.strip() == "yes"


def test_ldap_groups_become_exactly_the_bindings_in_the_namespace_and_no_more_rights(
    tenancy: Tenancy,
) -> None:
    cluster = tenancy.cluster
    alpha = tenancy.project("alpha", quota={"instances": 10})
    tenancy.project("beta")
    namespace = kubectl_json(cluster, "get", "namespace", "alpha")
    assert namespace["metadata"]["labels"]["kubenova.io/project"] == "alpha"
    [owner] = namespace["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"]) == (
        "Project",
        "alpha",
        alpha["metadata"]["uid"],
    )
    assert bindings(cluster, "alpha") == {
        "kubenova-admin": ["alice"],
        "kubenova-member": ["bob"],
        "kubenova-reader": ["dave"],
    }
    # alice is in alpha-admins only: the admin binding in alpha, nothing else anywhere.
    assert bindings_of(cluster, "alice", "alpha", "beta", "default") == [
        ("alpha", "kubenova-admin")
    ]
    assert bindings(cluster, "beta") == {"kubenova-admin": ["carol"], "kubenova-member": ["carol"]}
    status = alpha["status"]
    assert (status["namespace"], status["members"]) == ("alpha", 3)
    assert status["usage"]["instances"] == 0
    # Namespaces never finish terminating here, so the same projects serve the RBAC checks.
    a_member_of_alpha_can_run_instances_there_and_nothing_else(cluster)


def a_member_of_alpha_can_run_instances_there_and_nothing_else(cluster: ClusterAccess) -> None:
    # bob is in alpha-members.
    assert can_i(cluster, "bob", "create", "instances.kubenova.io", "-n", "alpha")
    assert can_i(cluster, "bob", "delete", "volumes.kubenova.io", "-n", "alpha")
    assert can_i(cluster, "bob", "list", "networks.kubenova.io", "-n", "alpha")
    assert not can_i(cluster, "bob", "create", "networks.kubenova.io", "-n", "alpha")
    assert not can_i(cluster, "bob", "get", "instances.kubenova.io", "-n", "beta")
    assert not can_i(cluster, "bob", "list", "instances.kubenova.io", "--all-namespaces")
    assert not can_i(cluster, "bob", "get", "secrets", "-n", "alpha")
    assert not can_i(cluster, "bob", "list", "secrets", "--all-namespaces")
    assert not can_i(
        cluster, "bob", "patch", "instances.kubenova.io", "--subresource=status", "-n", "alpha"
    )
    assert not can_i(cluster, "bob", "create", "rolebindings", "-n", "alpha")
    assert not can_i(cluster, "bob", "delete", "namespaces")
    assert not can_i(cluster, "bob", "create", "flavors.kubenova.io")
    # dave reads, alice administers (networks too), carol is beta's.
    assert can_i(cluster, "dave", "list", "instances.kubenova.io", "-n", "alpha")
    assert not can_i(cluster, "dave", "create", "instances.kubenova.io", "-n", "alpha")
    assert can_i(cluster, "alice", "create", "networks.kubenova.io", "-n", "alpha")
    assert not can_i(cluster, "alice", "get", "secrets", "-n", "alpha")
    assert can_i(cluster, "carol", "create", "instances.kubenova.io", "-n", "beta")
    assert not can_i(cluster, "carol", "get", "instances.kubenova.io", "-n", "alpha")


def test_the_project_cluster_roles_grant_nothing_cluster_scoped(tenancy: Tenancy) -> None:
    for role in ("admin", "member", "reader"):
        body = kubectl_json(tenancy.cluster, "get", "clusterrole", f"kubenova-project-{role}")
        resources = {r for rule in body["rules"] for r in rule["resources"]}
        assert resources <= {"instances", "volumes", "networks", "servergroups", "events"}
        assert all("*" not in rule["verbs"] for rule in body["rules"])


def test_ldap_group_edits_reach_the_bindings_at_the_next_sync(tenancy: Tenancy) -> None:
    cluster, slapd = tenancy.cluster, tenancy.slapd
    name = unique("sync")
    slapd.add_to_group(f"{name}-members", "bob")
    try:
        tenancy.project(name)
        assert bindings(cluster, name) == {"kubenova-member": ["bob"]}
        slapd.add_to_group(f"{name}-members", "carol")
        slapd.add_to_group(f"{name}-admins", "alice")

        def synced(expected: dict[str, Any]) -> bool:
            return bindings(cluster, name) == expected

        eventually(
            lambda: synced({"kubenova-member": ["bob", "carol"], "kubenova-admin": ["alice"]}),
            timeout=15,
            what="carol and alice bound after the LDAP edit",
        )
        slapd.remove_from_group(f"{name}-admins", "alice")
        slapd.remove_from_group(f"{name}-members", "bob")
        eventually(
            lambda: synced({"kubenova-member": ["carol"]}),
            timeout=15,
            what="alice's binding gone and bob unbound",
        )
    finally:
        for uid in ("bob", "carol"):
            slapd.remove_from_group(f"{name}-members", uid)
