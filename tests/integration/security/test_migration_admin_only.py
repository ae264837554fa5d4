"""Only cloud administrators may move a guest (issue 18): InstanceMigration on the real apiserver.

The project roles the operator installs (operator/auth/rbac.py) are applied as they are and
bound in a fresh namespace: a project member and a project admin are refused creating an
InstanceMigration by RBAC; a user bound to the chart's `kubenova-cloud-admin` ClusterRole may
create one but, like everyone but the operator and the agents, may not write its status (the
target host the agents select by).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from kubenova.devcluster import ClusterAccess
from kubenova.operator.auth.backend import Member, Role
from kubenova.operator.auth.rbac import cluster_roles, role_bindings
from tests.builders import as_yaml
from tests.integration.auth.conftest import unique
from tests.integration.security.test_admin_only_fields import binding, cloud_admin_role

pytestmark = [pytest.mark.apiserver]

MEMBER, ADMIN, CLOUD_ADMIN = "bob", "alice", "erin"


def a_migration(name: str, namespace: str, instance: str = "web") -> dict[str, Any]:
    return {
        "apiVersion": "kubenova.io/v1alpha1",
        "kind": "InstanceMigration",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"instanceName": instance},
    }


def create_as(cluster: ClusterAccess, user: str, doc: dict[str, Any]) -> Any:
    return cluster.kubectl("create", "--as", user, "-f", "-", input=as_yaml(doc), check=False)


def test_only_a_cloud_admin_may_create_an_instance_migration(
    apiserver: ClusterAccess, crds_installed: list[str]
) -> None:
    cluster, namespace = apiserver, unique("migrate-rbac")
    cluster.kubectl("create", "namespace", namespace)
    members = [Member(MEMBER, Role.MEMBER), Member(ADMIN, Role.ADMIN)]
    docs = [*cluster_roles(), *role_bindings(namespace, namespace, members).values()]
    docs += [
        cloud_admin_role(),
        binding("ClusterRoleBinding", f"{namespace}-erin", "kubenova-cloud-admin", CLOUD_ADMIN),
    ]
    cluster.kubectl("apply", "-f", "-", input=as_yaml(*docs))
    try:
        for user in (MEMBER, ADMIN):
            result = create_as(cluster, user, a_migration(f"by-{user}", namespace))
            assert result.returncode != 0, f"{user} created a migration: {result.stdout}"
            assert "forbidden" in result.stderr.lower(), result.stderr
            assert "instancemigrations" in result.stderr, result.stderr
        result = create_as(cluster, CLOUD_ADMIN, a_migration("by-erin", namespace))
        assert result.returncode == 0, result.stderr
        # The target host the agents select by is the operator's to write, not the admin's.
        patch = json.dumps({"status": {"targetHost": "elsewhere"}})
        refused = cluster.kubectl(
            "patch", "instancemigration", "by-erin", "-n", namespace, "--as", CLOUD_ADMIN,
            "--subresource=status", "--type=merge", "-p", patch, check=False,
        )  # fmt: skip
        assert refused.returncode != 0, refused.stdout
        assert "forbidden" in refused.stderr.lower(), refused.stderr
        # A migration in the project's namespace (an administrator's, a drain's, or the one a
        # cold resize makes) is out of the project's reach: no cancelling it, no retargeting.
        retarget = json.dumps({"spec": {"targetHost": "elsewhere", "mode": "Live"}})
        for user in (MEMBER, ADMIN):
            for argv in (
                ("delete", "instancemigration", "by-erin"),
                ("patch", "instancemigration", "by-erin", "--type=merge", "-p", retarget),
            ):
                result = cluster.kubectl(*argv, "-n", namespace, "--as", user, check=False)
                assert result.returncode != 0, f"{user} could {argv[0]}: {result.stdout}"
                assert "forbidden" in result.stderr.lower(), result.stderr
    finally:
        cluster.kubectl("delete", "clusterrolebinding", f"{namespace}-erin", check=False)
