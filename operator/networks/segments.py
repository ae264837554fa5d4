"""Segment ids: each VLAN/VXLAN network holds one VLAN id or VNI, unique per kind.

The primary key (kind, value) makes a double allocation impossible; the lowest free value
of the configured ranges is taken, and a racing allocator that loses retries.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Engine, insert, select
from sqlalchemy.exc import IntegrityError

from kubenova.operator.inventory.engine import write_transaction
from kubenova.operator.inventory.models import SegmentId
from kubenova.operator.networks.errors import SegmentRangeExhausted
from kubenova.operator.networks.settings import Range

RACE_RETRIES = 5


def allocate(engine: Engine, network_uid: str, kind: str, ranges: Sequence[Range]) -> int:
    """The network's segment id, allocating the lowest free one of `ranges` the first time."""
    for _ in range(RACE_RETRIES):
        try:
            return _allocate_once(engine, network_uid, kind, ranges)
        except IntegrityError:
            continue  # another allocator took that value (or this network) first
    return _allocate_once(engine, network_uid, kind, ranges)


def _allocate_once(engine: Engine, network_uid: str, kind: str, ranges: Sequence[Range]) -> int:
    with write_transaction(engine) as connection:
        held = connection.execute(
            select(SegmentId.value).where(SegmentId.network_uid == network_uid)
        ).scalar_one_or_none()
        if held is not None:
            return int(held)
        used = set(
            connection.execute(select(SegmentId.value).where(SegmentId.kind == kind)).scalars()
        )
        for span in ranges:
            for value in range(span.first, span.last + 1):
                if value not in used:
                    connection.execute(
                        insert(SegmentId).values(kind=kind, value=value, network_uid=network_uid)
                    )
                    return value
    described = ", ".join(f"{r.first}-{r.last}" for r in ranges)
    raise SegmentRangeExhausted(
        f"every {kind} segment id of the configured ranges ({described}) is in use: delete an "
        f"unused {kind} Network or ask an administrator to widen KUBENOVA_"
        f"{'VLAN' if kind == 'vlan' else 'VNI'}_RANGES"
    )


def held(engine: Engine, network_uid: str) -> int | None:
    with engine.connect() as connection:
        value = connection.execute(
            select(SegmentId.value).where(SegmentId.network_uid == network_uid)
        ).scalar_one_or_none()
        return None if value is None else int(value)
