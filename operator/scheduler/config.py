"""Which filters run (in order) and which weighers score, with their multipliers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from kubenova.operator.scheduler.filters import FILTERS
from kubenova.operator.scheduler.weighers import WEIGHERS

# Cheap state checks first; each filter sees only the survivors of the previous ones.
DEFAULT_FILTERS = (
    "ready",
    "compute-service",
    "schedulable",
    "explicit-host",
    "availability-zone",
    "server-group-affinity",
    "server-group-anti-affinity",
    "vcpu",
    "memory",
    "disk",
)
# Spread on free RAM then CPU (Nova's default); make a multiplier negative to pack.
DEFAULT_WEIGHERS = (
    ("ram", 1.0),
    ("cpu", 1.0),
    ("soft-affinity", 1.0),
    ("soft-anti-affinity", 1.0),
)


@dataclass(frozen=True, slots=True)
class SchedulerConfig:
    """Filter names in order, (weigher name, multiplier) pairs, and how many alternates to keep."""

    filters: tuple[str, ...] = DEFAULT_FILTERS
    weighers: tuple[tuple[str, float], ...] = DEFAULT_WEIGHERS
    alternates: int = 2

    def __post_init__(self) -> None:
        unknown = [name for name in self.filters if name not in FILTERS]
        unknown += [name for name, _ in self.weighers if name not in WEIGHERS]
        if unknown:
            raise ValueError(
                f"unknown scheduler filter/weigher {', '.join(unknown)}; "
                f"filters are {', '.join(FILTERS)}; weighers are {', '.join(WEIGHERS)}"
            )
        if self.alternates < 0:
            raise ValueError("alternates must be 0 or more")

    @classmethod
    def from_settings(
        cls,
        filters: Sequence[str] | None = None,
        weighers: Mapping[str, float] | None = None,
        alternates: int = 2,
    ) -> SchedulerConfig:
        """From operator settings: a list of filter names and a name -> multiplier mapping."""
        return cls(
            filters=tuple(filters) if filters is not None else DEFAULT_FILTERS,
            weighers=tuple(weighers.items()) if weighers is not None else DEFAULT_WEIGHERS,
            alternates=alternates,
        )
