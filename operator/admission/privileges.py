"""Admin-only fields: asked of the apiserver's authorizer for the user who sent the request.

Some spec fields are a cloud administrator's, not a project's: `spec.placement.host` of an
Instance (skips the scheduler's weighing, Nova's `forced_host`) and a Network's provider
fields (`mode: flat` bridges a host interface itself, `mode: vlan` tags the physical
trunk, `physicalInterface` picks the host NIC). Each is guarded by a virtual subresource
that no object has but RBAC can grant — `instances/forcehost`, `networks/provider` in
kubenova.io — checked with a SubjectAccessReview for the requesting user (name, uid,
groups, extra), the admission operation as the verb, in the object's namespace. Cluster
admins hold it (system:masters may do anything); the chart's ClusterRole
`kubenova-cloud-admin` grants it to whoever else is bound to it; the project roles never
do. A pure check: it reads the authorizer's answer and changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from kubenova.api.v1alpha1 import GROUP
from kubenova.kube import KubeClient
from kubenova.kube.meta import Body
from kubenova.kube.paths import SUBJECT_ACCESS_REVIEWS
from kubenova.operator.admission.errors import FORBIDDEN, AdmissionRefused


@dataclass(frozen=True)
class Privilege:
    """A virtual subresource of a kubenova resource that guards admin-only fields."""

    resource: str
    subresource: str

    @property
    def rbac_name(self) -> str:
        return f"{self.resource}/{self.subresource}"


FORCE_HOST = Privilege("instances", "forcehost")
PROVIDER_NETWORK = Privilege("networks", "provider")
# Network modes that put a host NIC into the network (flat: the interface itself is
# bridged; vlan: an 802.1Q sub-interface or OVS tag on the physical trunk). vxlan rides
# the underlay through the kernel's routing and is the tenants' mode.
PROVIDER_MODES = frozenset({"flat", "vlan"})


class Authorizer(Protocol):
    """Answers whether `user` may `verb` the privilege in `namespace`."""

    async def allowed(
        self, user: Mapping[str, Any], verb: str, namespace: str, privilege: Privilege
    ) -> bool: ...


class SubjectAccessReviews:
    """The apiserver's authorizer (RBAC and whatever else it runs), asked per request."""

    def __init__(self, client: KubeClient) -> None:
        self.client = client

    async def allowed(
        self, user: Mapping[str, Any], verb: str, namespace: str, privilege: Privilege
    ) -> bool:
        review = subject_access_review(user, verb, namespace, privilege)
        answer = await self.client.create(SUBJECT_ACCESS_REVIEWS, review)
        return bool((answer.get("status") or {}).get("allowed"))


def subject_access_review(
    user: Mapping[str, Any], verb: str, namespace: str, privilege: Privilege
) -> Body:
    """The SubjectAccessReview for the AdmissionReview's userInfo, as the apiserver sent it."""
    spec: Body = {
        "user": str(user.get("username") or ""),
        "groups": list(user.get("groups") or ()),
        "resourceAttributes": {
            "group": GROUP,
            "resource": privilege.resource,
            "subresource": privilege.subresource,
            "verb": verb,
            "namespace": namespace,
        },
    }
    if user.get("uid"):
        spec["uid"] = str(user["uid"])
    if user.get("extra"):
        spec["extra"] = {key: list(values) for key, values in dict(user["extra"]).items()}
    return {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec}


@dataclass(frozen=True)
class AdminOnlyField:
    """A field set in a request that needs `privilege`, and why."""

    field: str
    privilege: Privilege
    why: str


def instance_admin_fields(spec: Body, old_spec: Body | None) -> list[AdminOnlyField]:
    """spec.placement.host, when it is set on create or changed by an update."""
    host = (spec.get("placement") or {}).get("host")
    old_host = ((old_spec or {}).get("placement") or {}).get("host")
    if not host or (old_spec is not None and host == old_host):
        return []
    return [
        AdminOnlyField(
            "spec.placement.host",
            FORCE_HOST,
            "pinning an Instance to a host is for cloud administrators; remove "
            "spec.placement.host and let the scheduler place it",
        )
    ]


def network_admin_fields(spec: Body, old_spec: Body | None) -> list[AdminOnlyField]:
    """Provider fields (host NICs), when set on create or changed by an update."""
    old = old_spec or {}
    found = []
    mode = spec.get("mode")
    if mode in PROVIDER_MODES and (old_spec is None or mode != old.get("mode")):
        found.append(
            AdminOnlyField(
                "spec.mode",
                PROVIDER_NETWORK,
                f"a {mode} network is wired onto a host's physical interface, which is for "
                "cloud administrators; use mode vxlan",
            )
        )
    interface = spec.get("physicalInterface")
    if interface and (old_spec is None or interface != old.get("physicalInterface")):
        found.append(
            AdminOnlyField(
                "spec.physicalInterface",
                PROVIDER_NETWORK,
                "choosing a host interface is for cloud administrators; remove the field",
            )
        )
    return found


async def require_privileges(
    fields: list[AdminOnlyField],
    authorizer: Authorizer,
    user: Mapping[str, Any] | None,
    operation: str,
    namespace: str,
) -> None:
    """Refuse (403, naming the field) the first admin-only field the user may not set."""
    for needed in fields:
        verb = operation.lower()
        if user is None or not await authorizer.allowed(user, verb, namespace, needed.privilege):
            who = (user or {}).get("username") or "an unknown user"
            raise AdmissionRefused(
                needed.field,
                f"{needed.why} ({who} may not {verb} {needed.privilege.rbac_name} "
                f"in {GROUP} in namespace {namespace})",
                code=FORBIDDEN,
            )
