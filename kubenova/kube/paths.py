"""REST paths of Kubernetes resources."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from kubenova.api.group import GROUP, VERSION

if TYPE_CHECKING:  # the models take a tenth of a second to import: not for the kit's sake
    from kubenova.api.v1alpha1 import Resource


@dataclass(frozen=True)
class ResourceKind:
    """A resource type as the REST API addresses it."""

    group: str
    version: str
    plural: str
    namespaced: bool
    kind: str = ""

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(
        self, namespace: str | None = None, name: str | None = None, subresource: str = ""
    ) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name:
            base += f"/{name}"
            if subresource:
                base += f"/{subresource}"
        return base


def kubenova_kind(model: type[Resource]) -> ResourceKind:
    """The REST address of one of our custom resources."""
    info = model.crd
    return ResourceKind(GROUP, VERSION, info.plural, info.namespaced, info.kind)


LIST_PAGE = 500  # objects per page of a (re)list

LEASES = ResourceKind("coordination.k8s.io", "v1", "leases", True, "Lease")
EVENTS = ResourceKind("events.k8s.io", "v1", "events", True, "Event")
CORE_EVENTS = ResourceKind("", "v1", "events", True, "Event")
NAMESPACES = ResourceKind("", "v1", "namespaces", False, "Namespace")
SECRETS = ResourceKind("", "v1", "secrets", True, "Secret")
SUBJECT_ACCESS_REVIEWS = ResourceKind(
    "authorization.k8s.io", "v1", "subjectaccessreviews", False, "SubjectAccessReview"
)
