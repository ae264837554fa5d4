"""Placer.evacuate: a fenced host's Instance moves, claim and all, in one transaction."""

from __future__ import annotations

from sqlalchemy import Engine

from kubenova.operator import inventory as inv
from kubenova.operator.inventory import quotas
from kubenova.operator.placement import Placer
from kubenova.operator.scheduler import NoValidHost
from tests.integration.inventory.conftest import add_hosts
from tests.integration.inventory.test_place import a_request

GROUP = inv.ServerGroupRef("sg-uid", "web", inv.GroupPolicy.ANTI_AFFINITY, "demo")


def fail(engine: Engine, placer: Placer, host: str) -> None:
    """What the host monitor writes for a NotReady, out-of-service host."""
    inv.set_host_ready(engine, host, False)
    inv.set_host_schedulable(engine, host, False)
    placer.host_changed(host)


def test_the_claim_moves_with_its_group_and_charge_once_and_only_once(engine: Engine) -> None:
    add_hosts(engine, "a", "b", "c", memory_mb=2048)
    placer = Placer(engine)
    vm = placer.place(a_request(1, group=GROUP, host="a"))
    peer = placer.place(a_request(2, group=GROUP, host="b"))
    assert isinstance(vm, inv.Claim)
    assert isinstance(peer, inv.Claim)
    charged = quotas.usage(engine, "demo")
    fail(engine, placer, "a")

    outcome = placer.evacuate(a_request(1, group=GROUP), "a")
    assert not isinstance(outcome, NoValidHost)
    before, after = outcome
    assert before == inv.Claim("uid-1", "a", vm.resources, created=False)
    assert after.host == "c"  # not "a" (fenced), not "b" (the peer: anti-affinity)
    assert inv.find_claim(engine, "uid-1") == inv.Claim("uid-1", "c", vm.resources, False)
    assert inv.member_hosts(engine, GROUP.uid) == {"b": 1, "c": 1}
    usage = inv.host_usage(engine)
    assert usage.get("a", inv.Resources()) == inv.Resources()
    assert usage["c"] == vm.resources
    assert quotas.usage(engine, "demo") == charged  # moved, not charged again
    assert {h.name: h.free_memory_mb for h in placer.view.hosts()}["c"] == 1024

    # Again (a retry after a crash before the hand-over): the claim already moved.
    again = Placer(engine).evacuate(a_request(1, group=GROUP), "a")
    assert again == (None, inv.Claim("uid-1", "c", vm.resources, created=False))
    assert inv.host_usage(engine)["c"] == vm.resources


def test_no_room_elsewhere_leaves_the_claim_on_the_failed_host(engine: Engine) -> None:
    add_hosts(engine, "a", memory_mb=2048)
    add_hosts(engine, "b", memory_mb=512)
    placer = Placer(engine)
    assert isinstance(placer.place(a_request(1, host="a")), inv.Claim)
    fail(engine, placer, "a")
    refused = placer.evacuate(a_request(1), "a")
    assert isinstance(refused, NoValidHost)
    assert str(refused) == "2 hosts: 1 not ready, 1 lacks memory (need 1024 MiB, max free 512 MiB)"
    claim = inv.find_claim(engine, "uid-1")
    assert claim is not None
    assert claim.host == "a"
