"""The Ready condition of a Host is written only when it changes, at most once per host per
interval, except a flip between Ready and NotReady, which is written at once."""

from __future__ import annotations

import asyncio
from typing import Any

from kubenova.operator.hosts.status import HostStatusWriter, Verdict


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class _Apiserver:
    """Answers status applies like the API server: the condition merged, a new version."""

    def __init__(self) -> None:
        self.version = 10
        self.writes: list[dict[str, Any]] = []

    async def patch(self, kind: Any, name: str, patch: dict[str, Any], *_: Any, **__: Any) -> Any:
        self.version += 1
        self.writes.append(patch["status"]["conditions"][0])
        return a_host(name, str(self.version), conditions=patch["status"]["conditions"])


def a_host(name: str = "h1", version: str = "10", **status: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "uid": f"uid-{name}",
            "generation": 1,
            "resourceVersion": version,
        },
        "spec": {},
        "status": status,
    }


ALIVE = Verdict(True, "the host's agent is heart-beating")


def a_writer() -> tuple[HostStatusWriter, _Apiserver, _Clock]:
    server, clock = _Apiserver(), _Clock()
    return HostStatusWriter(server, min_interval=10.0, clock=clock), server, clock  # type: ignore[arg-type]


def publish(writer: HostStatusWriter, body: dict[str, Any], verdict: Verdict) -> float | None:
    writer.publish("h1", body, verdict)
    return asyncio.run(writer._write("h1", body))


def test_the_same_verdict_from_a_body_older_than_our_write_is_not_written_again() -> None:
    """Host event, Lease event and the periodic check judge one host with one cached body."""
    writer, server, _ = a_writer()
    stale = a_host()
    for _ in range(3):
        assert publish(writer, stale, ALIVE) is None
    assert [w["status"] for w in server.writes] == ["True"]


def test_a_change_that_keeps_ready_waits_for_the_interval_and_takes_the_newest() -> None:
    writer, server, clock = a_writer()
    publish(writer, a_host(), Verdict(False, "no heartbeat yet"))
    clock.now += 1
    assert publish(writer, a_host(), Verdict(False, "lost, first words")) == 9.0
    assert publish(writer, a_host(), Verdict(False, "lost, last words")) == 9.0
    clock.now += 9
    assert asyncio.run(writer._write("h1", a_host())) is None
    assert [w["message"] for w in server.writes] == ["no heartbeat yet", "lost, last words"]


def test_a_flip_between_ready_and_not_ready_is_written_at_once() -> None:
    writer, server, clock = a_writer()
    publish(writer, a_host(), ALIVE)
    clock.now += 0.1
    publish(writer, a_host(), Verdict(False, "no heartbeat within the 40s timeout"))
    clock.now += 0.1
    publish(writer, a_host(), ALIVE)
    assert [w["status"] for w in server.writes] == ["True", "False", "True"]


def test_what_the_server_already_holds_is_not_written() -> None:
    """An operator restarted finds its predecessor's condition: nothing to write."""
    writer, server, _ = a_writer()
    held = {
        "type": "Ready",
        "status": "True",
        "reason": "HeartbeatOK",
        "message": ALIVE.message,
        "lastTransitionTime": "2026-01-01T00:00:00Z",
        "observedGeneration": 1,
    }
    publish(writer, a_host(conditions=[held]), ALIVE)
    assert server.writes == []


def test_writes_that_are_no_flip_share_a_bounded_rate_over_all_hosts() -> None:
    """1,000 hosts judged for the first time, or filled by a drain, trickle out at
    `max_rate` writes per second; a flip of Ready waits for nothing."""
    server, clock = _Apiserver(), _Clock()
    writer = HostStatusWriter(server, min_interval=10.0, max_rate=2.0, clock=clock)  # type: ignore[arg-type]

    def judge(name: str, verdict: Verdict) -> float | None:
        writer.publish(name, a_host(name), verdict)
        return asyncio.run(writer._write(name, a_host(name)))

    assert judge("h1", ALIVE) is None
    assert judge("h2", ALIVE) is None
    assert judge("h3", ALIVE) == 0.5  # the bucket is empty: a token in half a second
    assert judge("h1", Verdict(False, "no heartbeat within the 40s timeout")) is None
    clock.now += 0.5
    assert judge("h3", ALIVE) is None
    assert [w["status"] for w in server.writes] == ["True", "True", "False", "True"]


def test_while_placements_wait_writes_that_are_no_flip_are_parked_and_trickle_out() -> None:
    """A drain's apiserver serves placements: first verdicts and fills wait for the backlog
    (`busy_rate` a second meanwhile), a flip does not, and all go once it is placed."""
    server, clock = _Apiserver(), _Clock()
    writer = HostStatusWriter(server, min_interval=10.0, busy_rate=1.0, clock=clock)  # type: ignore[arg-type]
    busy = True
    writer.busy = lambda: busy
    marked: list[str] = []
    writer._queue.mark = marked.append  # type: ignore[method-assign]

    def judge(name: str, verdict: Verdict) -> float | None:
        writer.publish(name, a_host(name), verdict)
        return asyncio.run(writer._write(name, a_host(name)))

    for name in ("h1", "h2", "h3"):
        assert judge(name, Verdict(False, "no heartbeat yet")) is None
    assert server.writes == []
    assert judge("h2", ALIVE) is None  # its first verdict: no flip, parked again
    assert server.writes == []
    marked.clear()
    writer.unpark()  # a second passes, placements still waiting: one goes
    assert marked == ["h1"]
    assert asyncio.run(writer._write("h1", a_host("h1"))) is None
    assert [w["message"] for w in server.writes] == ["no heartbeat yet"]
    busy = False
    writer.unpark()
    assert marked == ["h1", "h2", "h3"]
    for name in ("h2", "h3"):
        assert asyncio.run(writer._write(name, a_host(name))) is None
    assert [w["status"] for w in server.writes] == ["False", "True", "False"]
    busy = True
    clock.now += 0.1
    assert judge("h1", ALIVE) is None  # a flip goes at once, busy or not
    assert [w["status"] for w in server.writes][-1] == "True"
