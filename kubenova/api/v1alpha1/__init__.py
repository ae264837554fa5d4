"""API group kubenova.io, version v1alpha1: the resource models (data only)."""

from kubenova.api.group import GROUP, VERSION

from .flavor import Flavor, FlavorSpec
from .host import (
    DrainPhase,
    DrainStatus,
    Host,
    HostResources,
    HostService,
    HostSpec,
    HostStatus,
    Overcommit,
)
from .image import Image, ImageFormat, ImageSpec, ImageStatus
from .instance import (
    EVACUATE_ANNOTATION,
    Evacuation,
    Instance,
    InstancePhase,
    InstanceResources,
    InstanceSpec,
    InstanceStatus,
    PowerState,
    ResizePolicy,
)
from .meta import API_VERSION, Condition, ConditionStatus, CRDInfo, Resource
from .migration import (
    InstanceMigration,
    InstanceMigrationSpec,
    InstanceMigrationStatus,
    MigrationEndpoint,
    MigrationMode,
    MigrationPhase,
    MigrationProgress,
)
from .network import Network, NetworkMode, NetworkSpec, NetworkStatus, Port, TunnelEndpoint
from .project import Project, ProjectSpec, ProjectStatus, Quota
from .servergroup import ServerGroup, ServerGroupPolicy, ServerGroupSpec
from .volume import (
    AttachmentState,
    Volume,
    VolumeAttachmentStatus,
    VolumePhase,
    VolumeProtocol,
    VolumeSpec,
    VolumeStatus,
    VolumeTarget,
)

ALL_RESOURCES: tuple[type[Resource], ...] = (
    Instance,
    InstanceMigration,
    Volume,
    Network,
    Flavor,
    Image,
    Host,
    ServerGroup,
    Project,
)

__all__ = [
    "ALL_RESOURCES",
    "API_VERSION",
    "EVACUATE_ANNOTATION",
    "GROUP",
    "VERSION",
    "AttachmentState",
    "CRDInfo",
    "Condition",
    "ConditionStatus",
    "DrainPhase",
    "DrainStatus",
    "Evacuation",
    "Flavor",
    "FlavorSpec",
    "Host",
    "HostResources",
    "HostService",
    "HostSpec",
    "HostStatus",
    "Image",
    "ImageFormat",
    "ImageSpec",
    "ImageStatus",
    "Instance",
    "InstanceMigration",
    "InstanceMigrationSpec",
    "InstanceMigrationStatus",
    "InstancePhase",
    "InstanceResources",
    "InstanceSpec",
    "InstanceStatus",
    "MigrationEndpoint",
    "MigrationMode",
    "MigrationPhase",
    "MigrationProgress",
    "Network",
    "NetworkMode",
    "NetworkSpec",
    "NetworkStatus",
    "Overcommit",
    "Port",
    "PowerState",
    "Project",
    "ProjectSpec",
    "ProjectStatus",
    "Quota",
    "ResizePolicy",
    "Resource",
    "ServerGroup",
    "ServerGroupPolicy",
    "ServerGroupSpec",
    "TunnelEndpoint",
    "Volume",
    "VolumeAttachmentStatus",
    "VolumePhase",
    "VolumeProtocol",
    "VolumeSpec",
    "VolumeStatus",
    "VolumeTarget",
]
