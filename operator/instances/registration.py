"""kopf registration of Instances: each event is filed into the instance work queue."""

from __future__ import annotations

from typing import Any

import kopf

from kubenova.api.v1alpha1 import GROUP, VERSION
from kubenova.kube.objects import slim
from kubenova.operator.config import OperatorConfig
from kubenova.operator.runtime import runtime_of


def register(registry: kopf.OperatorRegistry, config: OperatorConfig) -> None:
    """Add the Instance watch; the reconciler and its queue live in the runtime."""

    @kopf.on.event(GROUP, VERSION, "instances", registry=registry)
    async def instance_event(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        runtime = runtime_of(memo)
        key = f"{body.metadata.namespace}/{body.metadata.name}"
        if type == "DELETED":
            runtime.instances.uids[key] = body.metadata.uid or ""
            runtime.instance_queue.put(key, None)
        else:
            runtime.instance_queue.put(key, slim(dict(body)))
