"""kopf registration of the catalog: Flavors, Images and ServerGroups, kept as they are seen."""

from __future__ import annotations

from typing import Any

import kopf

from kubenova.api.v1alpha1 import GROUP, VERSION
from kubenova.kube.objects import slim
from kubenova.operator.config import OperatorConfig
from kubenova.operator.runtime import runtime_of

KINDS = (
    ("Flavor", "flavors", False),
    ("Image", "images", False),
    ("ServerGroup", "servergroups", True),
)


def register(registry: kopf.OperatorRegistry, config: OperatorConfig) -> None:
    """Add one watch per catalogued kind, each filing into the runtime's catalog."""
    for kind, plural, namespaced in KINDS:
        _register_catalog(registry, kind, plural, namespaced)


def _register_catalog(
    registry: kopf.OperatorRegistry, kind: str, plural: str, namespaced: bool
) -> None:
    @kopf.on.event(GROUP, VERSION, plural, registry=registry)
    async def catalog_event(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        meta = body.metadata
        key = f"{meta.namespace}/{meta.name}" if namespaced else (meta.name or "")
        runtime_of(memo).catalog.put(kind, key, None if type == "DELETED" else slim(dict(body)))
