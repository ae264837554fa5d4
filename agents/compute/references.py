"""The Flavor, Image and Networks an Instance names, read for the compute reconciler.

Flavor and Image specs are immutable, so each is read once and cached for good; Networks
are read on every spawn, because a Network's bridge appears only once it is wired here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kubenova.agents.compute.nics import nic_plan
from kubenova.agents.compute.spec import Nic
from kubenova.api.v1alpha1 import Flavor, Image, Instance, Network
from kubenova.errors import NotFoundError, TemporaryError
from kubenova.kube import ApiError, KubeClient, NotFound, kubenova_kind
from kubenova.kube.meta import Body, namespace_of

FLAVORS = kubenova_kind(Flavor)
IMAGES = kubenova_kind(Image)
NETWORKS = kubenova_kind(Network)


@dataclass(frozen=True)
class Sizing:
    vcpus: int
    memory_mib: int
    disk_gib: int


class InstanceReferences:
    """Reads (and caches) what an Instance refers to; errors say what the user must fix."""

    def __init__(self, client: KubeClient) -> None:
        self.client = client
        self._flavors: dict[str, Sizing] = {}
        self._images: dict[str, Image] = {}

    async def nics(self, body: Body) -> tuple[Nic, ...]:
        """The Instance's NICs on its Networks' bridges; TemporaryError until they are wired."""
        namespace = namespace_of(body)
        bridges: dict[str, str | None] = {}
        for attachment in (body.get("spec") or {}).get("networks") or ():
            name = attachment["network"]
            try:
                network = await self.client.get(NETWORKS, name, namespace)
            except NotFound:
                bridges[name] = None
                continue
            bridges[name] = (network.get("status") or {}).get("bridge")
        return tuple(Nic(bridge=p.bridge, mac=p.mac, tap=p.tap) for p in nic_plan(body, bridges))

    async def sizing(self, instance: Instance) -> Sizing:
        """The Instance's own resources, or its Flavor's."""
        spec = instance.spec
        if spec.resources is not None:
            r = spec.resources
            return Sizing(r.vcpus, r.memory_mib, r.disk_gib)
        name = spec.flavor or ""
        if name not in self._flavors:
            body = await self._reference(FLAVORS, "Flavor", name)
            fspec = Flavor.model_validate(body).spec
            self._flavors[name] = Sizing(fspec.vcpus, fspec.memory_mib, fspec.disk_gib)
        return self._flavors[name]

    async def image(self, name: str) -> Image:
        if name not in self._images:
            self._images[name] = Image.model_validate(await self._reference(IMAGES, "Image", name))
        return self._images[name]

    async def _reference(self, kind: Any, what: str, name: str) -> Body:
        try:
            return await self.client.get(kind, name)
        except NotFound as exc:
            raise NotFoundError(
                f"{what} {name} does not exist (kubectl get {what.lower()}s lists them): "
                f"create it, or recreate the Instance with an existing {what.lower()}",
                reason=f"{what}NotFound",
            ) from exc
        except ApiError as exc:
            raise TemporaryError(f"reading {what} {name}: {exc}", delay=5.0) from exc
