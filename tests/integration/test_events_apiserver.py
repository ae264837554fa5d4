"""Events against the real apiserver: written aside, repeats counted, floods aggregated."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from kubenova.devcluster import ClusterAccess
from kubenova.kube import KubeClient, load_config
from kubenova.kube.events import COMBINED, EventRecorder
from kubenova.kube.paths import CORE_EVENTS, NAMESPACES

pytestmark = pytest.mark.apiserver


class Clock:
    """The recorder's clock, moved by the test (token refill, repeat interval)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def an_object(namespace: str, name: str) -> dict[str, Any]:
    return {
        "apiVersion": "kubenova.io/v1alpha1",
        "kind": "Instance",
        "metadata": {"name": name, "namespace": namespace, "uid": str(uuid.uuid4())},
    }


async def events_of(client: KubeClient, namespace: str, name: str) -> list[dict[str, Any]]:
    listing = await client.list(
        CORE_EVENTS, namespace, field_selector=f"involvedObject.name={name}"
    )
    return sorted(listing["items"], key=lambda e: e["reason"])


async def scenario(apiserver: ClusterAccess) -> dict[str, Any]:
    namespace = f"events-{uuid.uuid4().hex[:6]}"
    async with KubeClient(load_config(apiserver.kubeconfig)) as client:
        await client.create(NAMESPACES, {"metadata": {"name": namespace}})
        try:
            clock = Clock()
            recorder = EventRecorder(
                client, "test", burst=30, refill_seconds=60.0, repeat_interval=5.0, clock=clock
            )
            found: dict[str, Any] = {}
            vm = an_object(namespace, "vm")
            recorder.record(vm, "Normal", "Scheduled", "placed on host h-1")
            await recorder.flush()
            found["scheduled"] = await events_of(client, namespace, "vm")

            # The same event again, many times: one Event, its count patched once.
            for _ in range(6):
                recorder.record(vm, "Warning", "NoValidHost", "0/2 hosts fit")
            await recorder.flush()
            clock.now += 10  # past the repeat interval
            recorder.record(vm, "Warning", "NoValidHost", "0/2 hosts fit")
            await recorder.flush()
            found["repeated"] = await events_of(client, namespace, "vm")

            # Twelve distinct messages of one reason: ten Events, then one combined.
            flood = an_object(namespace, "flood")
            for i in range(12):
                recorder.record(flood, "Warning", "FailedAttach", f"attempt {i} failed")
            await recorder.flush()
            found["flood"] = await events_of(client, namespace, "flood")

            # The spam filter: a burst of 3, then nothing until tokens come back.
            spam = EventRecorder(client, "test", burst=3, refill_seconds=60.0, clock=clock)
            noisy = an_object(namespace, "noisy")
            for i in range(5):
                spam.record(noisy, "Normal", f"Reason{i}", "something happened")
            await spam.flush()
            found["spam"] = await events_of(client, namespace, "noisy")
            clock.now += 60  # one token back
            spam.record(noisy, "Normal", "Reason0", "something happened")
            await spam.flush()
            found["spam_later"] = await events_of(client, namespace, "noisy")

            # Normal Events share one budget over all objects; Warnings do not.
            shared = EventRecorder(client, "test", shared_burst=2, shared_rate=1.0, clock=clock)
            crowd = [an_object(namespace, f"crowd-{i}") for i in range(4)]
            for body in crowd:
                shared.record(body, "Normal", "Scheduled", "placed")
                shared.record(body, "Warning", "Slow", "took long")
            await shared.flush()
            found["crowd"] = [
                await events_of(client, namespace, b["metadata"]["name"]) for b in crowd
            ]
            clock.now += 1  # one token back
            shared.record(crowd[3], "Normal", "Scheduled", "placed")
            await shared.flush()
            found["crowd_later"] = await events_of(client, namespace, "crowd-3")
            return found
        finally:
            await client.delete(NAMESPACES, namespace)


def test_events_are_written_aside_counted_aggregated_and_rate_limited(
    apiserver: ClusterAccess,
) -> None:
    found = asyncio.run(scenario(apiserver))

    [scheduled] = found["scheduled"]
    assert (scheduled["reason"], scheduled["message"], scheduled["count"]) == (
        "Scheduled",
        "placed on host h-1",
        1,
    )
    assert scheduled["involvedObject"]["kind"] == "Instance"

    no_valid_host = [e for e in found["repeated"] if e["reason"] == "NoValidHost"]
    assert len(no_valid_host) == 1, no_valid_host
    assert no_valid_host[0]["count"] == 7

    flood = found["flood"]
    assert len(flood) == 11, [e["message"] for e in flood]
    [combined] = [e for e in flood if e["message"].startswith(COMBINED)]
    assert combined["message"] == COMBINED + "attempt 11 failed"
    assert combined["count"] == 2

    assert [e["reason"] for e in found["spam"]] == ["Reason0", "Reason1", "Reason2"]
    later = {e["reason"]: e["count"] for e in found["spam_later"]}
    assert later == {"Reason0": 2, "Reason1": 1, "Reason2": 1}

    crowd = [[(e["reason"], e["count"]) for e in events] for events in found["crowd"]]
    assert crowd == [
        [("Scheduled", 1), ("Slow", 1)],
        [("Scheduled", 1), ("Slow", 1)],
        [("Slow", 1)],
        [("Slow", 1)],
    ]
    # The occurrence held back is counted: the next write carries it.
    assert [(e["reason"], e["count"]) for e in found["crowd_later"]] == [
        ("Scheduled", 2),
        ("Slow", 1),
    ]
