"""Hosts: mirror Host resources into the inventory and judge their health by their Leases.

The agent owns a Host's capacity and renews `kubenova-system/host-<name>`; the operator
owns the Host's `Ready` condition and the inventory row. A host whose Lease is older than
the timeout (or missing) is NotReady and gets no placements; when it comes back, the
Instances waiting for capacity are tried again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kubenova import conditions as cond
from kubenova.api.v1alpha1 import Host
from kubenova.kube import KubeClient, NotFound, kubenova_kind
from kubenova.kube.events import EventRecorder
from kubenova.kube.objects import apply_status
from kubenova.metrics import HOST_ALLOCATED, HOST_CAPACITY, HOST_READY
from kubenova.operator import inventory as inv
from kubenova.operator.placement import Placer
from kubenova.wellknown import OPERATOR_MANAGER

log = logging.getLogger(__name__)

HOSTS = kubenova_kind(Host)
READY = "Ready"
Body = dict[str, Any]


def parse_time(value: str | None) -> float | None:
    """Seconds since the epoch of an RFC 3339 (Micro)Time, or None."""
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def host_record(body: Body, ready: bool) -> inv.HostRecord:
    """The inventory's view of a Host resource."""
    spec = body.get("spec") or {}
    capacity = (body.get("status") or {}).get("capacity") or {}
    overcommit = spec.get("overcommit") or {}
    return inv.HostRecord(
        name=body["metadata"]["name"],
        capacity=inv.Resources(
            int(capacity.get("vcpus", 0)),
            int(capacity.get("memoryMiB", 0)),
            int(capacity.get("diskGiB", 0)),
        ),
        overcommit=inv.Overcommit(
            float(overcommit.get("cpu", 16.0)),
            float(overcommit.get("memory", 1.5)),
            float(overcommit.get("disk", 1.0)),
        ),
        availability_zone=spec.get("availabilityZone", "nova"),
        ready=ready,
        schedulable=bool(spec.get("schedulable", True)),
        services=tuple(spec.get("services") or ("compute",)),
    )


@dataclass
class HostMonitor:
    """Keeps inventory rows and Ready conditions of Hosts in step with Hosts and Leases."""

    client: KubeClient
    placer: Placer
    events: EventRecorder
    lease_timeout: float
    capacity_appeared: Callable[[], None]
    clock: Callable[[], float] = field(default=lambda: datetime.now(UTC).timestamp())

    def __post_init__(self) -> None:
        self.hosts: dict[str, Body] = {}
        self.renewed: dict[str, float] = {}  # host -> last renewTime
        self.ready: dict[str, bool] = {}
        self.records: dict[str, inv.HostRecord] = {}
        self.started = self.clock()
        self._batch: dict[str, inv.HostRecord] = {}
        self._flushing: asyncio.Task[None] | None = None

    def is_ready(self, name: str) -> bool:
        return self.ready.get(name, False)

    # -- events ------------------------------------------------------------------------------

    async def host_event(self, body: Body | None, name: str) -> None:
        if body is None:
            self.hosts.pop(name, None)
            self.records.pop(name, None)
            await asyncio.to_thread(inv.set_host_schedulable, self.placer.engine, name, False)
            await asyncio.to_thread(inv.set_host_ready, self.placer.engine, name, False)
            self.placer.host_changed(name)
            return
        self.hosts[name] = body
        await self._sync(name)

    async def lease_event(self, host: str, body: Body | None) -> None:
        if body is None:
            self.renewed.pop(host, None)
        else:
            spec = body.get("spec") or {}
            renewed = parse_time(spec.get("renewTime") or spec.get("acquireTime"))
            if renewed is not None:
                self.renewed[host] = renewed
        if host in self.hosts:
            await self._sync(host)

    async def check_leases(self) -> None:
        """Re-judge every host's health now (called periodically)."""
        for name in list(self.hosts):
            await self._sync(name)

    async def publish_usage(self) -> None:
        """Export capacity, readiness and allocations of every host as metrics."""
        usage = await asyncio.to_thread(inv.host_usage, self.placer.engine)
        for name, record in self.records.items():
            HOST_READY.labels(name).set(1 if self.ready.get(name) else 0)
            used = usage.get(name, inv.Resources())
            for resource, amount in record.capacity.items():
                HOST_CAPACITY.labels(name, resource.value).set(amount)
            for resource, amount in used.items():
                HOST_ALLOCATED.labels(name, resource.value).set(amount)

    async def _upsert(self, record: inv.HostRecord) -> None:
        """Write a host's record; records arriving together share one transaction.

        At start-up every Host arrives at once: one commit for all of them instead of one
        per host, which would hold the database's write lock away from placements.
        """
        self._batch[record.name] = record
        if self._flushing is None:
            self._flushing = asyncio.create_task(self._flush())
        await asyncio.shield(self._flushing)

    async def _flush(self) -> None:
        try:
            while self._batch:
                batch = list(self._batch.values())
                self._batch.clear()
                await asyncio.to_thread(inv.upsert_hosts, self.placer.engine, batch)
                for written in batch:
                    self.placer.host_changed(written.name)
        finally:
            self._flushing = None

    # -- the one place a host's state is decided ---------------------------------------------

    def _alive(self, name: str) -> tuple[bool, str]:
        renewed = self.renewed.get(name)
        # Our grace period, not the Lease's own duration: as with kube-controller-manager's
        # node-monitor-grace-period, the judge sets the timeout.
        timeout = self.lease_timeout
        now = self.clock()
        if renewed is None:
            return False, "no heartbeat yet: the host's agent has not renewed its Lease"
        age = now - renewed
        if age > timeout:
            return False, f"no heartbeat for {age:.0f}s (timeout {timeout:.0f}s)"
        return True, "the host's agent is heart-beating"

    async def _sync(self, name: str) -> None:
        body = self.hosts[name]
        alive, message = self._alive(name)
        record = host_record(body, alive)
        was_ready = self.ready.get(name)
        if self.records.get(name) != record:
            await self._upsert(record)
            grew = _more_room(self.records.get(name), record)
            self.records[name] = record
            if grew:
                self.capacity_appeared()
        self.ready[name] = alive
        previous = (body.get("status") or {}).get("conditions")
        entry = cond.condition(
            READY,
            alive,
            "HeartbeatOK" if alive else "HeartbeatLost",
            message if not alive else "the host's agent is heart-beating",
            generation=body["metadata"].get("generation"),
            previous=previous,
        )
        if cond.same(cond.find(previous, READY), entry):
            return
        try:
            fresh = await apply_status(
                self.client, HOSTS, body, {"conditions": [entry]}, manager=OPERATOR_MANAGER
            )
        except NotFound:
            return
        self.hosts[name] = fresh
        if was_ready is not None and was_ready != alive:
            kind = "Normal" if alive else "Warning"
            reason = "HostReady" if alive else "HostNotReady"
            self.events.record(fresh, kind, reason, f"host {name}: {message}")
            log.warning("host %s is %s: %s", name, "ready" if alive else "NOT ready", message)


def _more_room(old: inv.HostRecord | None, new: inv.HostRecord) -> bool:
    """Could an Instance that did not fit before fit now?"""
    if not new.ready or not new.schedulable:
        return False
    if old is None or not old.ready or not old.schedulable:
        return True
    return (
        new.capacity.vcpus > old.capacity.vcpus
        or new.capacity.memory_mb > old.capacity.memory_mb
        or new.capacity.disk_gb > old.capacity.disk_gb
        or new.overcommit != old.overcommit
        or new.availability_zone != old.availability_zone
    )
