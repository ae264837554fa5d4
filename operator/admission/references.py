"""Lookups the webhook makes: the operator's catalog first, the API when the catalog misses.

The catalog is filled by watches that may still be listing right after a start; a miss
is confirmed with a GET so that nothing valid is refused because the operator is young.
"""

from __future__ import annotations

from kubenova.api.v1alpha1 import (
    Flavor,
    Host,
    Image,
    Instance,
    Network,
    Project,
    ServerGroup,
    Volume,
)
from kubenova.kube import KubeClient, NotFound, kubenova_kind
from kubenova.kube.meta import Body
from kubenova.kube.paths import NAMESPACES, ResourceKind
from kubenova.operator.catalog import Catalog
from kubenova.operator.tenancy import holdings

# An Instance's and a Volume's CRD declare `.status.host` selectable; unset selects as "".
UNPLACED = "status.host="


class References:
    """Resolve the names a spec uses."""

    def __init__(self, catalog: Catalog, client: KubeClient) -> None:
        self.catalog = catalog
        self.client = client

    async def flavor(self, name: str) -> Body | None:
        return self.catalog.get("Flavor", name) or await self._get(kubenova_kind(Flavor), name)

    async def image(self, name: str) -> Body | None:
        return self.catalog.get("Image", name) or await self._get(kubenova_kind(Image), name)

    async def server_group(self, namespace: str, name: str) -> Body | None:
        cached = self.catalog.get("ServerGroup", f"{namespace}/{name}")
        return cached or await self._get(kubenova_kind(ServerGroup), name, namespace)

    async def network(self, namespace: str, name: str) -> Body | None:
        return await self._get(kubenova_kind(Network), name, namespace)

    async def networks(self, namespace: str) -> list[Body]:
        listing = await self.client.list(kubenova_kind(Network), namespace)
        items: list[Body] = listing.get("items", [])
        return items

    async def volume(self, namespace: str, name: str) -> Body | None:
        return await self._get(kubenova_kind(Volume), name, namespace)

    async def host(self, name: str) -> Body | None:
        return await self._get(kubenova_kind(Host), name)

    async def namespace(self, name: str) -> Body | None:
        return await self._get(NAMESPACES, name)

    async def projects(self) -> list[Body]:
        listing = await self.client.list(kubenova_kind(Project))
        items: list[Body] = listing.get("items", [])
        return items

    # Each list names its kind itself: the chart's RBAC test follows calls by their kind.
    async def unplaced_instances(self, namespace: str) -> list[Body]:
        """The namespace's Instances without a host (selected by the apiserver)."""
        listing = await self.client.list(
            kubenova_kind(Instance), namespace, field_selector=UNPLACED
        )
        items: list[Body] = listing.get("items", [])
        return items

    async def unplaced_volumes(self, namespace: str) -> list[Body]:
        """The namespace's Volumes without a host (selected by the apiserver)."""
        listing = await self.client.list(kubenova_kind(Volume), namespace, field_selector=UNPLACED)
        items: list[Body] = listing.get("items", [])
        return items

    async def holdings(self, namespace: str) -> dict[str, int]:
        return await holdings(self.client, namespace)

    async def _get(
        self, kind: ResourceKind, name: str, namespace: str | None = None
    ) -> Body | None:
        try:
            return await self.client.get(kind, name, namespace)
        except NotFound:
            return None
