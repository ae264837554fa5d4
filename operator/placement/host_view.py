"""A cheap in-memory view of every host's free capacity, so a decision reads no host rows.

The view is loaded from the inventory, updated by the claims and releases made through
it, corrected from the database whenever a claim is refused (the claim carries the
host's fresh state), and reloaded in full when older than `max_age`. It may be stale;
that only costs a refused claim and a retry, never an overcommit, because the claim
re-checks everything in the database. Call `refresh([name])` after changing a host.
One view may be shared by the threads of one process: changes to it are serialised.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

from sqlalchemy import Connection, Engine

from kubenova.operator.inventory import Claim, HostSnapshot, load_hosts
from kubenova.operator.resources import Resources
from kubenova.operator.scheduler import HostState, HostTable


def host_state(snapshot: HostSnapshot) -> HostState:
    """The scheduler's row for a host: free amounts are capacity x overcommit minus allocated."""
    record = snapshot.record
    free = record.overcommit.capacity(record.capacity) - snapshot.used
    return HostState(
        name=record.name,
        availability_zone=record.availability_zone,
        ready=record.ready,
        schedulable=record.schedulable,
        free_vcpus=free.vcpus,
        free_memory_mb=free.memory_mb,
        free_disk_gb=free.disk_gb,
        generation=snapshot.generation,
        compute="compute" in record.services,
    )


class HostView:
    """A HostTable kept close to the inventory's truth."""

    def __init__(self, engine: Engine, max_age: float = 30.0) -> None:
        self.engine = engine
        self.max_age = max_age
        self._table = HostTable()
        self._loaded_at = -float("inf")
        self._lock = threading.Lock()

    def hosts(self) -> HostTable:
        """Every known host (reloaded first when the view is older than max_age)."""
        self.refresh_if_older(self.max_age)
        return self._table

    def refresh_if_older(self, seconds: float, bind: Connection | None = None) -> bool:
        """Reload everything if the last full load is older than `seconds`; True if it did."""
        if time.monotonic() - self._loaded_at < seconds:
            return False
        self.refresh(bind=bind)
        return True

    def refresh(
        self, names: Iterable[str] | None = None, *, bind: Connection | None = None
    ) -> None:
        """Reload all hosts, or only those named (a host no longer in the database is dropped).

        `bind`: read inside that open transaction (a batch sees its own claims).
        """
        source = bind if bind is not None else self.engine
        if names is None:
            loaded_at = time.monotonic()
            table = HostTable(host_state(s) for s in load_hosts(source))
            with self._lock:
                self._table = table
                self._loaded_at = loaded_at
            return
        wanted = set(names)
        found = {s.record.name: s for s in load_hosts(source, wanted)}
        with self._lock:
            for name in wanted:
                if name in found:
                    self._table.put(host_state(found[name]))
                else:
                    self._table.drop(name)

    def outdate(self) -> None:
        """Reload everything before the next decision (what it counts may not be so)."""
        with self._lock:
            self._loaded_at = -float("inf")

    def update(self, snapshot: HostSnapshot) -> None:
        """Take a host's state as just read from the database."""
        with self._lock:
            self._table.put(host_state(snapshot))

    def claimed(self, claim: Claim) -> None:
        """Account for a claim this process made."""
        with self._lock:
            self._table.take(claim.host, claim.resources)

    def released(self, claim: Claim) -> None:
        """Account for a release this process made."""
        with self._lock:
            self._table.take(claim.host, Resources() - claim.resources)
