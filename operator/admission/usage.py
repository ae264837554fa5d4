"""A project's quota as the webhook sees it: what claims hold plus what waits for a claim.

The webhook only reads. Charges are written by claims alone (`inventory.claims`), so an
object admitted but not yet claimed (no host yet, or the operator busy) holds no charge;
it is counted here from its spec instead, so that `kubectl apply` is refused as soon as
the project's objects would not all fit. Racing creates can still all pass this check;
the claim, which re-checks under a lock, then leaves the surplus unclaimed.

What a create costs must not grow with the project: a namespace without a quota is not
read at all, and in one with a quota only the objects without `status.host` are listed
(a field selector the CRDs declare). A placed one always holds its charge: the claim that
charges it comes before the status write that names its host.
"""

from __future__ import annotations

import asyncio

from sqlalchemy import Engine

from kubenova.kube.meta import Body, deleting, name_of, namespace_of, uid_of
from kubenova.operator.admission.errors import FORBIDDEN, AdmissionRefused
from kubenova.operator.admission.instances import instance_amounts
from kubenova.operator.admission.references import References
from kubenova.operator.inventory import quotas
from kubenova.operator.inventory.quotas import QuotaAmounts
from kubenova.operator.resources import Consumer

# The spec field a tenant changes to fit a quota resource, by kind (counts have none:
# the message names the quota itself).
_FIELDS = {
    "Instance": {
        "vcpus": "spec.flavor",
        "memory_mib": "spec.flavor",
        "floating_ips": "spec.networks",
    },
    "Volume": {"volume_gib": "spec.sizeGiB"},
}


async def check_room(
    refs: References, engine: Engine, body: Body, kind: str, amounts: QuotaAmounts
) -> None:
    """Refuse (403, naming the field and the numbers) what would not fit the quota."""
    meta = body["metadata"]
    consumer = Consumer(meta.get("uid") or "", name_of(body), namespace_of(body), kind)
    if not await asyncio.to_thread(quotas.has_limits, engine, consumer.namespace):
        return
    waiting = await waiting_amounts(refs, consumer.namespace)
    try:
        await asyncio.to_thread(quotas.check_room, engine, consumer, amounts, waiting)
    except quotas.QuotaExceeded as exceeded:
        field = _field(kind, exceeded, body.get("spec") or {})
        raise AdmissionRefused(field, exceeded.message, code=FORBIDDEN) from exceeded


async def waiting_amounts(refs: References, namespace: str) -> dict[str, QuotaAmounts]:
    """uid -> what each live Instance and Volume of the namespace not placed yet takes,
    from its spec.

    The inventory counts each by its charge instead once it holds one (`quotas.check_room`),
    as every placed one does.
    """
    amounts: dict[str, QuotaAmounts] = {}
    for instance in await refs.unplaced_instances(namespace):
        if _live(instance):
            spec = instance.get("spec") or {}
            amounts[uid_of(instance)] = await instance_amounts(spec, refs)
    for volume in await refs.unplaced_volumes(namespace):
        if _live(volume):
            size = int((volume.get("spec") or {}).get("sizeGiB", 0))
            amounts[uid_of(volume)] = QuotaAmounts.for_volume(size)
    return amounts


def _live(item: Body) -> bool:
    return bool(item["metadata"].get("uid")) and not deleting(item)


def _field(kind: str, exceeded: quotas.QuotaExceeded, spec: Body) -> str:
    resource = next(
        (name for name, wire in quotas.WIRE_NAMES.items() if wire == exceeded.resource), ""
    )
    field = _FIELDS.get(kind, {}).get(resource, "")
    if field == "spec.flavor" and not spec.get("flavor"):
        field = "spec.resources." + exceeded.resource
    return field
