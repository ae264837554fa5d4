"""The audit waits for the Instance backlog to be worked off, but not for ever."""

from __future__ import annotations

import asyncio

from kubenova.kube.meta import Body
from kubenova.operator.audit import after_backlog
from kubenova.workqueue import WorkQueue


def test_the_audit_waits_until_the_listed_backlog_is_worked_off() -> None:
    async def scenario() -> list[str]:
        gate = asyncio.Event()
        order: list[str] = []

        async def handler(key: str, body: Body | None) -> None:
            await gate.wait()
            order.append(key)

        queue: WorkQueue[str] = WorkQueue(handler, workers=2)
        queue.start()
        listed = asyncio.Event()
        waiting = asyncio.create_task(after_backlog(listed, queue, limit=30))
        await asyncio.sleep(0.05)
        assert not waiting.done()  # nothing listed yet: an empty queue says nothing
        for i in range(5):
            queue.put(f"ns/i{i}", {"metadata": {"resourceVersion": str(i + 1)}})
        listed.set()
        await asyncio.sleep(0.3)
        assert not waiting.done()  # two in hand, three queued
        gate.set()
        assert await asyncio.wait_for(waiting, 5)
        order.append("audit")
        await queue.stop()
        return order

    order = asyncio.run(scenario())
    assert order[-1] == "audit"
    assert len(order) == 6


def test_a_queue_that_never_empties_lets_the_audit_run_after_the_limit() -> None:
    async def scenario() -> bool:
        async def handler(key: str, body: Body | None) -> None:
            await asyncio.sleep(3600)

        queue: WorkQueue[str] = WorkQueue(handler, workers=1)
        queue.start()
        queue.put("ns/busy", {})
        listed = asyncio.Event()
        listed.set()
        done = await after_backlog(listed, queue, limit=0.3)
        await queue.stop()
        return done

    assert asyncio.run(scenario()) is False
