"""Project RBAC manifests: least privilege by construction, one binding per role with members."""

from __future__ import annotations

from kubenova.operator.auth import Member, Role
from kubenova.operator.auth.rbac import cluster_roles, role_bindings, same_binding


def rules_by_role() -> dict[str, dict[str, set[str]]]:
    """ClusterRole name -> resource -> verbs."""
    out: dict[str, dict[str, set[str]]] = {}
    for role in cluster_roles():
        grants: dict[str, set[str]] = {}
        for rule in role["rules"]:
            for resource in rule["resources"]:
                grants.setdefault(resource, set()).update(rule["verbs"])
        out[role["metadata"]["name"]] = grants
    return out


def test_each_role_grants_exactly_its_rights_on_kubenova_resources() -> None:
    rules = rules_by_role()
    write = {"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"}
    read = {"get", "list", "watch"}
    assert rules["kubenova-project-admin"] == {
        "instances": write, "volumes": write, "servergroups": write, "networks": write,
        "events": read,
    }  # fmt: skip
    assert rules["kubenova-project-member"] == {
        "instances": write, "volumes": write, "servergroups": write, "networks": read,
        "events": read,
    }  # fmt: skip
    assert rules["kubenova-project-reader"] == {
        "instances": read, "volumes": read, "servergroups": read, "networks": read, "events": read,
    }  # fmt: skip


def test_no_role_names_a_subresource_wildcard_or_secret() -> None:
    for role in cluster_roles():
        for rule in role["rules"]:
            assert "*" not in rule["verbs"]
            assert all("/" not in r and r not in {"*", "secrets"} for r in rule["resources"])
            assert rule["apiGroups"] in (["kubenova.io"], ["", "events.k8s.io"])


def test_bindings_group_members_by_role_and_skip_empty_roles() -> None:
    members = [Member("bob", Role.MEMBER), Member("alice", Role.ADMIN), Member("carl", Role.MEMBER)]
    bindings = role_bindings("alpha", "alpha-ns", members)
    assert set(bindings) == {Role.ADMIN, Role.MEMBER}
    member = bindings[Role.MEMBER]
    assert member["metadata"]["namespace"] == "alpha-ns"
    assert member["metadata"]["labels"]["kubenova.io/project"] == "alpha"
    assert member["roleRef"]["name"] == "kubenova-project-member"
    assert [s["name"] for s in member["subjects"]] == ["bob", "carl"]
    assert all(s["kind"] == "User" for s in member["subjects"])


def test_an_unchanged_binding_is_not_rewritten() -> None:
    desired = role_bindings("alpha", "alpha", [Member("bob", Role.MEMBER)])[Role.MEMBER]
    live = {**desired, "metadata": {**desired["metadata"], "uid": "x", "resourceVersion": "9"}}
    assert same_binding(live, desired)
    changed = role_bindings("alpha", "alpha", [Member("eve", Role.MEMBER)])[Role.MEMBER]
    assert not same_binding(live, changed)
