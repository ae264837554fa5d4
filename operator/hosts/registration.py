"""kopf registration of Hosts: Host events and the agents' Leases, for the host monitor."""

from __future__ import annotations

from typing import Any

import kopf

from kubenova.api.v1alpha1 import GROUP, VERSION
from kubenova.operator.config import OperatorConfig
from kubenova.operator.runtime import runtime_of
from kubenova.wellknown import host_of_lease


def register(registry: kopf.OperatorRegistry, config: OperatorConfig) -> None:
    """Add the Host watch and the watch of the hosts' Leases in the system namespace."""

    @kopf.on.event(GROUP, VERSION, "hosts", registry=registry)
    async def host_event(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        name = body.metadata.name or ""
        await runtime_of(memo).hosts.host_event(None if type == "DELETED" else dict(body), name)

    @kopf.on.event(
        "coordination.k8s.io",
        "v1",
        "leases",
        registry=registry,
        when=lambda namespace, name, **_: (
            namespace == config.system_namespace and host_of_lease(name) is not None
        ),
    )
    async def lease_event(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        host = host_of_lease(body.metadata.name or "")
        if host:
            await runtime_of(memo).hosts.lease_event(
                host, None if type == "DELETED" else dict(body)
            )
