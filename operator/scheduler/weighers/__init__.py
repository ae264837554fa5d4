"""Host weighers, one idea per module, looked up by name from the scheduler configuration."""

from kubenova.operator.scheduler.weighers.base import HostWeigher
from kubenova.operator.scheduler.weighers.cpu import CpuWeigher
from kubenova.operator.scheduler.weighers.ram import RamWeigher
from kubenova.operator.scheduler.weighers.soft_affinity import SoftAffinityWeigher
from kubenova.operator.scheduler.weighers.soft_anti_affinity import SoftAntiAffinityWeigher

WEIGHERS: dict[str, type[HostWeigher]] = {
    cls.name: cls for cls in (RamWeigher, CpuWeigher, SoftAffinityWeigher, SoftAntiAffinityWeigher)
}

__all__ = [
    "WEIGHERS",
    "CpuWeigher",
    "HostWeigher",
    "RamWeigher",
    "SoftAffinityWeigher",
    "SoftAntiAffinityWeigher",
]
