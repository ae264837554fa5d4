"""The keyed work queue: newest body wins, one worker per key, retries with backoff."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from kubenova.workqueue import WorkQueue


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_a_burst_of_events_for_one_key_collapses_to_the_newest_body() -> None:
    seen: list[Any] = []

    async def scenario() -> None:
        gate = asyncio.Event()

        async def handler(key: str, body: Any) -> None:
            await gate.wait()
            seen.append((key, body["v"]))

        queue: WorkQueue[str] = WorkQueue(handler, workers=2)
        queue.start()
        queue.put("a", {"v": 1})
        await asyncio.sleep(0.01)  # a worker holds "a" (waiting on the gate)
        for v in range(2, 10):
            queue.put("a", {"v": v})
        gate.set()
        await queue.drained()
        await queue.stop()

    run(scenario())
    assert seen == [("a", 1), ("a", 9)]


def test_one_key_is_never_worked_on_twice_at_once() -> None:
    active: set[str] = set()
    overlaps = 0

    async def scenario() -> None:
        nonlocal overlaps

        async def handler(key: str, body: Any) -> None:
            nonlocal overlaps
            if key in active:
                overlaps += 1
            active.add(key)
            await asyncio.sleep(0.005)
            active.discard(key)

        queue: WorkQueue[str] = WorkQueue(handler, workers=8)
        queue.start()
        for i in range(200):
            queue.put(f"k{i % 3}", {"i": i})
            await asyncio.sleep(0)
        await queue.drained()
        await queue.stop()

    run(scenario())
    assert overlaps == 0


def test_a_failing_handler_is_retried_until_it_succeeds() -> None:
    calls = 0

    async def scenario() -> None:
        async def handler(key: str, body: Any) -> None:
            nonlocal calls
            calls += 1
            if calls < 3:
                raise RuntimeError("flaky dependency")

        queue: WorkQueue[str] = WorkQueue(handler)
        queue.start()
        queue.put("x", {})
        for _ in range(200):
            await asyncio.sleep(0.02)
            if calls >= 3:
                break
        await queue.stop()

    run(scenario())
    assert calls == 3


def test_returning_a_delay_requeues_and_a_gone_key_is_forgotten() -> None:
    bodies: list[Any] = []

    async def scenario() -> WorkQueue[str]:
        async def handler(key: str, body: Any) -> float | None:
            bodies.append(body)
            return 0.01 if body and len(bodies) < 3 else None

        queue: WorkQueue[str] = WorkQueue(handler)
        queue.start()
        queue.put("x", {"v": 1})
        await asyncio.sleep(0.2)
        queue.put("x", None)
        await queue.drained()
        await asyncio.sleep(0.05)
        await queue.stop()
        return queue

    queue = run(scenario())
    assert bodies[:3] == [{"v": 1}] * 3
    assert bodies[-1] is None
    assert queue.keys() == []


def test_a_gone_key_whose_handler_asks_for_a_delay_is_looked_at_again() -> None:
    # An agent that cannot yet tell whether a vanished object is really gone (it re-reads
    # it) returns a delay: the key stays until a pass over it returns None.
    calls: list[Any] = []

    async def scenario() -> WorkQueue[str]:
        async def handler(key: str, body: Any) -> float | None:
            calls.append(body)
            return 0.01 if body is None and len(calls) < 4 else None

        queue: WorkQueue[str] = WorkQueue(handler)
        queue.start()
        queue.put("x", {"v": 1})
        await asyncio.sleep(0.05)
        queue.put("x", None)
        await asyncio.sleep(0.2)
        await queue.drained()
        await queue.stop()
        return queue

    queue = run(scenario())
    assert calls == [{"v": 1}, None, None, None]
    assert queue.keys() == []


@pytest.mark.parametrize("workers", [1, 4])
def test_mark_of_an_unknown_key_does_nothing(workers: int) -> None:
    async def scenario() -> int:
        calls = 0

        async def handler(key: str, body: Any) -> None:
            nonlocal calls
            calls += 1

        queue: WorkQueue[str] = WorkQueue(handler, workers=workers)
        queue.start()
        queue.mark("never-seen")
        await asyncio.sleep(0.02)
        await queue.stop()
        return calls

    assert run(scenario()) == 0


def at(version: str | None, v: int) -> dict[str, Any]:
    """A body with a resourceVersion (None: none at all) and a marker."""
    metadata = {} if version is None else {"resourceVersion": version}
    return {"metadata": metadata, "v": v}


def test_a_body_older_than_the_held_one_never_replaces_it_but_still_marks() -> None:
    """Informer semantics: a late event of an earlier write is not the newest state."""
    seen: list[Any] = []

    async def scenario() -> None:
        async def handler(key: str, body: Any) -> None:
            seen.append(body["v"])

        queue: WorkQueue[str] = WorkQueue(handler, workers=1)
        queue.start()
        queue.put("a", at("10", 1))
        await queue.drained()
        queue.put("a", at("9", 2))  # older: the held body stays, and is reconciled again
        await queue.drained()
        assert queue.body("a") == at("10", 1)
        queue.put("a", at("10", 3))  # the same version: the later arrival wins
        queue.put("a", at("11", 4))  # compared as numbers, not strings ("11" > "9")
        await queue.drained()
        assert queue.body("a") == at("11", 4)
        queue.put("b", at("100", 5))
        queue.put("b", at("99", 6))
        await queue.drained()
        await queue.stop()

    run(scenario())
    assert seen == [1, 1, 4, 5]


def test_versions_that_do_not_parse_let_the_later_arrival_win() -> None:
    async def scenario() -> None:
        async def handler(key: str, body: Any) -> None:
            pass

        queue: WorkQueue[str] = WorkQueue(handler, workers=1)
        queue.put("a", at("20", 1))
        queue.put("a", at("opaque", 2))  # not an etcd revision: cannot be ordered
        assert queue.body("a") == at("opaque", 2)
        queue.put("a", at("5", 3))
        assert queue.body("a") == at("5", 3)
        queue.put("a", at(None, 4))  # no version at all (a body made in memory)
        assert queue.body("a") == at(None, 4)

    run(scenario())


def test_a_deletion_always_wins_and_anything_replaces_it() -> None:
    async def scenario() -> None:
        async def handler(key: str, body: Any) -> None:
            pass

        queue: WorkQueue[str] = WorkQueue(handler, workers=1)
        queue.put("a", at("30", 1))
        queue.put("a", None)  # gone, whatever version was held
        assert queue.keys() == ["a"]
        assert queue.body("a") is None
        queue.put("a", at("31", 2))  # created again under the same name
        assert queue.body("a") == at("31", 2)

    run(scenario())


def test_a_remembered_body_is_the_newest_without_a_reconcile() -> None:
    """The echo of the handler's own write: kept for the next reconcile, not one itself."""
    seen: list[Any] = []

    async def scenario() -> None:
        async def handler(key: str, body: Any) -> None:
            seen.append((key, body["v"]))

        queue: WorkQueue[str] = WorkQueue(handler, workers=1)
        queue.start()
        queue.put("a", at("10", 1))
        await queue.drained()
        queue.remember("a", at("11", 2))
        queue.remember("a", at("9", 3))  # older than what is held: not kept
        queue.remember("b", at("1", 1))  # unknown (or deleted): nothing to keep it for
        await asyncio.sleep(0.01)
        await queue.drained()
        assert queue.body("a") == at("11", 2)
        assert queue.body("b") is None
        queue.mark("a")
        await queue.drained()
        await queue.stop()

    run(scenario())
    assert seen == [("a", 1), ("a", 2)]
