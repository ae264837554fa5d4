"""Which fields are admin-only, and the SubjectAccessReview asked for them (pure parts)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from kubenova.operator.admission import AdmissionRefused
from kubenova.operator.admission.privileges import (
    FORCE_HOST,
    PROVIDER_NETWORK,
    Privilege,
    instance_admin_fields,
    network_admin_fields,
    require_privileges,
    subject_access_review,
)

ALICE = {"username": "alice", "uid": "u-1", "groups": ["system:authenticated"], "extra": {}}


class Grants:
    """An authorizer answering from a set of (user, verb, namespace, privilege)."""

    def __init__(self, *granted: tuple[str, str, str, Privilege]) -> None:
        self.granted = set(granted)
        self.asked: list[tuple[str, str, str, Privilege]] = []

    async def allowed(
        self, user: Mapping[str, Any], verb: str, namespace: str, privilege: Privilege
    ) -> bool:
        question = (str(user["username"]), verb, namespace, privilege)
        self.asked.append(question)
        return question in self.granted


def test_a_pinned_host_needs_forcehost_on_create_and_when_it_changes() -> None:
    pinned = {"placement": {"host": "h1"}}
    [needed] = instance_admin_fields(pinned, None)
    assert (needed.field, needed.privilege) == ("spec.placement.host", FORCE_HOST)
    assert instance_admin_fields(pinned, pinned) == []  # an unrelated update
    assert instance_admin_fields({"placement": {"host": "h2"}}, pinned) != []
    assert instance_admin_fields({"placement": {"group": "g"}}, None) == []


@pytest.mark.parametrize(
    ("spec", "fields"),
    [
        ({"mode": "vxlan"}, []),
        ({"mode": "flat"}, ["spec.mode"]),
        ({"mode": "vlan"}, ["spec.mode"]),
        ({"mode": "vxlan", "physicalInterface": "eth0"}, ["spec.physicalInterface"]),
        ({"mode": "flat", "physicalInterface": "eth0"}, ["spec.mode", "spec.physicalInterface"]),
    ],
)
def test_provider_fields_of_a_new_network(spec: dict[str, Any], fields: list[str]) -> None:
    found = network_admin_fields(spec, None)
    assert [f.field for f in found] == fields
    assert all(f.privilege == PROVIDER_NETWORK for f in found)


def test_an_update_needs_the_privilege_only_for_what_it_changes() -> None:
    old = {"mode": "vlan", "physicalInterface": "eth0", "dhcp": True}
    assert network_admin_fields(old | {"dhcp": False}, old) == []
    [changed] = network_admin_fields(old | {"physicalInterface": "eth1"}, old)
    assert changed.field == "spec.physicalInterface"


def test_the_review_carries_who_asked_and_the_virtual_subresource() -> None:
    user = ALICE | {"extra": {"scopes": ("a", "b")}}
    review = subject_access_review(user, "create", "p1", FORCE_HOST)
    assert review["kind"] == "SubjectAccessReview"
    spec = review["spec"]
    assert (spec["user"], spec["uid"], spec["groups"]) == ("alice", "u-1", ["system:authenticated"])
    assert spec["extra"] == {"scopes": ["a", "b"]}
    assert spec["resourceAttributes"] == {
        "group": "kubenova.io",
        "resource": "instances",
        "subresource": "forcehost",
        "verb": "create",
        "namespace": "p1",
    }


def test_a_refusal_names_the_field_and_the_privilege() -> None:
    fields = instance_admin_fields({"placement": {"host": "h1"}}, None)
    authorizer = Grants()
    with pytest.raises(AdmissionRefused) as refused:
        asyncio.run(require_privileges(fields, authorizer, ALICE, "CREATE", "p1"))
    assert refused.value.field == "spec.placement.host"
    assert refused.value.code == 403
    assert "instances/forcehost" in refused.value.message
    assert authorizer.asked == [("alice", "create", "p1", FORCE_HOST)]


def test_a_granted_user_passes_and_no_user_is_refused() -> None:
    fields = network_admin_fields({"mode": "flat"}, None)
    authorizer = Grants(("root", "create", "p1", PROVIDER_NETWORK))
    asyncio.run(require_privileges(fields, authorizer, {"username": "root"}, "CREATE", "p1"))
    with pytest.raises(AdmissionRefused):
        asyncio.run(require_privileges(fields, authorizer, None, "CREATE", "p1"))
    asyncio.run(require_privileges([], Grants(), None, "CREATE", "p1"))  # nothing to ask
