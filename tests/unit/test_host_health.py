"""How the operator judges a host: capacity from its Host, health from its Lease's age."""

from __future__ import annotations

import asyncio
from typing import Any

from kubenova.operator import inventory as inv
from kubenova.operator.hosts import HostMonitor, _more_room, host_record, parse_time


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
    assert record.overcommit == inv.Overcommit(4.0, 1.0, 1.0)
    assert record.availability_zone == "az1"
    assert record.services == ("compute", "volume")


def test_micro_time_parses() -> None:
    assert parse_time("1970-01-01T00:00:10.500000Z") == 10.5
    assert parse_time(None) is None


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


def test_lease_age_decides_readiness() -> None:
    clock = _Clock()
    monitor = HostMonitor(
        client=None,  # type: ignore[arg-type]
        placer=None,  # type: ignore[arg-type]
        events=None,  # type: ignore[arg-type]
        lease_timeout=40,
        capacity_appeared=lambda: None,
        clock=clock,
    )
    assert monitor._alive("h1") == (
        False,
        "no heartbeat yet: the host's agent has not renewed its Lease",
    )
    asyncio.run(monitor.lease_event("h1", {"spec": {"renewTime": "1970-01-01T00:16:30.000000Z"}}))
    assert monitor._alive("h1")[0]  # renewed at 990, now 1000
    clock.now = 1031.0
    alive, message = monitor._alive("h1")
    assert not alive
    assert "no heartbeat for 41s (timeout 40s)" in message
