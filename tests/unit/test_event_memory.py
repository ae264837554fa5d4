"""The event recorder remembers a bounded number of objects, and never drops a due write.

The writes themselves (counts, aggregation, the spam filter) are shown against the real
apiserver in tests/integration/test_events_apiserver.py; here only what is remembered.
"""

from __future__ import annotations

import asyncio
from typing import Any

from kubenova.kube.events import EventRecorder


class RecordingClient:
    """Stands in for KubeClient's create and patch: keeps what would be written."""

    def __init__(self) -> None:
        self.created: list[dict[str, Any]] = []
        self.patched: list[str] = []

    async def create(self, _kind: Any, body: dict[str, Any], _namespace: str) -> dict[str, Any]:
        self.created.append(body)
        return {"metadata": {"name": f"event-{len(self.created)}"}}

    async def patch(self, _kind: Any, name: str, _changes: Any, _namespace: str) -> None:
        self.patched.append(name)


def an_object(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "kubenova.io/v1alpha1",
        "kind": "Instance",
        "metadata": {"name": name, "namespace": "p", "uid": f"uid-{name}"},
    }


def involved_names(client: RecordingClient) -> list[str]:
    return [body["involvedObject"]["name"] for body in client.created]


def test_the_least_recently_recorded_objects_are_forgotten_past_the_bound() -> None:
    async def scenario() -> tuple[list[int], RecordingClient]:
        client = RecordingClient()
        recorder = EventRecorder(client, "test", max_objects=3)  # type: ignore[arg-type]
        remembered = []
        for i in range(6):
            recorder.record(an_object(f"vm{i}"), "Normal", "Scheduled", "placed")
            await recorder.flush()
            remembered.append(recorder.remembered())
        # vm0 was forgotten: its next occurrence is a new Event, not a count patch.
        recorder.record(an_object("vm0"), "Normal", "Scheduled", "placed")
        await recorder.flush()
        return remembered, client

    remembered, client = asyncio.run(scenario())
    assert remembered == [1, 2, 3, 3, 3, 3]
    assert involved_names(client) == ["vm0", "vm1", "vm2", "vm3", "vm4", "vm5", "vm0"]
    assert client.patched == []


def test_an_object_recorded_again_is_remembered_longest() -> None:
    async def scenario() -> RecordingClient:
        client = RecordingClient()
        recorder = EventRecorder(client, "test", max_objects=2, repeat_interval=0.0)  # type: ignore[arg-type]
        recorder.record(an_object("old"), "Normal", "Scheduled", "placed")
        recorder.record(an_object("busy"), "Normal", "Scheduled", "placed")
        await recorder.flush()
        recorder.record(an_object("old"), "Normal", "Scheduled", "placed")  # old: now newest
        recorder.record(an_object("new"), "Normal", "Scheduled", "placed")  # busy goes
        await recorder.flush()
        recorder.record(an_object("old"), "Normal", "Scheduled", "placed")
        await recorder.flush()
        return client

    client = asyncio.run(scenario())
    assert involved_names(client) == ["old", "busy", "new"]
    assert client.patched == ["event-1", "event-1"]  # old's one Event, counted twice more


def test_an_object_whose_write_is_due_is_kept_until_written() -> None:
    async def scenario() -> tuple[int, int, RecordingClient]:
        client = RecordingClient()
        recorder = EventRecorder(client, "test", max_objects=2)  # type: ignore[arg-type]
        # Recorded without yielding to the writer: every write is still due.
        for i in range(4):
            recorder.record(an_object(f"vm{i}"), "Warning", "NoValidHost", "0/2 hosts fit")
        while_due = recorder.remembered()
        await recorder.flush()
        recorder.record(an_object("vm4"), "Warning", "NoValidHost", "0/2 hosts fit")
        await recorder.flush()
        return while_due, recorder.remembered(), client

    while_due, after, client = asyncio.run(scenario())
    assert while_due == 4  # none forgotten with its write to come
    assert involved_names(client) == ["vm0", "vm1", "vm2", "vm3", "vm4"]
    assert after == 2
