"""Placer.place: schedule on the in-memory view, claim in the database, recover from stale views."""

from __future__ import annotations

from sqlalchemy import Engine

from kubenova.operator import inventory as inv
from kubenova.operator.placement import Placer
from kubenova.operator.scheduler import NoValidHost, PlacementRequest
from tests.integration.inventory.conftest import add_hosts


def a_request(n: int, memory_mb: int = 1024, **kwargs: object) -> PlacementRequest:
    return PlacementRequest(
        inv.Consumer(f"uid-{n}", f"vm-{n}", "demo"),
        inv.Resources(1, memory_mb, 10),
        **kwargs,  # type: ignore[arg-type]
    )


def test_place_spreads_by_default_and_fills_the_cluster_exactly(engine: Engine) -> None:
    add_hosts(engine, "a", "b", memory_mb=2048)
    placer = Placer(engine)
    hosts = [placer.place(a_request(n)) for n in range(4)]
    assert [claim.host for claim in hosts if isinstance(claim, inv.Claim)] == ["a", "b", "a", "b"]
    refused = placer.place(a_request(4))
    assert isinstance(refused, NoValidHost)
    assert str(refused) == "2 hosts: 2 lack memory (need 1024 MiB, max free 0 MiB)"


def test_placing_again_returns_the_existing_claim(engine: Engine) -> None:
    add_hosts(engine, "a", memory_mb=1024)
    first = Placer(engine).place(a_request(1))
    assert isinstance(first, inv.Claim)
    # A new process (fresh view) retrying after a crash: the host is full of its own claim.
    again = Placer(engine).place(a_request(1))
    assert again == inv.Claim(first.consumer_uid, "a", first.resources, created=False)
    assert inv.host_usage(engine)["a"] == first.resources


def test_a_stale_view_loses_the_race_and_moves_on(engine: Engine) -> None:
    add_hosts(engine, "a", "b", memory_mb=1024)
    mine, theirs = Placer(engine), Placer(engine)
    mine.view.hosts()
    theirs.view.hosts()
    assert isinstance(theirs.place(a_request(1)), inv.Claim)  # takes "a"
    claim = mine.place(a_request(2))  # still believes "a" is empty
    assert isinstance(claim, inv.Claim)
    assert claim.host == "b"
    assert {h.name: h.free_memory_mb for h in mine.view.hosts()} == {"a": 0, "b": 0}


def test_capacity_released_elsewhere_is_found_before_refusing(engine: Engine) -> None:
    add_hosts(engine, "a", memory_mb=1024)
    placer = Placer(engine)
    assert isinstance(placer.place(a_request(1)), inv.Claim)
    inv.release(engine, "uid-1")  # by another replica: this view does not know
    placer.view._loaded_at -= 60  # a view older than the trust window
    assert isinstance(placer.place(a_request(2)), inv.Claim)


def test_hard_anti_affinity_spreads_members_then_refuses(engine: Engine) -> None:
    add_hosts(engine, "a", "b")
    group = inv.ServerGroupRef("sg-1", "web", inv.GroupPolicy.ANTI_AFFINITY, "demo")
    placer = Placer(engine)
    placed = [placer.place(a_request(n, group=group)) for n in range(3)]
    assert [p.host for p in placed[:2] if isinstance(p, inv.Claim)] == ["a", "b"]
    assert str(placed[2]) == "2 hosts: 2 already run a member of server group web"


def test_hard_affinity_follows_the_first_member(engine: Engine) -> None:
    add_hosts(engine, "a", "b")
    group = inv.ServerGroupRef("sg-1", "db", inv.GroupPolicy.AFFINITY, "demo")
    placer = Placer(engine)
    inv.claim(engine, inv.Consumer("uid-0", "vm-0", "demo"), "b", inv.Resources(1, 1, 1), group)
    placed = [placer.place(a_request(n, group=group)) for n in range(1, 4)]
    assert {p.host for p in placed if isinstance(p, inv.Claim)} == {"b"}


def test_the_view_follows_host_changes_when_refreshed(engine: Engine) -> None:
    add_hosts(engine, "a", "b")
    placer = Placer(engine)
    view = placer.view
    assert [h.name for h in view.hosts()] == ["a", "b"]
    inv.set_host_ready(engine, "a", False)
    add_hosts(engine, "c")
    view.refresh(["a", "c", "ghost"])
    assert {h.name: h.ready for h in view.hosts()} == {"a": False, "b": True, "c": True}
    claim = placer.place(a_request(1, memory_mb=8192))
    assert isinstance(claim, inv.Claim)
    assert claim.host == "b"
    claim = placer.place(a_request(2, memory_mb=8192))
    assert isinstance(claim, inv.Claim)
    assert claim.host == "c"
    refused = placer.place(a_request(3, memory_mb=8192))
    assert str(refused) == "3 hosts: 1 not ready, 2 lack memory (need 8192 MiB, max free 0 MiB)"


def test_an_explicit_host_is_honoured(engine: Engine) -> None:
    add_hosts(engine, "a", "b", "c")
    claim = Placer(engine).place(a_request(1, host="c"))
    assert isinstance(claim, inv.Claim)
    assert claim.host == "c"
