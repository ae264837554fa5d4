"""Hosts: mirror Host resources into the inventory and judge their health by their Leases.

The agent owns a Host's capacity and renews `kubenova-system/host-<name>`; the operator
owns the Host's `Ready` condition and the inventory row. A host whose Lease the operator
has not *seen* change for the timeout (or which has none) is NotReady and gets no
placements; when it comes back, the Instances waiting for capacity are tried again.

Liveness is judged on the operator's own monotonic clock: when a watch event shows a new
renewTime, that moment is the heartbeat. The agent's renewTime is only compared with its
previous value, never with our wall clock, so a host whose clock is minutes off is neither
flapping nor kept Ready after it died (as kube-controller-manager's node lifecycle
controller records its own observation time).

A NotReady host is not a dead host: its guests may still run. It is *fenced* once its
agent is back or an administrator set `spec.outOfService`; only then may what its
Instances and Volumes hold be given to others (`is_fenced`), and a NotReady host fenced by
an administrator has its Instances rebuilt elsewhere (`is_evacuable`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from kubenova.kube import KubeClient
from kubenova.kube.events import EventRecorder
from kubenova.kube.meta import Body, name_of
from kubenova.metrics import HOST_GAUGES, HostSample
from kubenova.operator import inventory as inv
from kubenova.operator.hosts.status import HostStatusWriter, Verdict
from kubenova.operator.placement import Placer
from kubenova.wellknown import host_of_lease

log = logging.getLogger(__name__)


def host_record(body: Body, ready: bool) -> inv.HostRecord:
    """The inventory's view of a Host resource."""
    spec = body.get("spec") or {}
    capacity = (body.get("status") or {}).get("capacity") or {}
    overcommit = spec.get("overcommit") or {}
    return inv.HostRecord(
        name=name_of(body),
        capacity=inv.Resources(
            int(capacity.get("vcpus", 0)),
            int(capacity.get("memoryMiB", 0)),
            int(capacity.get("diskGiB", 0)),
        ),
        overcommit=inv.OvercommitRatios(
            float(overcommit.get("cpu", 16.0)),
            float(overcommit.get("memory", 1.5)),
            float(overcommit.get("disk", 1.0)),
        ),
        availability_zone=spec.get("availabilityZone", "nova"),
        ready=ready,
        # An out-of-service host is fenced, not merely slow: nothing new goes there.
        schedulable=bool(spec.get("schedulable", True)) and not spec.get("outOfService"),
        services=tuple(spec.get("services") or ("compute",)),
    )


