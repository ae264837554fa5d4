"""Quota charges on SQLite and a real PostgreSQL: checked in the claim's transaction, race-free."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

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


def test_twenty_racing_admissions_against_a_quota_of_five_reserve_exactly_five(
    engine: Engine,
) -> None:
    quotas.set_limits(engine, "alpha", "alpha", inv.QuotaLimits(instances=5))
    amounts = inv.QuotaAmounts.for_instance(SMALL)
    ok, refusals = race(20, lambda i: quotas.reserve(engine, consumer(i), amounts, dry_run=False))
    assert (ok, len(refusals)) == (5, 15)
    charges = quotas.list_charges(engine, "alpha")
    assert len(charges) == 5
    assert not any(c.claimed for c in charges)


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


def test_a_reservation_is_confirmed_by_the_claim_and_dropped_by_the_release(
    engine: Engine,
) -> None:
    quotas.set_limits(engine, "alpha", "alpha", inv.QuotaLimits(instances=1, vcpus=2))
    vm = consumer(1)
    quotas.reserve(
        engine, vm, inv.QuotaAmounts.for_instance(inv.Resources(2, 512, 1)), dry_run=False
    )
    # The reservation leaves no room for anyone else...
    with pytest.raises(inv.QuotaExceeded):
        _claim(engine, consumer(2), SMALL)
    # ...but its own claim fits: a consumer is never counted twice.
    _claim(engine, vm, inv.Resources(2, 512, 1))
    [charge] = quotas.list_charges(engine, "alpha")
    assert (charge.consumer_uid, charge.claimed) == (vm.uid, True)
    assert quotas.usage(engine, "alpha").vcpus == 2
    # A repeated admission (an update) keeps the confirmation.
    quotas.reserve(
        engine, vm, inv.QuotaAmounts.for_instance(inv.Resources(2, 512, 1)), dry_run=False
    )
    assert quotas.list_charges(engine, "alpha")[0].claimed
    inv.release(engine, vm.uid)
    assert quotas.usage(engine, "alpha") == inv.QuotaAmounts()
    _claim(engine, consumer(2), SMALL)


def test_a_dry_run_checks_but_writes_nothing(engine: Engine) -> None:
    quotas.set_limits(engine, "alpha", "alpha", inv.QuotaLimits(volumes=1))
    quotas.reserve(engine, consumer(1, kind="Volume"), inv.QuotaAmounts.for_volume(5), dry_run=True)
    assert quotas.list_charges(engine) == []
    quotas.reserve(
        engine, consumer(1, kind="Volume"), inv.QuotaAmounts.for_volume(5), dry_run=False
    )
    with pytest.raises(inv.QuotaExceeded, match="volumes 1 \\+ 1 > 1"):
        quotas.reserve(
            engine, consumer(2, kind="Volume"), inv.QuotaAmounts.for_volume(5), dry_run=True
        )


def test_a_volume_may_grow_within_its_quota(engine: Engine) -> None:
    quotas.set_limits(engine, "alpha", "alpha", inv.QuotaLimits(volume_gib=35))
    vol = consumer(1, kind="Volume")
    quotas.reserve(engine, vol, inv.QuotaAmounts.for_volume(10), dry_run=False)
    quotas.reserve(engine, vol, inv.QuotaAmounts.for_volume(30), dry_run=False)
    with pytest.raises(inv.QuotaExceeded) as refused:
        quotas.reserve(engine, vol, inv.QuotaAmounts.for_volume(40), dry_run=False)
    assert str(refused.value) == "quota exceeded in project alpha: volumeGiB 0 + 40 > 35"
    assert quotas.usage(engine, "alpha").volume_gib == 30


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


def test_stale_reservations_are_found_and_dropped(engine: Engine) -> None:
    amounts = inv.QuotaAmounts.for_instance(SMALL)
    quotas.reserve(engine, consumer(1), amounts, dry_run=False)
    _claim(engine, consumer(2), SMALL)
    assert quotas.stale_reservations(engine, timedelta(hours=1)) == []
    [stale] = quotas.stale_reservations(engine, timedelta(seconds=-1))
    assert stale.consumer_uid == consumer(1).uid  # the confirmed one is never stale
    quotas.drop_charges(engine, [stale.consumer_uid])
    assert [c.consumer_uid for c in quotas.list_charges(engine)] == [consumer(2).uid]


def _claim(engine: Engine, who: inv.Consumer, resources: inv.Resources) -> None:
    inv.claim(engine, who, "node-1", resources)
