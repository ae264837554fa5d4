"""The network hook resolves an Instance's NICs from the catalog before anything is claimed."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from sqlalchemy import create_engine

from kubenova.errors import NotFoundError, UserError
from kubenova.operator.catalog.store import Catalog
from kubenova.operator.networks.hook import NetworkInstanceHook, Nic, NicStep
from kubenova.operator.networks.records import network_record
from kubenova.operator.networks.settings import NetworkSettings
from tests.builders import a_network, an_instance

POOL = (ipaddress.IPv4Address("198.51.100.10"), ipaddress.IPv4Address("198.51.100.20"))


def stored(manifest: dict[str, Any], uid: str) -> dict[str, Any]:
    manifest["metadata"] |= {"uid": uid, "resourceVersion": "1", "generation": 1}
    return manifest


def a_hook(catalog: Catalog) -> NetworkInstanceHook:
    changed: list[str] = []
    return NetworkInstanceHook(
        create_engine("sqlite://"),  # never used: resolving reads the catalog only
        catalog,
        NetworkSettings(floating_pool=POOL),
        changed.append,
        lambda uid: None,
        follow_floating=nothing_to_follow,
    )


async def nothing_to_follow(body: dict[str, Any]) -> None:
    return None


def test_the_step_carries_every_nic_resolved() -> None:
    catalog = Catalog()
    lan = stored(a_network("lan", "demo"), "net-uid")
    catalog.put("Network", "demo/lan", lan)
    instance = an_instance(
        "vm", "demo", networks=[{"network": "lan", "ip": "10.30.0.7", "floatingIP": True}]
    )
    step = a_hook(catalog).claim_step(stored(instance, "vm-uid"))
    assert step == NicStep((Nic(network_record(lan), "10.30.0.7", True),), POOL)


def test_no_nic_no_step() -> None:
    assert a_hook(Catalog()).claim_step(stored(an_instance("vm", "demo"), "vm-uid")) is None


def test_a_missing_network_refuses_before_the_claim_and_waits_for_it() -> None:
    catalog = Catalog()
    woken: list[set[str]] = []
    catalog.on_arrival = woken.append
    instance = stored(an_instance("vm", "demo", networks=[{"network": "lan"}]), "vm-uid")
    with pytest.raises(NotFoundError, match="Network lan does not exist") as refused:
        a_hook(catalog).claim_step(instance)
    assert refused.value.reason == "NetworkNotFound"
    catalog.put("Network", "demo/lan", stored(a_network("lan", "demo"), "net-uid"))
    assert woken == [{"demo/vm"}]


def test_a_terminating_network_refuses_before_the_claim() -> None:
    catalog = Catalog()
    lan = stored(a_network("lan", "demo"), "net-uid")
    lan["metadata"]["deletionTimestamp"] = "2026-12-05T00:00:00Z"
    catalog.put("Network", "demo/lan", lan)
    instance = stored(an_instance("vm", "demo", networks=[{"network": "lan"}]), "vm-uid")
    with pytest.raises(UserError, match="is being deleted") as refused:
        a_hook(catalog).claim_step(instance)
    assert refused.value.reason == "NetworkTerminating"
