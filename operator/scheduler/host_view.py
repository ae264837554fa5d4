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

from sqlalchemy import Engine

from kubenova.operator.inventory import Claim, HostSnapshot, Resources, load_hosts
from kubenova.operator.scheduler.request import HostState


class HostView:
    """HostStates by name, in a list the scheduler can scan without copying."""

    def __init__(self, engine: Engine, max_age: float = 30.0) -> None:
        self.engine = engine
        self.max_age = max_age
        self._hosts: list[HostState] = []
        self._index: dict[str, int] = {}
        self._loaded_at = -float("inf")
        self._lock = threading.Lock()

    def hosts(self) -> list[HostState]:
        """Every known host (reloaded first when the view is older than max_age)."""
        self.refresh_if_older(self.max_age)
        return self._hosts

    def refresh_if_older(self, seconds: float) -> bool:
        """Reload everything if the last full load is older than `seconds`; True if it did."""
        if time.monotonic() - self._loaded_at < seconds:
            return False
        self.refresh()
        return True

    def refresh(self, names: Iterable[str] | None = None) -> None:
        """Reload all hosts, or only those named (a host no longer in the database is dropped)."""
        if names is None:
            loaded_at = time.monotonic()
            states = [HostState.from_snapshot(s) for s in load_hosts(self.engine)]
            with self._lock:
                self._hosts = states
                self._index = {host.name: i for i, host in enumerate(states)}
                self._loaded_at = loaded_at
            return
        wanted = set(names)
        found = {s.record.name: s for s in load_hosts(self.engine, wanted)}
        for name in wanted:
            if name in found:
                self.update(found[name])
            else:
                self._drop(name)

    def update(self, snapshot: HostSnapshot) -> None:
        """Take a host's state as just read from the database."""
        self._put(HostState.from_snapshot(snapshot))

    def claimed(self, claim: Claim) -> None:
        """Account for a claim this process made."""
        self._adjust(claim.host, claim.resources)

    def released(self, claim: Claim) -> None:
        """Account for a release this process made."""
        self._adjust(claim.host, Resources() - claim.resources)

    def _adjust(self, name: str, resources: Resources) -> None:
        with self._lock:
            i = self._index.get(name)
            if i is not None:
                self._hosts[i] = self._hosts[i].after_claim(resources)

    def _put(self, state: HostState) -> None:
        with self._lock:
            i = self._index.get(state.name)
            if i is None:
                self._index[state.name] = len(self._hosts)
                self._hosts.append(state)
            else:
                self._hosts[i] = state

    def _drop(self, name: str) -> None:
        with self._lock:
            if name in self._index:
                # A new list: a decision scanning the old one is not disturbed.
                self._hosts = [host for host in self._hosts if host.name != name]
                self._index = {host.name: i for i, host in enumerate(self._hosts)}
