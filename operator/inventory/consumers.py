"""Who holds claims: the consumers of allocations, for the audit."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, select

from kubenova.operator.inventory.models import Allocation, HostRow


@dataclass(frozen=True, slots=True)
class ConsumerClaim:
    """One consumer's claim as the inventory records it."""

    uid: str
    kind: str
    namespace: str
    name: str
    host: str


def list_consumers(engine: Engine, kind: str | None = None) -> list[ConsumerClaim]:
    """Every consumer holding allocations (optionally of one kind), one entry each."""
    query = (
        select(
            Allocation.consumer_uid,
            Allocation.consumer_kind,
            Allocation.consumer_namespace,
            Allocation.consumer_name,
            HostRow.name,
        )
        .join(HostRow, HostRow.id == Allocation.host_id)
        .distinct()
        .order_by(Allocation.consumer_uid)
    )
    if kind is not None:
        query = query.where(Allocation.consumer_kind == kind)
    with engine.connect() as connection:
        return [
            ConsumerClaim(uid, kind_, namespace or "", name or "", host)
            for uid, kind_, namespace, name, host in connection.execute(query)
        ]
