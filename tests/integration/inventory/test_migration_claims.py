"""A live migration's claims (issue 18): the target is chosen by the scheduler without the
source, honouring anti-affinity, and claimed before the move; both hosts hold the guest
during it; hand-over and roll-back each change everything in one transaction."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import Engine

from kubenova.errors import UserError
from kubenova.operator import inventory as inv
from kubenova.operator.inventory import quotas
from kubenova.operator.inventory import volumes as vol
from kubenova.operator.migrations import (
    MIGRATION_KIND,
    hand_over,
    place_target,
    roll_back,
    settle,
)
from kubenova.operator.scheduler import NoValidHost, PlacementRequest, Scheduler, SchedulerConfig
from tests.integration.inventory.conftest import add_hosts

SIZE = inv.Resources(vcpus=2, memory_mb=2048, disk_gb=10)
GROUP = inv.ServerGroupRef("group-uid", "web", inv.GroupPolicy.ANTI_AFFINITY, "demo")
VM = inv.Consumer("vm-uid", "vm", "demo")
SIBLING = inv.Consumer("sibling-uid", "sibling", "demo")
MOVE = inv.Consumer("move-uid", "move-vm", "demo", kind=MIGRATION_KIND)


@pytest.fixture
def scheduler() -> Scheduler:
    return Scheduler(SchedulerConfig())


def request(host: str | None = None) -> PlacementRequest:
    return PlacementRequest(consumer=VM, resources=SIZE, group=GROUP, host=host)


def test_the_target_is_another_host_that_keeps_anti_affinity_and_both_hold_the_guest(
    engine: Engine, scheduler: Scheduler
) -> None:
    add_hosts(engine, "node-1", "node-2", "node-3")
    inv.claim(engine, VM, "node-1", SIZE, GROUP)
    inv.claim(engine, SIBLING, "node-2", SIZE, GROUP)
    claim = place_target(engine, scheduler, request(), MOVE, source="node-1")
    assert isinstance(claim, inv.Claim)
    assert claim.host == "node-3"  # node-1 is the source, node-2 holds an anti-affine sibling
    usage = inv.host_usage(engine)
    assert usage["node-1"] == SIZE  # the source still holds the running guest
    assert usage["node-3"] == SIZE  # and the target holds it too, before the move
    # While it moves, no other member of the group may land on the target.
    with pytest.raises(inv.ServerGroupConflict):
        inv.claim(engine, inv.Consumer("third-uid", "third", "demo"), "node-3", SIZE, GROUP)

    moved = hand_over(engine, MOVE.uid, VM.uid)
    assert moved == inv.Claim(VM.uid, "node-3", SIZE, created=False)
    assert inv.host_usage(engine)["node-1"] == inv.Resources()
    assert inv.find_claim(engine, MOVE.uid) is None
    assert inv.member_hosts(engine, GROUP.uid) == {"node-2": 1, "node-3": 1}
    # Idempotent: a retried hand-over after a crash changes nothing.
    assert hand_over(engine, MOVE.uid, VM.uid) == moved


def test_no_other_host_fits_and_nothing_is_claimed(engine: Engine, scheduler: Scheduler) -> None:
    add_hosts(engine, "node-1", "node-2")
    inv.claim(engine, VM, "node-1", SIZE, GROUP)
    inv.claim(engine, SIBLING, "node-2", SIZE, GROUP)
    decision = place_target(engine, scheduler, request(), MOVE, source="node-1")
    assert isinstance(decision, NoValidHost)
    assert inv.find_claim(engine, MOVE.uid) is None


def test_a_named_target_that_is_the_source_is_refused(engine: Engine, scheduler: Scheduler) -> None:
    add_hosts(engine, "node-1", "node-2")
    inv.claim(engine, VM, "node-1", SIZE, GROUP)
    with pytest.raises(UserError, match="already runs on"):
        place_target(engine, scheduler, request(host="node-1"), MOVE, source="node-1")


def test_a_roll_back_frees_the_target_and_leaves_the_source(
    engine: Engine, scheduler: Scheduler
) -> None:
    add_hosts(engine, "node-1", "node-2")
    inv.claim(engine, VM, "node-1", SIZE, GROUP)
    claim = place_target(engine, scheduler, request(host="node-2"), MOVE, source="node-1")
    assert isinstance(claim, inv.Claim)
    assert claim.host == "node-2"
    roll_back(engine, MOVE.uid)
    assert inv.host_usage(engine) == {"node-1": SIZE, "node-2": inv.Resources()}
    assert inv.find_claim(engine, VM.uid) == inv.Claim(VM.uid, "node-1", SIZE, created=False)
    assert inv.member_hosts(engine, GROUP.uid) == {"node-1": 1}


@pytest.mark.parametrize("runs_on", ["node-1", "node-2"], ids=["source", "target"])
def test_after_a_crash_mid_move_the_inventory_follows_where_the_guest_runs(
    engine: Engine, scheduler: Scheduler, runs_on: str
) -> None:
    add_hosts(engine, "node-1", "node-2")
    inv.claim(engine, VM, "node-1", SIZE, GROUP)
    place_target(engine, scheduler, request(host="node-2"), MOVE, source="node-1")
    claim = settle(engine, MOVE.uid, VM, running_on=runs_on)
    assert claim is not None
    assert claim.host == runs_on
    other = "node-2" if runs_on == "node-1" else "node-1"
    assert inv.host_usage(engine) == {runs_on: SIZE, other: inv.Resources()}
    assert inv.find_claim(engine, MOVE.uid) is None
    with pytest.raises(ValueError, match="neither"):
        settle(engine, MOVE.uid, VM, running_on="node-9")


def test_the_hand_over_moves_the_guests_volume_attachments_to_the_target(
    engine: Engine, scheduler: Scheduler
) -> None:
    add_hosts(engine, "node-1", "node-2", "storage-1")
    inv.claim(engine, VM, "node-1", SIZE, GROUP)
    vol.allocate_target(engine, "vol-uid", "storage-1", "iscsi")
    vol.attach(engine, "vol-uid", VM, "node-1", multi_attach=False)
    claim = place_target(engine, scheduler, request(), MOVE, source="node-1")
    assert isinstance(claim, inv.Claim)
    # During the move the record stays on the source (the operator publishes the target's
    # initiator beside it); after the hand-over the volume host admits the target alone.
    assert [r.host for r in vol.attachments_of(engine, "vol-uid")] == ["node-1"]
    hand_over(engine, MOVE.uid, VM.uid)
    assert [r.host for r in vol.attachments_of(engine, "vol-uid")] == [claim.host]
    roll_back(engine, MOVE.uid)  # nothing left to roll back: the attachment stays
    assert [r.host for r in vol.attachments_of(engine, "vol-uid")] == [claim.host]


BIGGER = inv.Resources(vcpus=4, memory_mb=4096, disk_gb=20)


def charge_of(engine: Engine, uid: str) -> tuple[int, int, int]:
    (charge,) = [c.amounts for c in quotas.list_charges(engine) if c.consumer_uid == uid]
    return charge.vcpus, charge.memory_mib, charge.floating_ips


def test_a_cold_move_claims_the_new_size_and_charges_it_in_one_transaction(
    engine: Engine, scheduler: Scheduler
) -> None:
    add_hosts(engine, "node-1", "node-2")
    quotas.set_limits(engine, "demo", "demo", inv.QuotaLimits(vcpus=6, memory_mib=8192))
    inv.claim(engine, VM, "node-1", SIZE, floating_ips=1)
    resize = PlacementRequest(consumer=VM, resources=BIGGER)
    claim = place_target(engine, scheduler, resize, MOVE, source="node-1", cold=True)
    assert isinstance(claim, inv.Claim)
    assert (claim.host, claim.resources) == ("node-2", BIGGER)
    # Both hosts hold the guest; the project is charged the new size once (its floating IP kept).
    assert inv.host_usage(engine) == {"node-1": SIZE, "node-2": BIGGER}
    assert charge_of(engine, VM.uid) == (4, 4096, 1)
    again = place_target(engine, scheduler, resize, MOVE, source="node-1", cold=True)
    assert again == replace(claim, created=False)  # found, not made twice
    assert charge_of(engine, VM.uid) == (4, 4096, 1)

    # Rolled back: the target goes and the charge returns to what the claim holds.
    roll_back(engine, MOVE.uid, VM)
    assert inv.host_usage(engine)["node-2"] == inv.Resources()
    assert charge_of(engine, VM.uid) == (2, 2048, 1)

    # Over quota: refused, nothing claimed, nothing charged.
    huge = PlacementRequest(consumer=VM, resources=inv.Resources(8, 4096, 20))
    with pytest.raises(inv.QuotaExceeded):
        place_target(engine, scheduler, huge, MOVE, source="node-1", cold=True)
    assert inv.find_claim(engine, MOVE.uid) is None
    assert charge_of(engine, VM.uid) == (2, 2048, 1)

    # Moved: the Instance holds the new size on the target, its source is free.
    place_target(engine, scheduler, resize, MOVE, source="node-1", cold=True)
    assert settle(engine, MOVE.uid, VM, running_on="node-2", cold=True) == inv.Claim(
        VM.uid, "node-2", BIGGER, created=False
    )
    assert inv.host_usage(engine) == {"node-1": inv.Resources(), "node-2": BIGGER}
    assert charge_of(engine, VM.uid) == (4, 4096, 1)
