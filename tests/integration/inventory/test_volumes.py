"""Volume targets and attachments in the inventory, on SQLite and a real PostgreSQL."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import TypeVar

import pytest
from sqlalchemy import Engine, insert
from sqlalchemy.exc import IntegrityError

from kubenova.operator import inventory as inv
from kubenova.operator.inventory import volumes as vol
from kubenova.operator.inventory.errors import VolumeInUse, VolumeNotPlaced
from kubenova.operator.inventory.models import VolumeTargetRow
from tests.integration.inventory.conftest import add_hosts

T = TypeVar("T")


def uid() -> str:
    return str(uuid.uuid4())


def an_instance(name: str = "vm") -> inv.Consumer:
    return inv.Consumer(uid(), name, "tenant")


def in_threads(count: int, work: Callable[[int], T]) -> list[T | BaseException]:
    """Run work(0..count-1) in threads released together; results or exceptions, in order."""
    start = threading.Barrier(count)
    results: list[T | BaseException] = [RuntimeError("not run")] * count

    def run(index: int) -> None:
        start.wait()
        try:
            results[index] = work(index)
        except BaseException as exc:  # handed back to the test
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


def test_an_iscsi_volume_gets_its_own_target_once(engine: Engine) -> None:
    add_hosts(engine, "store-1")
    volume = uid()
    first = vol.allocate_target(engine, volume, "store-1", "iscsi")
    assert first == vol.TargetIdentity(
        volume, "store-1", "iscsi", iqn=f"iqn.2010-10.io.kubenova:volume-{volume}", lun=1
    )
    assert vol.allocate_target(engine, volume, "store-1", "iscsi") == first  # idempotent
    assert vol.find_target(engine, volume) == first
    assert vol.list_targets(engine, "store-1") == [first]


def test_the_database_refuses_a_second_volume_on_the_same_iqn_or_aoe_address(
    engine: Engine,
) -> None:
    add_hosts(engine, "store-1")
    taken = vol.allocate_target(engine, uid(), "store-1", "iscsi")
    aoe = vol.allocate_target(engine, uid(), "store-1", "aoe")
    host_id = 1
    for clash in (
        {"protocol": "iscsi", "iqn": taken.iqn, "lun": 1},
        {"protocol": "aoe", "shelf": aoe.shelf, "slot": aoe.slot},
    ):
        with pytest.raises(IntegrityError), engine.begin() as connection:
            connection.execute(
                insert(VolumeTargetRow).values(volume_uid=uid(), host_id=host_id, **clash)
            )


def test_aoe_addresses_fill_slots_then_shelves_and_reuse_gaps(engine: Engine) -> None:
    add_hosts(engine, "store-1")
    volumes = [uid() for _ in range(257)]
    addresses = [
        (t.shelf, t.slot)
        for t in (vol.allocate_target(engine, v, "store-1", "aoe") for v in volumes)
    ]
    assert addresses[:3] == [(0, 0), (0, 1), (0, 2)]
    assert addresses[254:] == [(0, 254), (1, 0), (1, 1)]  # slot 255 is broadcast
    assert len(set(addresses)) == len(addresses)
    assert vol.release_target(engine, volumes[7]) is True
    assert vol.release_target(engine, volumes[7]) is False  # idempotent
    reused = vol.allocate_target(engine, uid(), "store-1", "aoe")
    assert (reused.shelf, reused.slot) == (0, 7)


def test_racing_allocators_never_share_an_aoe_address(engine: Engine) -> None:
    add_hosts(engine, "store-1")
    volumes = [uid() for _ in range(64)]
    results = in_threads(
        8,
        lambda i: [vol.allocate_target(engine, v, "store-1", "aoe") for v in volumes[i::8]],
    )
    identities = [t for batch in results if isinstance(batch, list) for t in batch]
    assert len(identities) == 64, [r for r in results if isinstance(r, BaseException)]
    assert len({(t.shelf, t.slot) for t in identities}) == 64


def test_an_unknown_host_gets_no_target(engine: Engine) -> None:
    with pytest.raises(inv.UnknownHost):
        vol.allocate_target(engine, uid(), "nowhere", "iscsi")


def test_a_single_attach_volume_is_refused_to_a_second_instance(engine: Engine) -> None:
    add_hosts(engine, "store-1", "compute-1", "compute-2")
    volume = vol.allocate_target(engine, uid(), "store-1", "iscsi").volume_uid
    web, db = an_instance("web"), an_instance("db")
    record = vol.attach(engine, volume, web, "compute-1", multi_attach=False)
    assert record == vol.AttachmentRecord(volume, web.uid, "tenant", "web", "compute-1")
    assert vol.attach(engine, volume, web, "compute-1", multi_attach=False) == record
    with pytest.raises(VolumeInUse) as refused:
        vol.attach(engine, volume, db, "compute-2", multi_attach=False)
    assert "attached to tenant/web" in str(refused.value)
    assert vol.attachments_of(engine, volume) == [record]
    assert vol.detach(engine, volume, web.uid) is True
    assert vol.detach(engine, volume, web.uid) is False
    vol.attach(engine, volume, db, "compute-2", multi_attach=False)
    assert [a.instance_name for a in vol.attachments_of(engine, volume)] == ["db"]


def test_multi_attach_admits_several_instances_and_release_drops_them(engine: Engine) -> None:
    add_hosts(engine, "store-1", "compute-1", "compute-2")
    volume = vol.allocate_target(engine, uid(), "store-1", "iscsi").volume_uid
    other = vol.allocate_target(engine, uid(), "store-1", "iscsi").volume_uid
    a, b = an_instance("a"), an_instance("b")
    vol.attach(engine, volume, a, "compute-1", multi_attach=True)
    vol.attach(engine, volume, b, "compute-2", multi_attach=True)
    vol.attach(engine, other, a, "compute-1", multi_attach=False)
    assert {r.host for r in vol.attachments_of(engine, volume)} == {"compute-1", "compute-2"}
    assert {r.volume_uid for r in vol.attachments_of_instance(engine, a.uid)} == {volume, other}
    withdrawn = vol.detach_instance(engine, a.uid)
    assert {r.volume_uid for r in withdrawn} == {volume, other}
    assert vol.release_target(engine, volume) is True
    assert vol.attachments_of(engine, volume) == []
    assert vol.list_attachments(engine) == []


def test_an_unplaced_volume_cannot_be_attached(engine: Engine) -> None:
    add_hosts(engine, "compute-1")
    with pytest.raises(VolumeNotPlaced):
        vol.attach(engine, uid(), an_instance(), "compute-1", multi_attach=False)


def test_racing_attachers_leave_a_single_attach_volume_with_one_instance(engine: Engine) -> None:
    add_hosts(engine, "store-1", "compute-1")
    volume = vol.allocate_target(engine, uid(), "store-1", "iscsi").volume_uid
    instances = [an_instance(f"vm-{i}") for i in range(8)]
    results = in_threads(
        8, lambda i: vol.attach(engine, volume, instances[i], "compute-1", multi_attach=False)
    )
    winners = [r for r in results if isinstance(r, vol.AttachmentRecord)]
    losers = [r for r in results if isinstance(r, VolumeInUse)]
    assert (len(winners), len(losers)) == (1, 7), results
    assert vol.attachments_of(engine, volume) == winners
