"""Turn an Instance into a placement request: resolve its flavor, image and server group.

The request also counts the floating IPs its NICs ask for (charged to the project's quota
with the claim). Lookups go to the in-memory catalog, never the database; a missing
reference is the user's to fix (a NotFoundError naming it), and the caller may register
to be woken when it appears.
"""

from __future__ import annotations

from kubenova.api.v1alpha1 import Instance
from kubenova.errors import NotFoundError, UserError
from kubenova.kube.meta import Body, name_of, namespace_of, uid_of
from kubenova.operator.catalog import Catalog
from kubenova.operator.resources import Consumer, GroupPolicy, Resources, ServerGroupRef
from kubenova.operator.scheduler import PlacementRequest


def build_request(
    body: Body, instance: Instance, catalog: Catalog, waiter: str | None = None
) -> PlacementRequest:
    """Turn the spec into a placement request, resolving flavor, image and group."""
    uid, namespace, name = uid_of(body), namespace_of(body), name_of(body)
    spec = instance.spec
    if spec.flavor:
        flavor = _lookup(catalog, "Flavor", spec.flavor, waiter)
        fspec = flavor["spec"]
        resources = Resources(fspec["vcpus"], fspec["memoryMiB"], fspec["diskGiB"])
        sizing = f"flavor {spec.flavor}"
    else:
        assert spec.resources is not None  # the CRD schema requires one of the two
        r = spec.resources
        resources = Resources(r.vcpus, r.memory_mib, r.disk_gib)
        sizing = "spec.resources"
    image = _lookup(catalog, "Image", spec.image, waiter)
    min_disk = image["spec"].get("minDiskGiB", 1)
    if resources.disk_gb < min_disk:
        raise UserError(
            f"image {spec.image} needs a root disk of at least {min_disk} GiB but "
            f"{sizing} gives {resources.disk_gb} GiB: choose a larger flavor",
            reason="FlavorTooSmall",
        )
    min_memory = image["spec"].get("minMemoryMiB", 64)
    if resources.memory_mb < min_memory:
        raise UserError(
            f"image {spec.image} needs at least {min_memory} MiB of memory but "
            f"{sizing} gives {resources.memory_mb} MiB: choose a larger flavor",
            reason="FlavorTooSmall",
        )
    group = None
    placement = spec.placement
    if placement and placement.group:
        sg = _lookup(catalog, "ServerGroup", f"{namespace}/{placement.group}", waiter)
        group = ServerGroupRef(
            uid=sg["metadata"]["uid"],
            name=placement.group,
            policy=GroupPolicy(sg["spec"]["policy"]),
            namespace=namespace,
        )
    return PlacementRequest(
        consumer=Consumer(uid, name, namespace),
        resources=resources,
        availability_zone=spec.availability_zone,
        host=placement.host if placement else None,
        group=group,
        floating_ips=sum(1 for nic in spec.networks if nic.floating_ip),
    )


def _lookup(catalog: Catalog, kind: str, key: str, waiter: str | None) -> Body:
    found = catalog.get(kind, key)
    if found is None:
        if waiter is not None:
            catalog.wait_for(kind, key, waiter)
        name = key.rsplit("/", 1)[-1]
        listing = f"kubectl get {kind.lower()}s"
        raise NotFoundError(
            f"{kind} {name} does not exist ({listing} shows what there is); "
            "the Instance is scheduled as soon as it is created",
            reason=f"{kind}NotFound",
        )
    return found
