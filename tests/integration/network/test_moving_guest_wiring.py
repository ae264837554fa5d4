"""The Network reconciler's view of a guest whose live migration ends while it reads.

A migration's end is two writes in this order: the hand-over (the inventory's Instance
row moves to the target) and then the phase Completed (the migration watch stops counting
the target). A reconcile that read the ports before the hand-over and the migrations after
Completed saw the guest on its source only and dropped the target from the Network's
hosts for one status write: the gateway host lost its VXLAN peer and the target its bridge,
the guest's tap with it, right after the switch-over. Here that interleaving is forced on
the real inventory (SQLite and PostgreSQL): the guest must be counted on its target.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, cast

from sqlalchemy import Engine

from kubenova.kube import KubeClient
from kubenova.kube.events import EventRecorder
from kubenova.operator import inventory as inv
from kubenova.operator.migrations import claim_target, hand_over
from kubenova.operator.moves import Moves
from kubenova.operator.networks import ports, registry
from kubenova.operator.networks import status as st
from kubenova.operator.networks.reconciler import NetworkReconciler
from kubenova.operator.networks.records import network_record
from kubenova.operator.networks.settings import NetworkSettings
from tests.integration.inventory.conftest import add_hosts

NAMESPACE = "tenant-m"
SMALL = inv.Resources(1, 128, 1)


def a_migration(phase: str) -> dict[str, Any]:
    return {
        "metadata": {"name": "m1", "namespace": NAMESPACE, "resourceVersion": "1"},
        "spec": {"instanceName": "mover"},
        "status": {"phase": phase, "targetHost": "dst"},
    }


class EndsWhileRead(Moves):
    """The migration cache, with the move's end (hand-over, then Completed) landing just
    as the reconciler asks it for the moves under way."""

    def __init__(self, end: Any) -> None:
        super().__init__(cast(KubeClient, None))  # fed by hand, never listed nor watched
        self.end = end

    async def incoming_hosts(self, namespace: str) -> dict[str, set[str]]:
        if self.end is not None:
            self.end, end = None, self.end
            end()
            await self._changed(f"{NAMESPACE}/m1", a_migration("Completed"))
        return await super().incoming_hosts(namespace)


def test_a_guest_is_counted_on_its_target_when_its_move_ends_during_a_reconcile(
    engine: Engine,
) -> None:
    add_hosts(engine, "src", "dst")
    body = {
        "metadata": {"uid": str(uuid.uuid4()), "namespace": NAMESPACE, "name": "lan"},
        "spec": {"mode": "vxlan", "cidr": "10.7.0.0/24", "dhcp": False},
    }
    record = network_record(body)
    registry.register(engine, record)
    guest = inv.Consumer(str(uuid.uuid4()), "mover", NAMESPACE)
    inv.claim(engine, guest, "src", SMALL)
    ports.allocate(engine, record, guest.uid)
    move = inv.Consumer(str(uuid.uuid4()), "m1", NAMESPACE, kind="InstanceMigration")
    claim_target(engine, move, "dst", SMALL)

    async def observe() -> list[str]:
        moves = EndsWhileRead(lambda: hand_over(engine, move.uid, guest.uid))
        await moves._listed([a_migration("Running")])
        moves.watch.synced.set()
        reconciler = NetworkReconciler(
            cast(KubeClient, None),
            engine,
            NetworkSettings(),
            cast(EventRecorder, None),
            {},
            moves,
        )
        observation = await reconciler._observe(body, body["spec"], 1)
        return st.wired_hosts(observation)

    # Before the fix: ['src'] (the ports read before the hand-over, the moves after it).
    assert asyncio.run(observe()) == ["dst"]
