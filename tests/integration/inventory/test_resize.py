"""Placer.resize: an Instance's claim swapped for its new size on its own host, in one
transaction: the host re-checked for the growth, the quota charged the difference."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import Engine

from kubenova.operator import inventory as inv
from kubenova.operator.inventory import quotas
from kubenova.operator.placement import Placer
from kubenova.operator.scheduler import NoValidHost, PlacementRequest
from tests.integration.inventory.conftest import add_hosts
from tests.integration.inventory.test_place import a_request


def resized(n: int, vcpus: int, memory_mb: int, disk_gb: int = 10) -> PlacementRequest:
    return replace(a_request(n), resources=inv.Resources(vcpus, memory_mb, disk_gb))


def test_the_claim_is_swapped_in_place_and_the_quota_charged_the_difference(
    engine: Engine,
) -> None:
    add_hosts(engine, "a", memory_mb=4096)
    placer = Placer(engine)
    quotas.set_limits(engine, "demo", "demo", inv.QuotaLimits(vcpus=4, memory_mib=3072))
    assert isinstance(placer.place(a_request(1)), inv.Claim)
    assert isinstance(placer.place(a_request(2)), inv.Claim)

    outcome = placer.resize(resized(1, 2, 2048))
    assert not isinstance(outcome, NoValidHost)
    before, after = outcome
    assert before == inv.Claim("uid-1", "a", inv.Resources(1, 1024, 10), created=False)
    assert after == inv.Claim("uid-1", "a", inv.Resources(2, 2048, 10), created=True)
    assert inv.find_claim(engine, "uid-1") == inv.Claim("uid-1", "a", after.resources, False)
    assert inv.host_usage(engine)["a"] == inv.Resources(3, 3072, 20)
    assert quotas.usage(engine, "demo") == quotas.QuotaAmounts(
        instances=2, vcpus=3, memory_mib=3072
    )
    assert {h.name: h.free_memory_mb for h in placer.view.hosts()}["a"] == 4096 - 3072
    # Again: nothing changes (a retry after a crash before the status write).
    assert placer.resize(resized(1, 2, 2048)) == (
        inv.Claim("uid-1", "a", after.resources, False),
        inv.Claim("uid-1", "a", after.resources, False),
    )

    # Over the quota (3 + 2 vCPUs > 4): refused, nothing written.
    with pytest.raises(inv.QuotaExceeded, match="vcpus"):
        placer.resize(resized(2, 3, 1024))
    assert inv.host_usage(engine)["a"] == inv.Resources(3, 3072, 20)
    # Shrinking gives back room and quota.
    outcome = placer.resize(resized(1, 1, 512))
    assert not isinstance(outcome, NoValidHost)
    assert quotas.usage(engine, "demo").memory_mib == 1536


def test_no_room_on_its_host_leaves_the_old_claim_and_says_why(engine: Engine) -> None:
    add_hosts(engine, "a", vcpus=2, memory_mb=2048)
    placer = Placer(engine)
    assert isinstance(placer.place(a_request(1)), inv.Claim)
    assert isinstance(placer.place(a_request(2)), inv.Claim)
    refused = placer.resize(resized(1, 1, 2048))
    assert isinstance(refused, NoValidHost)
    assert "no room on its host for the growth" in str(refused)
    assert "requested vcpus=0 memory_mb=1024" in str(refused), refused
    assert inv.find_claim(engine, "uid-1") == inv.Claim(
        "uid-1", "a", inv.Resources(1, 1024, 10), False
    )
    assert inv.host_usage(engine)["a"] == inv.Resources(2, 2048, 20)
    with pytest.raises(inv.NothingToResize):
        placer.resize(resized(9, 1, 128))
