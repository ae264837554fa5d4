"""What the attack tests share: the auth suite's tenancy, a fresh project, kubectl as a user.

`tenancy` (the operator with its webhook and the LDAP backend, see tests/integration/auth)
is reused; `tenant_project` makes a fresh project in which bob is a member and alice an
admin (namespaces never finish terminating on this apiserver, so each test gets its own).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine

from kubenova.devcluster import ClusterAccess
from kubenova.operator import inventory as inv
from tests.integration.auth.conftest import Tenancy, tenancy, unique

__all__ = ["tenancy"]

MEMBER, ADMIN = "bob", "alice"
TENANTS = (MEMBER, ADMIN)


@pytest.fixture
def tenant_project(tenancy: Tenancy) -> Iterator[str]:
    """A Ready project (its namespace has the same name): bob member, alice admin."""
    name = unique("sec")
    tenancy.slapd.add_to_group(f"{name}-members", MEMBER)
    tenancy.slapd.add_to_group(f"{name}-admins", ADMIN)
    try:
        tenancy.project(name)
        yield name
    finally:
        tenancy.slapd.remove_from_group(f"{name}-members", MEMBER)
        tenancy.slapd.remove_from_group(f"{name}-admins", ADMIN)


def as_user(cluster: ClusterAccess, user: str, *args: str, stdin: str | None = None) -> Any:
    """kubectl acting as `user` (impersonation: the user's own RBAC and admission apply)."""
    return cluster.kubectl(*args, "--as", user, input=stdin, check=False)


def metadata_of(cluster: ClusterAccess, kind: str, namespace: str, name: str) -> dict[str, Any]:
    result = cluster.kubectl("get", kind, name, "-n", namespace, "-o", "json", check=False)
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    return {
        "labels": body["metadata"].get("labels") or {},
        "finalizers": body["metadata"].get("finalizers") or [],
        "host": (body.get("status") or {}).get("host"),
    }


def refused_naming(result: Any, *words: str) -> str:
    """Assert kubectl's request was refused at admission with every one of `words` in it."""
    assert result.returncode != 0, f"was admitted: {result.stdout}"
    # A CEL expression that fails to evaluate also refuses (failurePolicy Fail), but with
    # the apiserver's words: the refusal must be the policy's own message.
    assert "ValidatingAdmissionPolicy" in result.stderr, result.stderr
    assert "error" not in result.stderr.split("denied request:", 1)[-1].lower(), result.stderr
    for word in words:
        assert word in result.stderr, result.stderr
    return str(result.stderr)


def claimed_host(engine: Engine, uid: str) -> str | None:
    """The host of the inventory claim of consumer `uid`, None without a claim."""
    claim = inv.find_claim(engine, uid)
    return None if claim is None else claim.host
