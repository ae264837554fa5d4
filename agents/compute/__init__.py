"""The compute service's driver layer: one contract, a libvirt/QEMU driver and a fake.

Use `ComputeDriver` (driver.py) as the type, build an `InstanceSpec` (spec.py), and pick
`LibvirtDriver(LibvirtSettings(...))` on real hosts or `FakeDriver(state_dir)` for scale tests.
"""

from kubenova.agents.compute.driver import (
    ComputeDriver,
    ComputeFailure,
    HypervisorUnavailable,
    InstanceInfo,
    InstanceNotFound,
    LifecycleEvent,
    PowerState,
)
from kubenova.agents.compute.spec import (
    CloudInitSeed,
    DiskFormat,
    FileVolume,
    InstanceSpec,
    IscsiAuth,
    IscsiVolume,
    KernelBoot,
    Nic,
    RootDisk,
    VolumeAttachment,
    domain_name_for,
)

__all__ = [
    "CloudInitSeed",
    "ComputeDriver",
    "ComputeFailure",
    "DiskFormat",
    "FileVolume",
    "HypervisorUnavailable",
    "InstanceInfo",
    "InstanceNotFound",
    "InstanceSpec",
    "IscsiAuth",
    "IscsiVolume",
    "KernelBoot",
    "LifecycleEvent",
    "Nic",
    "PowerState",
    "RootDisk",
    "VolumeAttachment",
    "domain_name_for",
]
