"""What the webhook's quota check reads: nothing without a quota, only unplaced objects with one.

A create must not cost more as its project grows: before, every Instance or Volume admitted
listed all of its namespace's Instances and Volumes, quota or not (500 creates in one
namespace: a quarter of the apiserver's CPU spent encoding those lists).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any, cast

import pytest
from sqlalchemy import Engine

from kubenova.kube.meta import Body
from kubenova.operator import inventory as inv
from kubenova.operator.admission import AdmissionRefused
from kubenova.operator.admission.references import References
from kubenova.operator.admission.usage import check_room
from kubenova.operator.inventory import quotas
from tests.builders import an_instance
from tests.integration.inventory.conftest import add_hosts

SMALL = inv.Resources(vcpus=1, memory_mb=128, disk_gb=1)
SIZED = {"vcpus": 1, "memoryMiB": 128, "diskGiB": 1}


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    inv.upgrade(db_url)
    engine = inv.make_engine(db_url)
    add_hosts(engine, "node-1", vcpus=100, memory_mb=100 * 128, disk_gb=100)
    yield engine
    engine.dispose()


class ListingReferences:
    """The unplaced objects the apiserver would select, and a record of every list asked."""

    def __init__(self, *unplaced: Body) -> None:
        self.unplaced = list(unplaced)
        self.lists: list[tuple[str, str]] = []

    async def unplaced_instances(self, namespace: str) -> list[Body]:
        self.lists.append(("Instance", namespace))
        return [o for o in self.unplaced if o["metadata"]["namespace"] == namespace]

    async def unplaced_volumes(self, namespace: str) -> list[Body]:
        self.lists.append(("Volume", namespace))
        return []


def with_uid(body: Body, uid: str) -> Body:
    body["metadata"]["uid"] = uid
    return body


def room(refs: ListingReferences, engine: Engine, body: Body) -> None:
    asyncio.run(
        check_room(
            cast(References, refs),
            engine,
            body,
            "Instance",
            quotas.QuotaAmounts.for_instance(SMALL),
        )
    )


def test_without_a_quota_nothing_is_listed(engine: Engine) -> None:
    refs = ListingReferences(*(sized(f"vm{i}", "free") for i in range(5)))
    room(refs, engine, sized("new", "free"))
    assert refs.lists == []


def test_with_a_quota_placed_ones_count_by_their_charge_and_unplaced_ones_by_spec(
    engine: Engine,
) -> None:
    quotas.set_limits(engine, "alpha", "alpha", inv.QuotaLimits(instances=3))
    for n in (1, 2):  # placed: each holds its charge, and the apiserver lists it no more
        placed = inv.Consumer(f"placed-{n}", f"p{n}", "alpha", "Instance")
        inv.claim(engine, placed, "node-1", SMALL)
    refs = ListingReferences(with_uid(sized("waiting", "alpha"), "waiting-1"))
    with pytest.raises(AdmissionRefused) as refused:
        room(refs, engine, sized("new", "alpha"))
    assert "quota exceeded in project alpha: instances 3 + 1 > 3" in str(refused.value)
    assert refs.lists == [("Instance", "alpha"), ("Volume", "alpha")]
    # Once the waiting one is gone (deleted, or no longer listed), there is room again.
    refs.unplaced.clear()
    room(refs, engine, sized("new", "alpha"))


def sized(name: str, namespace: str) -> dict[str, Any]:
    return an_instance(name, namespace, flavor=None, resources=SIZED)
