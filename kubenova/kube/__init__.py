"""A small asyncio Kubernetes client shared by the operator and the agents.

kopf watches and dispatches for the operator; this client makes the targeted writes
(merge patches of status and metadata, Events, Leases) and the label-selector watches
the agents need, and counts every write so tests and benchmarks can hold the line on
API traffic.
"""

from kubenova.errors import ApiError, Conflict, NotFound

from .client import KubeClient, WatchEvent
from .config import ConnectionConfig, load_config
from .paths import ResourceKind, kubenova_kind

__all__ = [
    "ApiError",
    "Conflict",
    "ConnectionConfig",
    "KubeClient",
    "NotFound",
    "ResourceKind",
    "WatchEvent",
    "kubenova_kind",
    "load_config",
]
