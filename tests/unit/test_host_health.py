"""How the operator judges a host: capacity from its Host, health from when it last saw its
Lease change (on its own clock, whatever the agent's clock says)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from kubenova.operator import inventory as inv
from kubenova.operator.hosts.monitor import HostMonitor, _more_room, host_record
from kubenova.operator.placement import Placer
from kubenova.operator.scheduler import SchedulerConfig


def a_host_body(name: str = "h1", **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "generation": 1, "resourceVersion": "1"},
        "spec": {
            "availabilityZone": "az1",
            "overcommit": {"cpu": 4.0, "memory": 1.0},
            "services": ["compute", "volume"],
        },
        "status": {"capacity": {"vcpus": 8, "memoryMiB": 4096, "diskGiB": 50}, **status},
    }


def test_host_record_reads_spec_and_status() -> None:
    record = host_record(a_host_body(), ready=True)
    assert record.capacity == inv.Resources(8, 4096, 50)
    assert record.overcommit == inv.OvercommitRatios(4.0, 1.0, 1.0)
    assert record.availability_zone == "az1"
    assert record.services == ("compute", "volume")


def test_an_out_of_service_host_takes_no_placements() -> None:
    body = a_host_body()
    body["spec"]["outOfService"] = True
    assert not host_record(body, ready=True).schedulable


def test_more_room_only_when_a_pending_instance_could_now_fit() -> None:
    small = host_record(a_host_body(), ready=True)
    assert _more_room(None, small)
    assert not _more_room(small, small)
    not_ready = host_record(a_host_body(), ready=False)
    assert _more_room(not_ready, small)
    assert not _more_room(small, not_ready)


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def a_monitor(clock: _Clock) -> HostMonitor:
    return HostMonitor(
        client=None,  # type: ignore[arg-type]
        placer=None,  # type: ignore[arg-type]
        events=None,  # type: ignore[arg-type]
        lease_timeout=40,
        clock=clock,
    )


def a_lease(renew_time: str, holder: str = "h1") -> dict[str, Any]:
    return {"spec": {"holderIdentity": holder, "renewTime": renew_time}}


def test_readiness_is_the_age_of_our_last_sight_of_a_renewal() -> None:
    clock = _Clock()
    monitor = a_monitor(clock)
    assert monitor._alive("h1") == (
        False,
        "no heartbeat yet: the host's agent has not renewed its Lease",
    )
    asyncio.run(monitor.lease_event("h1", a_lease("2026-01-01T00:00:00.000000Z")))
    clock.now = 1039.0
    assert monitor._alive("h1")[0]
    asyncio.run(monitor.lease_event("h1", a_lease("2026-01-01T00:00:01.000000Z")))
    clock.now = 1078.0  # 39 s after the renewal was seen
    assert monitor._alive("h1")[0]
    clock.now = 1080.0
    alive, message = monitor._alive("h1")
    assert not alive
    assert "no heartbeat within the 40s timeout" in message


def test_a_renew_time_far_in_the_past_or_future_does_not_matter() -> None:
    """Only a change of the Lease counts: the agent's clock may be minutes off either way."""
    clock = _Clock()
    monitor = a_monitor(clock)
    for skewed in ("1999-01-01T00:00:00.000000Z", "2099-01-01T00:00:00.000000Z"):
        asyncio.run(monitor.lease_event("h1", a_lease(skewed)))
        assert monitor._alive("h1")[0], skewed
        clock.now += 30


def test_the_same_lease_seen_again_is_not_a_heartbeat() -> None:
    """A re-list after a watch restart replays the Lease unchanged: no renewal."""
    clock = _Clock()
    monitor = a_monitor(clock)
    lease = a_lease("2099-01-01T00:00:00.000000Z")
    asyncio.run(monitor.lease_event("h1", lease))
    clock.now = 1030.0
    asyncio.run(monitor.lease_event("h1", lease))
    clock.now = 1041.0
    assert not monitor._alive("h1")[0]


def test_a_host_is_fenced_when_ready_or_out_of_service_never_when_unknown() -> None:
    monitor = a_monitor(_Clock())
    assert not monitor.is_fenced("h1")  # not seen yet (Instances may be listed first)
    assert not monitor.is_judged("h1")
    monitor.hosts["h1"] = a_host_body()
    monitor.ready["h1"] = False
    assert not monitor.is_fenced("h1")  # NotReady: its guest may still run
    monitor.hosts["h1"]["spec"]["outOfService"] = True
    assert monitor.is_fenced("h1")
    monitor.hosts["h1"]["spec"]["outOfService"] = False
    monitor.ready["h1"] = True
    assert monitor.is_fenced("h1")  # its agent is back: it tears its domains down itself


def test_a_host_list_is_judged_in_one_pass_and_one_transaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At start-up 1,000 Hosts arrive as one list: one inventory commit for them all (a
    commit per host would hold the write lock away from placements), each judged by the
    Lease list that came before it."""
    url = f"sqlite:///{tmp_path / 'inventory.db'}"
    inv.upgrade(url)
    engine = inv.make_engine(url)
    commits: list[int] = []
    upsert_hosts = inv.upsert_hosts

    def counted(bind: Engine, records: Sequence[inv.HostRecord]) -> None:
        commits.append(len(records))
        upsert_hosts(bind, records)

    monkeypatch.setattr(inv, "upsert_hosts", counted)
    clock = _Clock()
    monitor = HostMonitor(
        client=None,  # type: ignore[arg-type] # the status writer is not started: no write
        placer=Placer(engine, SchedulerConfig()),
        events=None,  # type: ignore[arg-type] # a first judgement is no flip: no Event
        lease_timeout=40,
        clock=clock,
    )
    woken: list[str] = []
    monitor.on_capacity(lambda: woken.append("capacity"))
    monitor.active = True
    leases = [
        {"metadata": {"name": f"host-h{i}"}, "spec": a_lease(f"2026-01-01T00:00:0{i}Z")["spec"]}
        for i in (1, 2)
    ]
    monitor.leases_listed([*leases, {"metadata": {"name": "kubenova-operator-leader"}}])

    asyncio.run(monitor.hosts_listed([a_host_body(f"h{i}") for i in (1, 2, 3)]))

    assert commits == [3]
    assert woken == ["capacity"]  # once for the list, not once per host
    assert [monitor.is_ready(f"h{i}") for i in (1, 2, 3)] == [True, True, False]
    assert monitor.judged == {"h1", "h2", "h3"}
    rows = {h.record.name: h.record.ready for h in inv.load_hosts(engine)}
    assert rows == {"h1": True, "h2": True, "h3": False}

    asyncio.run(monitor.check_leases())  # nothing changed: nothing written
    assert commits == [3]
    engine.dispose()
