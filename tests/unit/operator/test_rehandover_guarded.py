"""A hand-over made again, a resize's status and a floating IP's addresses are applied only
onto the Instance as they were decided from.

A restarted operator can find an Instance's claim on another host than its status.host: a
cold move settled the inventory and its own status write (new host, size and Resized) is
on its way. The reconciler hands the Instance over to the claim's host again, and that
apply, made from the body it read before claiming, would drop the move's Resized condition
if the move's write landed first. It carries the body's resourceVersion, and a Conflict
ends the reconcile: the newer write's event decides again. A resize's status write, made
after the claim's thread, is guarded the same way: were the Instance moved meanwhile, its
claim (already of the new size) would be found on the new host, and the write would name
the old one. So is a floating IP's write of the addresses, made after the inventory's.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from kubenova.errors import Conflict
from kubenova.kube.objects import LastWrites
from kubenova.operator import inventory as inv
from kubenova.operator.catalog.store import Catalog
from kubenova.operator.instances.reconciler import InstanceReconciler
from kubenova.operator.instances.resize import Resizer
from kubenova.operator.networks import floating
from kubenova.operator.networks.association import FloatingAssociations
from kubenova.operator.resources import Resources
from kubenova.wellknown import AGENT_FINALIZER, OPERATOR_FINALIZER
from tests.builders import a_flavor, a_network, an_image, an_instance
from tests.unit.operator.test_pending_wakeups import SilentEvents, stored

CLAIM = inv.Claim("uid-vm", "cold-b", Resources(1, 64, 1), created=False)


class RefusingClient:
    """Refuses a status apply whose resourceVersion precondition is stale, as the
    apiserver does; records every patch."""

    def __init__(self, stored: dict[str, Any], current_version: str) -> None:
        self.stored = stored
        self.current_version = current_version
        self.patches: list[dict[str, Any]] = []

    async def patch(self, kind: Any, name: str, patch: Any, namespace: str | None, **_: Any) -> Any:
        self.patches.append(patch)
        precondition = patch.get("metadata", {}).get("resourceVersion")
        if precondition is not None and precondition != self.current_version:
            raise Conflict(409, "Conflict", "the object has been modified")
        return self.stored | {"status": patch["status"]}


class SettledPlacer:
    """The inventory holds the Instance's claim on cold-b already (an idempotent retry)."""

    engine = None

    async def place_soon(self, request: Any, steps: Any = ()) -> inv.Claim:
        return CLAIM


def a_catalog(memory: int = 128) -> Catalog:
    catalog = Catalog()
    catalog.put("Flavor", "m1.test", stored(a_flavor(memory=memory), "f"))
    catalog.put("Image", "test-image", stored(an_image(), "i"))
    return catalog


def placed_on_the_source() -> dict[str, Any]:
    body = stored(an_instance(), "uid-vm")
    body["metadata"] |= {
        "resourceVersion": "7",
        "finalizers": [OPERATOR_FINALIZER, AGENT_FINALIZER],
    }
    body["status"] = {"host": "cold-a", "phase": "Stopped"}
    return body


def reconcile(client: RefusingClient, monkeypatch: pytest.MonkeyPatch) -> InstanceReconciler:
    monkeypatch.setattr(inv, "find_claim", lambda engine, uid: CLAIM)  # settled on cold-b
    reconciler = InstanceReconciler(
        client,  # type: ignore[arg-type]
        SettledPlacer(),  # type: ignore[arg-type]
        a_catalog(),
        SilentEvents(),  # type: ignore[arg-type]
        lambda host: True,
        lambda host: False,
    )
    asyncio.run(reconciler("default/vm", client.stored))
    return reconciler


def test_a_hand_over_made_again_is_refused_once_the_body_changed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = RefusingClient(placed_on_the_source(), current_version="8")  # the move wrote
    reconciler = reconcile(client, monkeypatch)
    [apply] = client.patches
    assert apply["metadata"]["resourceVersion"] == "7"
    assert apply["status"]["host"] == "cold-b"
    assert reconciler.handed_over.last("uid-vm") is None  # nothing taken as written


def test_a_hand_over_made_again_onto_the_unchanged_body_is_written(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = RefusingClient(placed_on_the_source(), current_version="7")
    reconciler = reconcile(client, monkeypatch)
    [apply] = client.patches
    assert apply["status"]["host"] == "cold-b"
    assert reconciler.handed_over.last("uid-vm") == {"host": "cold-b"}
    assert reconciler.placed_on["default/vm"] == "cold-b"


def test_a_first_hand_over_carries_no_precondition(monkeypatch: pytest.MonkeyPatch) -> None:
    body = placed_on_the_source()
    del body["status"]
    client = RefusingClient(body, current_version="8")
    reconcile(client, monkeypatch)
    [apply] = client.patches
    assert "resourceVersion" not in apply["metadata"]
    assert apply["status"]["host"] == "cold-b"


class MovedMeanwhilePlacer:
    """The claim is of the new size already, on cold-b: a move ended while we resized."""

    engine = None

    def resize(self, request: Any) -> tuple[inv.Claim, inv.Claim]:
        moved = inv.Claim("uid-vm", "cold-b", request.resources, created=False)
        return moved, moved


class NoMigrations(RefusingClient):
    async def list(self, *_: Any, **__: Any) -> dict[str, Any]:
        return {"metadata": {}, "items": []}


def test_a_resize_status_is_refused_once_the_body_changed() -> None:
    body = placed_on_the_source()
    body["status"]["resources"] = {"vcpus": 1, "memoryMiB": 64, "diskGiB": 1}  # the old size
    client = NoMigrations(body, current_version="8")  # the move's write landed meanwhile
    resizer = Resizer(
        client,  # type: ignore[arg-type]
        MovedMeanwhilePlacer(),  # type: ignore[arg-type]
        a_catalog(memory=128),
        SilentEvents(),  # type: ignore[arg-type]
        LastWrites(),
        lambda key, waits: None,
    )
    asyncio.run(resizer("default/vm", body, "cold-a"))
    [apply] = client.patches
    assert apply["metadata"]["resourceVersion"] == "7"
    assert apply["status"]["host"] == "cold-a"  # what it would have handed back
    assert resizer.handed_over.last("uid-vm") is None


def test_a_floating_ip_write_is_refused_once_the_body_changed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    body = placed_on_the_source()
    body["spec"]["networks"] = [{"network": "net", "floatingIP": True}]
    body["status"]["addresses"] = [{"network": "net", "ip": "10.0.0.5"}]
    client = RefusingClient(body, current_version="8")  # a move's write landed meanwhile
    catalog = Catalog()
    catalog.put("Network", "default/net", stored(a_network("net"), "uid-net"))
    monkeypatch.setattr(floating, "follow", lambda *_: {"uid-net": "198.51.100.7"})
    associations = FloatingAssociations(
        client,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        SilentEvents(),  # type: ignore[arg-type]
        None,
        catalog=catalog,
        changed=lambda key: None,
    )
    asyncio.run(associations.follow(body))
    [apply] = client.patches
    assert apply["metadata"]["resourceVersion"] == "7"
    assert apply["status"]["addresses"][0]["floatingIP"] == "198.51.100.7"
