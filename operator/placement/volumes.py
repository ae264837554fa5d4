"""Where a Volume goes: a Ready, schedulable host running the volume service, in the asked
availability zone, with room for its size in DISK_GB; the one with most free disk first.

`rank` is pure (hosts in, candidates or a reason out); `place` claims the disk in the
inventory, trying the next candidate when a claim loses a race, and is idempotent per
volume uid (a retry finds the existing claim). The claim also charges the project's
volumes/volumeGiB quota; a Volume over it stays unplaced (reason QuotaExceeded), with or
without the admission webhook.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Engine

from kubenova.operator import inventory as inv
from kubenova.operator.inventory.claims import VOLUME_KIND
from kubenova.operator.resources import Consumer, Resources

VOLUME_SERVICE = "volume"


@dataclass(frozen=True, slots=True)
class VolumeRequest:
    """One volume to place."""

    uid: str
    name: str
    namespace: str
    size_gib: int
    availability_zone: str | None = None

    @property
    def consumer(self) -> Consumer:
        return Consumer(self.uid, self.name, self.namespace, kind=VOLUME_KIND)

    @property
    def resources(self) -> Resources:
        return Resources(disk_gb=self.size_gib)


@dataclass(frozen=True, slots=True)
class NoVolumeHost:
    """The volume cannot be placed now; `message` says why (the hosts left out, or quota)."""

    message: str
    reason: str = "NoValidHost"


def free_disk(snapshot: inv.HostSnapshot) -> int:
    record = snapshot.record
    return record.overcommit.capacity(record.capacity).disk_gb - snapshot.used.disk_gb


def rank(hosts: Sequence[inv.HostSnapshot], request: VolumeRequest) -> list[str] | NoVolumeHost:
    """Hosts that can take the volume, most free disk first (ties by name), or why none can."""
    reasons: Counter[str] = Counter()
    most_free = 0
    fitting: list[tuple[int, str]] = []
    for snapshot in hosts:
        record = snapshot.record
        if VOLUME_SERVICE not in record.services:
            reasons["do not run the volume service"] += 1
        elif not record.ready:
            reasons["are not ready"] += 1
        elif not record.schedulable:
            reasons["are cordoned"] += 1
        elif request.availability_zone and record.availability_zone != request.availability_zone:
            reasons[f"are outside availability zone {request.availability_zone}"] += 1
        elif free_disk(snapshot) < request.size_gib:
            most_free = max(most_free, free_disk(snapshot))
            reasons["lack disk"] += 1
        else:
            fitting.append((-free_disk(snapshot), record.name))
    if fitting:
        return [name for _, name in sorted(fitting)]
    if not hosts:
        return NoVolumeHost("0 hosts: no host is registered")
    phrases = []
    for reason, count in reasons.items():
        phrase = f"{count} {reason}"
        if reason == "lack disk":
            phrase += f" (need {request.size_gib} GiB, max free {most_free} GiB)"
        phrases.append(phrase)
    total = "1 host" if len(hosts) == 1 else f"{len(hosts)} hosts"
    return NoVolumeHost(f"{total}: {', '.join(phrases)}")


def place(engine: Engine, request: VolumeRequest) -> inv.Claim | NoVolumeHost:
    """Claim the volume's disk on the best host (or return the claim it already has)."""
    existing = inv.find_claim(engine, request.uid)
    if existing is not None:
        return existing
    for _ in range(3):  # hosts filled by racing claims are re-read and ranked again
        ranked = rank(inv.load_hosts(engine), request)
        if isinstance(ranked, NoVolumeHost):
            return ranked
        for host in ranked:
            try:
                return inv.claim(engine, request.consumer, host, request.resources)
            except inv.QuotaExceeded as exceeded:
                return NoVolumeHost(str(exceeded), reason="QuotaExceeded")  # any host alike
            except (inv.ClaimRefused, inv.UnknownHost):
                continue
    return inv.find_claim(engine, request.uid) or NoVolumeHost(
        "every host with room was filled by other claims meanwhile; retrying"
    )