@dataclass
class HostMonitor:
    """Keeps inventory rows and Ready conditions of Hosts in step with Hosts and Leases."""

    client: KubeClient
    placer: Placer
    events: EventRecorder
    lease_timeout: float
    # Our own clock, monotonic: only intervals between our observations are measured.
    clock: Callable[[], float] = field(default=time.monotonic)

    def __post_init__(self) -> None:
        # Who waits for what the monitor sees; connected by whoever built both sides, so
        # the monitor needs to know none of its listeners.
        self._capacity_listeners: list[Callable[[], None]] = []
        self._fencing_listeners: list[Callable[[str], None]] = []
        self.hosts: dict[str, Body] = {}
        # host -> (the Lease's heartbeat fields as last seen, our clock when they changed)
        self.heartbeats: dict[str, tuple[tuple[str, ...], float]] = {}
        self.ready: dict[str, bool] = {}
        self.judged: set[str] = set()  # hosts seen since start-up (deleted ones stay)
        self.records: dict[str, inv.HostRecord] = {}
        self._usage: dict[str, inv.Resources] = {}  # as last published
        HOST_GAUGES.source = self._samples
        # host -> the body its newest record was built from, and that record: an unchanged
        # body is not read again (`host_record` depends on the body and readiness only).
        self._built: dict[str, tuple[Body, inv.HostRecord]] = {}
        self.started = self.clock()
        self._batch: dict[str, inv.HostRecord] = {}
        self._flushing: asyncio.Task[None] | None = None
        # The Ready condition is published through here: only changes, a bounded rate.
        self.status = HostStatusWriter(self.client, clock=self.clock)
        # Until this replica leads, events only fill the maps above (heartbeats are timed
        # all along, so a new leader judges hosts by what it saw, not from scratch).
        self.active = False

    def start(self) -> None:
        self.active = True
        self.status.start()

    async def stop(self) -> None:
        await self.status.stop()

    def on_capacity(self, listener: Callable[[], None]) -> None:
        """Call `listener` when a host may fit what did not fit before."""
        self._capacity_listeners.append(listener)

    def on_fencing_changed(self, listener: Callable[[str], None]) -> None:
        """Call `listener` with a host's name when it became fenced or unfenced."""
        self._fencing_listeners.append(listener)

    def is_ready(self, name: str) -> bool:
        return self.ready.get(name, False)

    def is_out_of_service(self, name: str) -> bool:
        """Has an administrator declared the host fenced (`spec.outOfService`)?"""
        body = self.hosts.get(name)
        return bool(body and (body.get("spec") or {}).get("outOfService"))

    def is_judged(self, name: str) -> bool:
        """Has the host's health been decided yet (its Host seen since we started)?"""
        return name in self.judged

    def is_fenced(self, name: str) -> bool:
        """May what the host's guests held be given to others?

        Only when its agent is alive (it tears its domains down itself) or an administrator
        marked it out of service. A host we do not know (yet) is not fenced: at start-up the
        Instances may be listed before the Hosts.
        """
        return self.is_ready(name) or self.is_out_of_service(name)

    def is_evacuable(self, name: str) -> bool:
        """Should the host's Instances be rebuilt elsewhere (Nova's evacuate)?

        Only a host both down (NotReady, as judged since we started) and declared off by an
        administrator: a Ready host marked out of service still runs its guests, and a
        NotReady one nobody fenced may still run them; either way a second copy would run.
        """
        return self.is_judged(name) and not self.is_ready(name) and self.is_out_of_service(name)

    # -- events ------------------------------------------------------------------------------

    async def host_event(self, body: Body | None, name: str) -> None:
        if not self.active:
            if body is None:
                self.hosts.pop(name, None)
            else:
                self.hosts[name] = body
            return
        if body is None:
            self.hosts.pop(name, None)
            self.records.pop(name, None)
            self._built.pop(name, None)
            self.ready.pop(name, None)
            self.status.forget(name)
            await asyncio.to_thread(inv.set_host_schedulable, self.placer.engine, name, False)
            await asyncio.to_thread(inv.set_host_ready, self.placer.engine, name, False)
            self.placer.host_changed(name)
            return
        was_out = self.is_out_of_service(name)
        self.hosts[name] = body
        await self._sync(name)
        if self.is_out_of_service(name) != was_out:
            self._fencing_changed(name)

    async def lease_event(self, host: str, body: Body | None) -> None:
        if body is None:
            self.heartbeats.pop(host, None)
        else:
            self._beat(host, body)
        if host in self.hosts and self.active:
            await self._sync(host)

    def _beat(self, host: str, body: Body) -> None:
        spec = body.get("spec") or {}
        beat = tuple(
            str(spec.get(key) or "") for key in ("holderIdentity", "acquireTime", "renewTime")
        )
        seen = self.heartbeats.get(host)
        if beat[1:] != ("", "") and (seen is None or seen[0] != beat):
            # A re-list or an unrelated edit shows the same values: not a heartbeat.
            self.heartbeats[host] = (beat, self.clock())

    def leases_listed(self, bodies: list[Body]) -> None:
        """Take the heartbeats of a Lease list (the watch's first, or a relist) at once:
        judged with the Hosts when those are listed, or at the next check."""
        for body in bodies:
            if (host := host_of_lease(name_of(body))) is not None:
                self._beat(host, body)

    async def hosts_listed(self, bodies: list[Body]) -> None:
        """Take a Host list (the watch's first, or a relist) at once: one judgement of
        them all, their records written in one transaction, before any host's own event."""
        was_out = {name_of(body): self.is_out_of_service(name_of(body)) for body in bodies}
        for body in bodies:
            self.hosts[name_of(body)] = body
        if not self.active:
            return
        await self._sync_many(list(was_out))
        for name, out in was_out.items():
            if self.is_out_of_service(name) != out:
                self._fencing_changed(name)

    async def check_leases(self) -> None:
        """Re-judge every host's health now (called periodically)."""
        await self._sync_many(list(self.hosts))

    async def publish_usage(self) -> None:
        """Take in the allocations of every host (exported as metrics when scraped), and
        publish them as each Host's `status.allocated` (only changes, at a bounded rate)."""
        self._usage = usage = await asyncio.to_thread(inv.host_usage, self.placer.engine)
        for name in self.records:
            if (body := self.hosts.get(name)) is not None:
                self.status.publish_allocated(name, body, usage.get(name, inv.Resources()))

    def _samples(self) -> Iterator[HostSample]:
        """Each known host's metrics: readiness now, capacity, allocations as last published."""
        for name, record in self.records.items():
            used = self._usage.get(name, inv.Resources())
            yield (
                name,
                bool(self.ready.get(name)),
                [(resource.value, amount) for resource, amount in record.capacity.items()],
                [(resource.value, amount) for resource, amount in used.items()],
            )

    async def _upsert(self, records: list[inv.HostRecord]) -> None:
        """Write hosts' records; records arriving together share one transaction.

        At start-up every Host arrives at once: one commit for all of them instead of one
        per host, which would hold the database's write lock away from placements.
        """
        for record in records:
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

    def _fencing_changed(self, name: str) -> None:
        for listener in self._fencing_listeners:
            listener(name)

    # -- the one place a host's state is decided ---------------------------------------------

    def _alive(self, name: str) -> tuple[bool, str]:
        seen = self.heartbeats.get(name)
        # Our grace period, not the Lease's own duration: as with kube-controller-manager's
        # node-monitor-grace-period, the judge sets the timeout.
        timeout = self.lease_timeout
        if seen is None:
            return False, "no heartbeat yet: the host's agent has not renewed its Lease"
        age = self.clock() - seen[1]
        if age > timeout:
            # No age in the message: it would change the condition, so be written, on every
            # check for as long as the host is down. lastTransitionTime tells since when.
            return False, (
                f"no heartbeat within the {timeout:.0f}s timeout: the Lease's renewTime has "
                "not changed"
            )
        return True, "the host's agent is heart-beating"

    async def _sync(self, name: str) -> None:
        await self._sync_many([name])

    async def _sync_many(self, names: list[str]) -> None:
        """Judge these hosts, write the records that changed (one transaction), then act on
        what changed: wake who waits for room, for fencing, publish the verdicts."""
        verdicts: dict[str, tuple[Body, Verdict, inv.HostRecord]] = {}
        for name in names:
            if (body := self.hosts.get(name)) is None:
                continue  # deleted while a judgement was on its way
            alive, message = self._alive(name)
            built, record = self._built.get(name, (None, None))
            if built is not body or record is None or record.ready != alive:
                record = host_record(body, alive)
                self._built[name] = (body, record)
            verdicts[name] = (body, Verdict(alive, message), record)
        changed = [r for n, (_, _, r) in verdicts.items() if self.records.get(n) != r]
        if changed:
            await self._upsert(changed)
        grew = False
        for name, (body, verdict, record) in verdicts.items():
            if name not in self.hosts:
                continue  # deleted meanwhile: nothing of it to publish
            grew |= self.records.get(name) != record and _more_room(self.records.get(name), record)
            self.records[name] = record
            self._judged(name, body, verdict)
        if grew:
            for listener in self._capacity_listeners:
                listener()

    def _judged(self, name: str, body: Body, verdict: Verdict) -> None:
        alive, message = verdict.alive, verdict.message
        was_ready = self.ready.get(name)
        self.ready[name] = alive
        self.judged.add(name)
        if was_ready is None or was_ready != alive:
            self._fencing_changed(name)  # the first judgement too: deletions may wait for it
        self.status.publish(name, body, verdict)
        if was_ready is not None and was_ready != alive:
            kind = "Normal" if alive else "Warning"
            reason = "HostReady" if alive else "HostNotReady"
            self.events.record(body, kind, reason, f"host {name}: {message}")
            log.warning("host %s is %s: %s", name, "ready" if alive else "NOT ready", message)


def fence_advice(host: str) -> str:
    """What an admin reads on an object deleted on an unfenced NotReady host."""
    return (
        f"host {host} is not ready: its guest may still run, so its resources stay held; "
        "bring the agent back or mark the Host out of service (kubectl patch host "
        f"""{host} --type=merge -p '{{"spec":{{"outOfService":true}}}}')"""
    )


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
