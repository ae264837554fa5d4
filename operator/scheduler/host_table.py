"""Every host as columns (numpy arrays) sorted by name, so a decision costs tens of µs.

Filters and weighers work on whole columns (`hosts.free_memory_mb >= need`), which
keeps each of them one line and the scheduler fast on 10,000 hosts. Row i of every
column is the host `names[i]`; rows are sorted by name, so "the first of equals" is
"the smallest name" (the scheduler's tie-break).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator

import numpy as np
from numpy.typing import NDArray

from kubenova.operator.resources import Resources
from kubenova.operator.scheduler.request import HostState

Mask = NDArray[np.bool_]
Column = NDArray[np.int64]


class HostTable:
    """HostStates as columns; updated in place when a claim or release changes a host."""

    def __init__(self, states: Iterable[HostState] = ()) -> None:
        self._set_rows(sorted(states, key=lambda state: state.name))

    def _set_rows(self, rows: list[HostState]) -> None:
        self.names: list[str] = [row.name for row in rows]
        self.index: dict[str, int] = {name: i for i, name in enumerate(self.names)}
        if len(self.index) != len(rows):
            raise ValueError("host names must be unique")
        # object, not fixed-width str: a longer zone name set in place must not be cut short
        self.name: NDArray[np.object_] = np.array(self.names, dtype=np.object_)
        self.zone: NDArray[np.object_] = np.array(
            [r.availability_zone for r in rows], dtype=np.object_
        )
        self.ready: Mask = np.array([r.ready for r in rows], dtype=np.bool_)
        self.schedulable: Mask = np.array([r.schedulable for r in rows], dtype=np.bool_)
        self.free_vcpus: Column = np.array([r.free_vcpus for r in rows], dtype=np.int64)
        self.free_memory_mb: Column = np.array([r.free_memory_mb for r in rows], dtype=np.int64)
        self.free_disk_gb: Column = np.array([r.free_disk_gb for r in rows], dtype=np.int64)
        self.generation: Column = np.array([r.generation for r in rows], dtype=np.int64)
        self.compute: Mask = np.array([r.compute for r in rows], dtype=np.bool_)

    def __len__(self) -> int:
        return len(self.names)

    def __iter__(self) -> Iterator[HostState]:
        return (self.row(i) for i in range(len(self.names)))

    def row(self, i: int) -> HostState:
        """Host number i as a HostState."""
        return HostState(
            name=self.names[i],
            availability_zone=str(self.zone[i]),
            ready=bool(self.ready[i]),
            schedulable=bool(self.schedulable[i]),
            free_vcpus=int(self.free_vcpus[i]),
            free_memory_mb=int(self.free_memory_mb[i]),
            free_disk_gb=int(self.free_disk_gb[i]),
            generation=int(self.generation[i]),
            compute=bool(self.compute[i]),
        )

    def rows(self, mask: Mask) -> list[HostState]:
        """The hosts where `mask` is true."""
        return [self.row(int(i)) for i in np.flatnonzero(mask)]

    def put(self, state: HostState) -> None:
        """Set a host's row, adding the host if it is new."""
        i = self.index.get(state.name)
        if i is None:
            rows = list(self)
            rows.insert(bisect.bisect(self.names, state.name), state)
            self._set_rows(rows)
            return
        self.zone[i] = state.availability_zone
        self.ready[i] = state.ready
        self.schedulable[i] = state.schedulable
        self.free_vcpus[i] = state.free_vcpus
        self.free_memory_mb[i] = state.free_memory_mb
        self.free_disk_gb[i] = state.free_disk_gb
        self.generation[i] = state.generation
        self.compute[i] = state.compute

    def take(self, name: str, resources: Resources) -> None:
        """Count `resources` (negative to give back) as allocated on host `name`, if known."""
        i = self.index.get(name)
        if i is not None:
            self.free_vcpus[i] -= resources.vcpus
            self.free_memory_mb[i] -= resources.memory_mb
            self.free_disk_gb[i] -= resources.disk_gb

    def drop(self, name: str) -> None:
        """Forget a host (it left the inventory)."""
        if name in self.index:
            self._set_rows([row for row in self if row.name != name])
