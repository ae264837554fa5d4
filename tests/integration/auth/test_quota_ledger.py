"""Quota charges on SQLite and a real PostgreSQL: checked in the claim's transaction, race-free."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import Engine

from kubenova.operator import inventory as inv
from kubenova.operator.inventory import quotas
from tests.integration.inventory.conftest import add_hosts

SMALL = inv.Resources(vcpus=1, memory_mb=512, disk_gb=1)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """A migrated inventory with room for 100 small Instances on one host."""
    inv.upgrade(db_url)
    # One connection per racing thread, so the race is between transactions, not a pool.
    engine = inv.make_engine(db_url, pool_size=25, max_overflow=0)
    add_hosts(engine, "node-1", vcpus=100, memory_mb=100 * 512, disk_gb=100)
    yield engine
    engine.dispose()


def consumer(n: int, namespace: str = "alpha", kind: str = "Instance") -> inv.Consumer:
    return inv.Consumer(f"uid-{namespace}-{n:02d}", f"vm-{n:02d}", namespace, kind)


def race(count: int, attempt: Callable[[int], None]) -> tuple[int, list[str]]:
    """Run `attempt(i)` for i < count in as many threads released at once; (ok, refusals)."""
    start = threading.Barrier(count)

    def one(i: int) -> str | None:
        start.wait()
        try:
            attempt(i)
        except inv.QuotaExceeded as refused:
            return str(refused)
        return None

    with ThreadPoolExecutor(count) as pool:
        outcomes = list(pool.map(one, range(count)))
    refusals = [o for o in outcomes if o is not None]
    return count - len(refusals), refusals


def test_twenty_racing_claims_against_a_quota_of_five_leave_exactly_five(engine: Engine) -> None:
    quotas.set_limits(engine, "alpha", "alpha", inv.QuotaLimits(instances=5))
    ok, refusals = race(20, lambda i: _claim(engine, consumer(i), SMALL))
    assert ok == 5
    assert set(refusals) == {"quota exceeded in project alpha: instances 5 + 1 > 5"}
    assert quotas.usage(engine, "alpha") == inv.QuotaAmounts(instances=5, vcpus=5, memory_mib=2560)
    assert inv.host_usage(engine)["node-1"].vcpus == 5  # nothing claimed past the quota


def test_floating_ips_are_charged_with_the_claim(engine: Engine) -> None:
    quotas.set_limits(engine, "alpha", "alpha", inv.QuotaLimits(floating_ips=2))
    inv.claim(engine, consumer(0), "node-1", SMALL, floating_ips=2)
    with pytest.raises(inv.QuotaExceeded) as refused:
        inv.claim(engine, consumer(1), "node-1", SMALL, floating_ips=1)
    assert str(refused.value) == "quota exceeded in project alpha: floatingIPs 2 + 1 > 2"
    inv.claim(engine, consumer(2), "node-1", SMALL)  # no floating IP: fits
    assert quotas.usage(engine, "alpha").floating_ips == 2
    inv.release(engine, consumer(0).uid)
    assert quotas.usage(engine, "alpha").floating_ips == 0


def test_the_message_names_project_resource_usage_request_and_limit(engine: Engine) -> None:
    quotas.set_limits(engine, "alpha", "alpha", inv.QuotaLimits(vcpus=16))
    for n, vcpus in enumerate((8, 6)):
        _claim(engine, consumer(n), inv.Resources(vcpus, 512, 1))
    with pytest.raises(inv.QuotaExceeded) as refused:
        _claim(engine, consumer(9), inv.Resources(4, 512, 1))
    assert str(refused.value) == "quota exceeded in project alpha: vcpus 14 + 4 > 16"
    assert (refused.value.used, refused.value.requested, refused.value.limit) == (14, 4, 16)
    assert inv.find_claim(engine, consumer(9).uid) is None


def test_a_volume_claim_charges_its_count_and_gib(engine: Engine) -> None:
    quotas.set_limits(engine, "alpha", "alpha", inv.QuotaLimits(volumes=2, volume_gib=35))
    inv.claim(engine, consumer(1, kind="Volume"), "node-1", inv.Resources(disk_gb=30))
    with pytest.raises(inv.QuotaExceeded) as refused:
        inv.claim(engine, consumer(2, kind="Volume"), "node-1", inv.Resources(disk_gb=10))
    assert str(refused.value) == "quota exceeded in project alpha: volumeGiB 30 + 10 > 35"
    assert inv.find_claim(engine, consumer(2, kind="Volume").uid) is None
    inv.claim(engine, consumer(3, kind="Volume"), "node-1", inv.Resources(disk_gb=5))
    with pytest.raises(inv.QuotaExceeded, match="volumes 2 \\+ 1 > 2"):
        inv.claim(engine, consumer(4, kind="Volume"), "node-1", inv.Resources(disk_gb=1))
    assert quotas.usage(engine, "alpha") == inv.QuotaAmounts(volumes=2, volume_gib=35)
    inv.release(engine, consumer(1, kind="Volume").uid)
    assert quotas.usage(engine, "alpha") == inv.QuotaAmounts(volumes=1, volume_gib=5)


def test_twenty_racing_volume_claims_against_a_quota_of_three_leave_exactly_three(
    engine: Engine,
) -> None:
    quotas.set_limits(engine, "alpha", "alpha", inv.QuotaLimits(volumes=3))
    ok, refusals = race(
        20,
        lambda i: _claim(engine, consumer(i, kind="Volume"), inv.Resources(disk_gb=1)),
    )
    assert ok == 3
    assert set(refusals) == {"quota exceeded in project alpha: volumes 3 + 1 > 3"}
    assert quotas.usage(engine, "alpha").volumes == 3
    assert inv.host_usage(engine)["node-1"].disk_gb == 3


def test_checking_room_reads_and_writes_nothing(engine: Engine) -> None:
    quotas.set_limits(engine, "alpha", "alpha", inv.QuotaLimits(instances=2, vcpus=4))
    _claim(engine, consumer(1), inv.Resources(2, 512, 1))
    amounts = inv.QuotaAmounts.for_instance(SMALL)
    for _ in range(5):  # as often as anyone likes: nothing is held
        quotas.check_room(engine, consumer(2), amounts)
    assert [c.consumer_uid for c in quotas.list_charges(engine)] == [consumer(1).uid]
    # What waits for a claim counts as if it were charged.
    with pytest.raises(inv.QuotaExceeded) as refused:
        quotas.check_room(engine, consumer(2), amounts, {consumer(3).uid: amounts})
    assert str(refused.value) == "quota exceeded in project alpha: instances 2 + 1 > 2"
    # A waiting object that holds a charge meanwhile counts once, by its charge.
    quotas.check_room(engine, consumer(2), amounts, {consumer(1).uid: amounts})
    # The consumer's own charge is not counted twice.
    quotas.check_room(engine, consumer(1), inv.QuotaAmounts.for_instance(inv.Resources(4, 1, 1)))


def test_without_a_project_quota_everything_fits_and_is_still_counted(engine: Engine) -> None:
    for n in range(3):
        _claim(engine, consumer(n, namespace="free"), SMALL)
    assert quotas.usage(engine, "free").instances == 3
    # Limits set later apply to what comes next, not to what already runs.
    quotas.set_limits(engine, "free", "free", inv.QuotaLimits(instances=2))
    with pytest.raises(inv.QuotaExceeded, match="instances 3 \\+ 1 > 2"):
        _claim(engine, consumer(9, namespace="free"), SMALL)
    quotas.drop_limits(engine, "free")
    _claim(engine, consumer(9, namespace="free"), SMALL)


def test_limits_are_only_rewritten_when_they_change(engine: Engine) -> None:
    limits = inv.QuotaLimits(instances=5, vcpus=16)
    assert quotas.set_limits(engine, "alpha", "alpha", limits)
    assert not quotas.set_limits(engine, "alpha", "alpha", limits)
    assert quotas.set_limits(engine, "alpha", "alpha", inv.QuotaLimits(instances=6))


def _claim(engine: Engine, who: inv.Consumer, resources: inv.Resources) -> None:
    inv.claim(engine, who, "node-1", resources)
