"""The compute service's driver layer: one contract, a libvirt/QEMU driver and a fake.

Use `ComputeDriver` (driver.py) as the type, build a `DomainSpec` (spec.py), and pick
`LibvirtDriver(LibvirtSettings(...))` (libvirt_qemu.py) on real hosts or
`FakeComputeDriver(state_dir)` (fake.py) for scale tests.
"""

from kubenova.agents.compute.driver import (
    ComputeDriver,
    ComputeFailure,
    DomainState,
    HypervisorUnavailable,
    InstanceInfo,
    InstanceNotFound,
    LifecycleEvent,
)
from kubenova.agents.compute.spec import (
    CloudInitSeed,
    DiskAttachment,
    DiskFormat,
    DomainSpec,
    FileVolume,
    IscsiAuth,
    IscsiVolume,
    Nic,
    RootDisk,
    domain_name_for,
)

__all__ = [
    "CloudInitSeed",
    "ComputeDriver",
    "ComputeFailure",
    "DiskAttachment",
    "DiskFormat",
    "DomainSpec",
    "DomainState",
    "FileVolume",
    "HypervisorUnavailable",
    "InstanceInfo",
    "InstanceNotFound",
    "IscsiAuth",
    "IscsiVolume",
    "LifecycleEvent",
    "Nic",
    "RootDisk",
    "domain_name_for",
]
