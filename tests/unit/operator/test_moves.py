"""operator/moves.Moves: which targets a namespace's guests are moving to, from the watched
InstanceMigrations, and whose Networks and Volumes must look again when that changes.
The watch's handler and first-list callback are fed the bodies a ListWatch would hand them
(no request is sent: the cache is what the readers read instead of a LIST)."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from kubenova.kube import KubeClient
from kubenova.operator.moves import Moves


def a_migration(name: str, instance: str, phase: str | None, target: str | None = None,
                namespace: str = "ns1") -> dict[str, Any]:  # fmt: skip
    status = {k: v for k, v in (("phase", phase), ("targetHost", target)) if v}
    return {
        "metadata": {"name": name, "namespace": namespace, "resourceVersion": "1"},
        "spec": {"instanceName": instance},
        "status": status,
    }


def test_targets_count_while_preparing_or_running_and_listeners_hear_each_change() -> None:
    async def scenario() -> None:
        moves = Moves(cast(KubeClient, None))  # never listed nor watched here
        heard: list[tuple[str, str]] = []
        moves.on_change(lambda namespace, instance: heard.append((namespace, instance)))

        # A restarted operator: the first list is indexed before any reader answers.
        reading = asyncio.create_task(moves.incoming_hosts("ns1"))
        await asyncio.sleep(0)
        assert not reading.done()  # readers wait for the first list
        await moves._listed([a_migration("m0", "vm0", "Running", "b")])
        moves.watch.synced.set()
        assert await reading == {"vm0": {"b"}}
        await moves._changed("ns1/m0", a_migration("m0", "vm0", "Running", "b"))
        assert heard == []  # the queued copy of the listed body changes nothing

        await moves._changed("ns1/m1", a_migration("m1", "vm1", "Pending"))
        await moves._changed("ns1/m1", a_migration("m1", "vm1", "Scheduling"))
        assert heard == []  # not under way yet: no target to wire
        await moves._changed("ns1/m1", a_migration("m1", "vm1", "PreparingTarget", "c"))
        assert heard == [("ns1", "vm1")]
        await moves._changed("ns1/m1", a_migration("m1", "vm1", "Running", "c"))
        assert heard == [("ns1", "vm1")]  # the same target: nothing to redo
        await moves._changed("ns2/m2", a_migration("m2", "vm1", "Running", "d", "ns2"))
        assert heard == [("ns1", "vm1"), ("ns2", "vm1")]
        heard.clear()
        assert await moves.incoming_hosts("ns1") == {"vm0": {"b"}, "vm1": {"c"}}
        assert await moves.incoming_hosts("ns2") == {"vm1": {"d"}}

        await moves._changed("ns1/m1", a_migration("m1", "vm1", "Failed", "c"))
        await moves._changed("ns1/m0", None)  # deleted
        await moves._changed("ns2/m2", a_migration("m2", "vm1", "Completed", "d", "ns2"))
        assert heard == [("ns1", "vm1"), ("ns1", "vm0"), ("ns2", "vm1")]
        assert await moves.incoming_hosts("ns1") == {}
        assert await moves.incoming_hosts("ns2") == {}

    asyncio.run(scenario())
