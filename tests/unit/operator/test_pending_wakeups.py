"""An Instance that finds no host is woken when capacity appears, even mid-decision.

The decision runs in a worker thread while host events arrive on the event loop; capacity
that appears between "no host fits" and "wait for capacity" must not be lost, or the
Instance stays Pending until something unrelated wakes it.
"""

from __future__ import annotations

import asyncio
import threading
from types import SimpleNamespace
from typing import Any

from kubenova.operator import inventory as inv
from kubenova.operator.catalog.store import Catalog
from kubenova.operator.instances.reconciler import InstanceReconciler
from kubenova.operator.runtime import Runtime
from kubenova.operator.scheduler.decision import NoValidHost
from kubenova.workqueue import WorkQueue
from tests.builders import a_flavor, an_image, an_instance


class RecordingClient:
    """Remembers the patches; answers each with the object (unchanged: enough here)."""

    def __init__(self, stored: dict[str, Any]) -> None:
        self.stored = stored
        self.patches: list[dict[str, Any]] = []

    async def patch(self, kind: Any, name: str, patch: Any, namespace: str | None, **_: Any) -> Any:
        self.patches.append(patch)
        return self.stored


class SilentEvents:
    def record(self, *_: Any) -> None:
        pass


class SlowPlacer:
    """The first decision finds no host, and capacity appears while it is being taken."""

    def __init__(self) -> None:
        self.deciding = threading.Event()
        self.capacity_arrived = threading.Event()
        self.decisions = 0

    def place(self, request: Any, steps: Any = ()) -> inv.Claim | NoValidHost:
        self.decisions += 1
        if self.decisions == 1:
            self.deciding.set()
            self.capacity_arrived.wait(timeout=10)
            return NoValidHost("0/1 hosts are ready")
        return inv.Claim(request.consumer.uid, "h-1", request.resources)

    async def place_soon(self, request: Any, steps: Any = ()) -> inv.Claim | NoValidHost:
        # As the real one: the decision runs in a thread while the event loop goes on.
        return await asyncio.to_thread(self.place, request, steps)


def stored(manifest: dict[str, Any], uid: str) -> dict[str, Any]:
    manifest["metadata"] |= {"uid": uid, "resourceVersion": "1", "generation": 1}
    return manifest


def test_capacity_arriving_during_a_decision_wakes_the_instance() -> None:
    asyncio.run(capacity_arrives_during_a_decision())


async def capacity_arrives_during_a_decision() -> None:
    catalog = Catalog()
    catalog.put("Flavor", "m1.test", stored(a_flavor(), "f"))
    catalog.put("Image", "test-image", stored(an_image(), "i"))
    placer = SlowPlacer()
    instance = stored(an_instance(), "uid-vm")
    client = RecordingClient(instance)
    reconciler = InstanceReconciler(
        client,  # type: ignore[arg-type]
        placer,  # type: ignore[arg-type]
        catalog,
        SilentEvents(),  # type: ignore[arg-type]
        lambda host: True,
        lambda host: True,
    )
    queue: WorkQueue[str] = WorkQueue(reconciler, workers=1, name="instances")
    runtime = SimpleNamespace(instances=reconciler, instance_queue=queue)
    queue.start()
    try:
        queue.put("default/vm", instance)
        while not placer.deciding.is_set():
            await asyncio.sleep(0.01)
        Runtime.retry_pending(runtime)  # type: ignore[arg-type]  # a host became ready
        await asyncio.sleep(0.05)  # the wake-up is delivered while the decision still runs
        placer.capacity_arrived.set()
        for _ in range(500):  # up to 5 s
            if placer.decisions >= 2 and not len(queue):
                break
            await asyncio.sleep(0.01)
    finally:
        await queue.stop()
    assert placer.decisions == 2, "the Instance was not tried again"
    assert "default/vm" not in reconciler.pending
    writes = [
        f"status {p['status']['phase']}"
        if "status" in p
        else f"finalizers {p['metadata']['finalizers']}"
        for p in client.patches
    ]
    # Pending (no host yet); then, created without the webhook's finalizers, those first,
    # and one status write that places it (status.host is the commit point).
    assert writes == [
        "status Pending",
        "finalizers ['kubenova.io/operator', 'kubenova.io/agent']",
        "status Scheduled",
    ]
