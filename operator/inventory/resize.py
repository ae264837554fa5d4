"""Resize: an Instance's claim swapped for its new flavor's, in the caller's one transaction.

The claim keeps its host, server-group membership, addresses and attachments; only its
amounts change. The host is re-checked for the difference (what the claim already holds
there counts as free for it), and the project's quota charge is replaced by the new size's
under the same locks a claim takes (quota row, then host row), so racing claims and
resizes can neither overcommit the host nor exceed the quota. A refusal raises
(InsufficientCapacity, QuotaExceeded) and the caller's transaction rolls back: the
Instance keeps its old claim. Idempotent: a claim already of the new size is returned.
"""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import Connection, delete, update

from kubenova.operator.inventory import quotas
from kubenova.operator.inventory.claims import (
    INSTANCE_KIND,
    _lock_host_with_room,
    _read_claim,
    insert_allocations,
)
from kubenova.operator.inventory.models import Allocation, HostRow
from kubenova.operator.inventory.records import Claim
from kubenova.operator.resources import Consumer, Resources


class NothingToResize(LookupError):
    """The consumer holds no claim (released, or never placed): nothing to resize."""


def resize_in(
    connection: Connection, consumer: Consumer, resources: Resources, *, floating_ips: int = 0
) -> tuple[Claim, Claim]:
    """Swap the Instance's claim for `resources` on the host it is on; (before, after).

    `after.created` is True when amounts changed. Raises NothingToResize without a claim,
    InsufficientCapacity when the host lacks room for the growth, QuotaExceeded when the
    project's quota lacks it; nothing of the resize is written then.
    """
    if consumer.kind != INSTANCE_KIND:
        raise ValueError(f"only an Instance's claim is resized, not a {consumer.kind}'s")
    if min(resources.vcpus, resources.memory_mb, resources.disk_gb) <= 0:
        raise ValueError(f"a claim needs positive amounts, got {resources}")
    before = _read_claim(connection, consumer.uid)
    if before is None:
        raise NothingToResize(f"{consumer.namespace}/{consumer.name} holds no claim")
    if before.resources == resources:
        return before, before
    # Same lock order as a claim: quota, then host. The charge is replaced, not added:
    # the quota check counts the Instance's own old charge out.
    quotas.charge(connection, consumer, quotas.QuotaAmounts.for_instance(resources, floating_ips))
    host_id = _lock_host_with_room(connection, before.host, resources - before.resources)
    connection.execute(delete(Allocation).where(Allocation.consumer_uid == consumer.uid))
    insert_allocations(connection, consumer, host_id, resources)
    connection.execute(
        update(HostRow).where(HostRow.id == host_id).values(generation=HostRow.generation + 1)
    )
    return before, replace(before, resources=resources, created=True)
