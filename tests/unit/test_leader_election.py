"""The leader election's rules, on an in-memory Lease and a clock the test moves."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import sqlalchemy

from kubenova.errors import Conflict, NotFound
from kubenova.kube.leader import ElectionTiming, LeaderElector, NotLeading
from kubenova.kube.paths import LEASES
from kubenova.operator.leadership import guard_engine


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class _Leases:
    """One Lease with a resourceVersion: create once, merge-patch with a precondition."""

    def __init__(self) -> None:
        self.body: dict[str, Any] | None = None
        self.version = 0

    async def get(self, kind: Any, name: str, namespace: str) -> dict[str, Any]:
        if self.body is None:
            raise NotFound(404, "NotFound", name)
        return {**self.body, "spec": dict(self.body["spec"])}

    async def create(self, kind: Any, body: dict[str, Any], namespace: str) -> dict[str, Any]:
        if self.body is not None:
            raise Conflict(409, "AlreadyExists", "exists")
        return self._store(body["spec"])

    async def patch(
        self, kind: Any, name: str, patch: dict[str, Any], namespace: str
    ) -> dict[str, Any]:
        assert self.body is not None
        if patch["metadata"]["resourceVersion"] != str(self.version):
            raise Conflict(409, "Conflict", "stale resourceVersion")
        spec = {k: v for k, v in {**self.body["spec"], **patch["spec"]}.items() if v is not None}
        return self._store(spec)

    def _store(self, spec: dict[str, Any]) -> dict[str, Any]:
        self.version += 1
        self.body = {"metadata": {"resourceVersion": str(self.version)}, "spec": spec}
        return self.body


TIMING = ElectionTiming(lease_duration=15, renew_deadline=10, retry_period=2, candidate_period=1)


def a_candidate(leases: _Leases, clock: _Clock, identity: str, **kwargs: Any) -> LeaderElector:
    return LeaderElector(
        leases,  # type: ignore[arg-type]
        LEASES,
        "kubenova-system",
        "kubenova-operator-leader",
        identity,
        timing=TIMING,
        clock=clock,
        **kwargs,
    )


def test_the_first_candidate_leads_and_the_second_waits_out_the_lease_by_its_own_clock() -> None:
    leases, clock = _Leases(), _Clock()
    a, b = a_candidate(leases, clock, "a"), a_candidate(leases, clock, "b")
    assert asyncio.run(a._attempt())
    assert a.holds()
    assert not asyncio.run(b._attempt())  # first sight: the lease's age starts now for b
    clock.now += 14
    assert not asyncio.run(b._attempt())
    clock.now += 1.5  # 15.5 s since b first saw the unchanged record
    assert not a.holds()
    assert asyncio.run(b._attempt())
    assert b.holds()
    assert leases.body is not None
    assert leases.body["spec"]["holderIdentity"] == "b"
    assert leases.body["spec"]["leaseTransitions"] == 1


def test_a_renewal_seen_by_the_standby_restarts_its_count() -> None:
    leases, clock = _Leases(), _Clock()
    a, b = a_candidate(leases, clock, "a"), a_candidate(leases, clock, "b")
    asyncio.run(a._attempt())
    asyncio.run(b._attempt())
    clock.now += 10
    asyncio.run(a._attempt())  # renewed: a new renewTime, a new record for b
    clock.now += 10
    assert not asyncio.run(b._attempt())  # seen changed now: 15 s more from here
    clock.now += 14
    assert not asyncio.run(b._attempt())


def test_a_paused_leader_knows_it_no_longer_holds_before_it_writes() -> None:
    leases, clock = _Leases(), _Clock()
    a = a_candidate(leases, clock, "a")
    asyncio.run(a._attempt())
    a.check()
    clock.now += 15  # SIGSTOP, then SIGCONT
    assert not a.holds()
    with pytest.raises(NotLeading):
        a.check()


def test_of_two_racing_for_an_expired_lease_one_gets_the_conflict() -> None:
    leases, clock = _Leases(), _Clock()
    old = a_candidate(leases, clock, "old")
    asyncio.run(old._attempt())
    b, c = a_candidate(leases, clock, "b"), a_candidate(leases, clock, "c")
    asyncio.run(b._attempt())
    asyncio.run(c._attempt())
    clock.now += 16

    async def race() -> list[bool]:
        return list(await asyncio.gather(b._attempt(), c._attempt()))

    # Both read version N before either writes; the second write's precondition fails.
    original_get = leases.get

    async def get_then_yield(*args: Any) -> dict[str, Any]:
        body = await original_get(*args)
        await asyncio.sleep(0)
        return body

    leases.get = get_then_yield  # type: ignore[method-assign]
    assert sorted(asyncio.run(race())) == [False, True]
    assert b.holds() != c.holds()


def test_a_released_lease_is_taken_at_once() -> None:
    leases, clock = _Leases(), _Clock()
    a, b = a_candidate(leases, clock, "a"), a_candidate(leases, clock, "b")
    asyncio.run(a._attempt())
    asyncio.run(b._attempt())
    asyncio.run(a.release())
    assert not a.holds()
    assert asyncio.run(b._attempt())


def test_a_dead_holder_on_this_host_is_not_waited_for() -> None:
    leases, clock = _Leases(), _Clock()
    a = a_candidate(leases, clock, "host_1")
    asyncio.run(a._attempt())
    b = a_candidate(leases, clock, "host_2", holder_dead=lambda holder: holder == "host_1")
    assert asyncio.run(b._attempt())


def test_keep_returns_once_the_lease_went_to_another() -> None:
    leases, clock = _Leases(), _Clock()
    a, b = a_candidate(leases, clock, "a"), a_candidate(leases, clock, "b")
    asyncio.run(a._attempt())
    asyncio.run(b._attempt())
    clock.now += 16
    asyncio.run(b._attempt())  # a was paused; b took over

    async def keep() -> None:
        async with asyncio.timeout(5):
            await a.keep()

    a.timing = ElectionTiming(lease_duration=15, renew_deadline=10, retry_period=0.01)
    asyncio.run(keep())
    assert not a.holds()


def test_the_guarded_inventory_reads_but_refuses_writes_while_not_leading() -> None:
    leading = [True]

    def check() -> None:
        if not leading[0]:
            raise NotLeading("not the leader")

    engine = sqlalchemy.create_engine("sqlite://")
    guard_engine(engine, check)
    with engine.begin() as connection:
        connection.execute(sqlalchemy.text("CREATE TABLE t (x INTEGER)"))
        connection.execute(sqlalchemy.text("INSERT INTO t VALUES (1)"))
    leading[0] = False
    with engine.begin() as connection:
        assert connection.execute(sqlalchemy.text("SELECT x FROM t")).scalar() == 1
        with pytest.raises(NotLeading):
            connection.execute(sqlalchemy.text("UPDATE t SET x = 2"))
