"""Placing from the event loop (`Placer.place_soon`): placements queued by many reconciles
are committed in shared transactions, and each waiter hears its own outcome (SQLite and
PostgreSQL)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from sqlalchemy import Engine, event

from kubenova.operator import inventory as inv
from kubenova.operator.networks import ports, registry
from kubenova.operator.networks.errors import AddressInUse
from kubenova.operator.networks.hook import Nic, NicStep
from kubenova.operator.networks.records import network_record
from kubenova.operator.placement import Placer
from kubenova.operator.scheduler import NoValidHost, PlacementRequest
from tests.integration.inventory.conftest import add_hosts


def a_request(n: int) -> PlacementRequest:
    return PlacementRequest(inv.Consumer(f"uid-{n}", f"vm-{n}", "demo"), inv.Resources(1, 1024, 10))


def test_queued_placements_share_commits_and_each_hears_its_own_outcome(engine: Engine) -> None:
    add_hosts(engine, "a", "b", vcpus=4)  # room for 8
    network = network_record(
        {
            "metadata": {"uid": str(uuid.uuid4()), "namespace": "demo", "name": "lan"},
            "spec": {"mode": "vxlan", "cidr": "10.0.0.0/24"},
        }
    )
    registry.register(engine, network)
    ports.allocate(engine, network, "holder", "10.0.0.7")
    placer = Placer(engine)
    placer.view.hosts()
    commits: list[int] = []
    event.listen(engine, "commit", lambda _connection: commits.append(1))

    async def place(n: int) -> Any:
        # Instance 3 asks for an address someone holds: its step refuses, only it fails.
        steps = [NicStep((Nic(network, "10.0.0.7", False),), None)] if n == 3 else []
        try:
            return await placer.place_soon(a_request(n), steps)
        except AddressInUse as refused:
            return refused

    async def all_of_them() -> list[Any]:
        return await asyncio.gather(*(place(n) for n in range(10)))

    outcomes = asyncio.run(all_of_them())
    assert isinstance(outcomes[3], AddressInUse)
    placed = [n for n, o in enumerate(outcomes) if isinstance(o, inv.Claim)]
    assert placed == [0, 1, 2, 4, 5, 6, 7, 8]  # the room for 8, in the order they came
    assert isinstance(outcomes[9], NoValidHost)
    assert all(outcomes[n].consumer_uid == f"uid-{n}" for n in placed)
    assert inv.find_claim(engine, "uid-3") is None
    assert len(commits) < len(placed)  # batched: fewer transactions than placements


def test_a_failed_batch_answers_every_waiter(engine: Engine) -> None:
    add_hosts(engine, "a")
    placer = Placer(engine)
    placer.view.hosts()

    def refuse(_connection: Any) -> None:
        raise RuntimeError("the disk is full")

    async def both() -> list[Any]:
        waiting = [placer.place_soon(a_request(n)) for n in (1, 2)]
        return await asyncio.wait_for(asyncio.gather(*waiting, return_exceptions=True), 30)

    event.listen(engine, "commit", refuse)
    try:
        outcomes = asyncio.run(both())
    finally:
        event.remove(engine, "commit", refuse)
    assert [str(o) for o in outcomes] == ["the disk is full"] * 2
    assert inv.find_claim(engine, "uid-1") is None
    # The queue is not stuck: the next placement is committed.
    assert isinstance(asyncio.run(placer.place_soon(a_request(3))), inv.Claim)
