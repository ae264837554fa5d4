"""A deleted Instance that was claimed but never handed over is released by the operator.

Agents select their Instances by `status.host`, and the agent finalizer is there from
admission. An operator killed between a claim's commit and the status write leaves an
Instance with a claim and no `status.host`: no agent ever saw it, so waiting for the agent
to remove its finalizer would keep the Instance (and its claim) for ever.
"""

from __future__ import annotations

import asyncio

import pytest

from kubenova.operator import inventory as inv
from kubenova.operator.catalog.store import Catalog
from kubenova.operator.instances.reconciler import InstanceReconciler
from kubenova.operator.resources import Resources
from kubenova.wellknown import AGENT_FINALIZER, OPERATOR_FINALIZER
from tests.builders import an_instance
from tests.unit.operator.test_pending_wakeups import RecordingClient, SilentEvents


class ReleasingPlacer:
    engine = None

    def __init__(self) -> None:
        self.released: list[str] = []

    def release(self, uid: str) -> bool:
        self.released.append(uid)
        return True

    def on_release(self) -> None:
        pass


def test_a_claimed_instance_no_agent_saw_is_released_on_deletion(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    claim = inv.Claim("uid-vm", "h-1", Resources(1, 64, 1))
    monkeypatch.setattr(inv, "find_claim", lambda engine, uid: claim)  # claimed on h-1
    body = an_instance()
    body["metadata"] |= {
        "uid": "uid-vm",
        "resourceVersion": "1",
        "generation": 1,
        "deletionTimestamp": "2026-12-05T00:00:00Z",
        "finalizers": [OPERATOR_FINALIZER, AGENT_FINALIZER],
    }
    client = RecordingClient(body)
    placer = ReleasingPlacer()
    reconciler = InstanceReconciler(
        client,  # type: ignore[arg-type]
        placer,  # type: ignore[arg-type]
        Catalog(),
        SilentEvents(),  # type: ignore[arg-type]
        lambda host: True,  # h-1 is Ready: its agent would act on what it was handed
        lambda host: False,
    )
    asyncio.run(reconciler("default/vm", body))
    assert placer.released == ["uid-vm"]
    removed = [p for p in client.patches if isinstance(p, list)]
    assert len(removed) == 2, client.patches  # the agent's finalizer, then ours
    assert "default/vm" not in reconciler.deleting_on
