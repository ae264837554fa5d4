"""A small asyncio Kubernetes client shared by the operator and the agents.

kopf watches and dispatches for the operator; this client makes the targeted writes
(merge patches of status and metadata, Events, Leases) and the label-selector watches
the agents need, and counts every write so tests and benchmarks can hold the line on
API traffic.

The client (aiohttp: ~0.1 s to import) is loaded on first use of its names, so the
operator's prefetch threads can read the kubeconfig and its first lists with the
standard library while the rest imports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kubenova.errors import ApiError, Conflict, NotFound

from .config import ConnectionConfig, load_config
from .paths import ResourceKind, kubenova_kind

if TYPE_CHECKING:
    from .client import KubeClient, WatchEvent

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


def __getattr__(name: str) -> Any:
    if name in ("KubeClient", "WatchEvent"):
        from . import client  # noqa: PLC0415 - see the docstring

        return getattr(client, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
