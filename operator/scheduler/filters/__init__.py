"""Host filters, one idea per module, looked up by name from the scheduler configuration."""

from kubenova.operator.scheduler.filters.affinity import ServerGroupAffinityFilter
from kubenova.operator.scheduler.filters.anti_affinity import ServerGroupAntiAffinityFilter
from kubenova.operator.scheduler.filters.availability_zone import AvailabilityZoneFilter
from kubenova.operator.scheduler.filters.base import HostFilter
from kubenova.operator.scheduler.filters.compute_service import ComputeServiceFilter
from kubenova.operator.scheduler.filters.disk import DiskFilter
from kubenova.operator.scheduler.filters.explicit_host import ExplicitHostFilter
from kubenova.operator.scheduler.filters.memory import MemoryFilter
from kubenova.operator.scheduler.filters.ready import ReadyFilter
from kubenova.operator.scheduler.filters.schedulable import SchedulableFilter
from kubenova.operator.scheduler.filters.vcpu import VcpuFilter

FILTERS: dict[str, type[HostFilter]] = {
    cls.name: cls
    for cls in (
        ReadyFilter,
        ComputeServiceFilter,
        SchedulableFilter,
        ExplicitHostFilter,
        AvailabilityZoneFilter,
        ServerGroupAffinityFilter,
        ServerGroupAntiAffinityFilter,
        VcpuFilter,
        MemoryFilter,
        DiskFilter,
    )
}

__all__ = [
    "FILTERS",
    "AvailabilityZoneFilter",
    "ComputeServiceFilter",
    "DiskFilter",
    "ExplicitHostFilter",
    "HostFilter",
    "MemoryFilter",
    "ReadyFilter",
    "SchedulableFilter",
    "ServerGroupAffinityFilter",
    "ServerGroupAntiAffinityFilter",
    "VcpuFilter",
]
