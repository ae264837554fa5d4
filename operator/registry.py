"""kopf registrations: thin — each handler files what it saw and returns.

kopf watches and dispatches; it writes nothing of its own (no progress annotations, no
finalizers, no posted log events): every write the operator makes is deliberate and
counted, made by the reconcilers behind the work queue.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from kubenova.api.v1alpha1 import GROUP, VERSION
from kubenova.kube import load_config
from kubenova.kube.objects import slim
from kubenova.operator.config import OperatorConfig
from kubenova.operator.controllers import register_all
from kubenova.operator.runtime import Runtime
from kubenova.wellknown import host_of_lease

log = logging.getLogger(__name__)


def build_registry(config: OperatorConfig) -> kopf.OperatorRegistry:
    """A registry with every handler of the operator, bound to `config`."""
    registry = kopf.OperatorRegistry()

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
        settings.posting.enabled = False
        settings.batching.batch_window = 0.005
        # A per-object worker lives this long after its last event; with 10,000 objects
        # created at once, a minute of idle workers is a minute of 10,000 tasks and queues.
        settings.batching.idle_timeout = 5
        settings.scanning.disabled = True
        settings.watching.server_timeout = 300
        settings.networking.request_timeout = 60
        runtime = Runtime.build(config)
        runtime.start()
        memo["runtime"] = runtime

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        # One source of credentials for kopf's watches and our own client.
        conn = load_config(config.kubeconfig)
        return kopf.ConnectionInfo(
            server=conn.server,
            ca_path=conn.ca_file,
            insecure=conn.insecure,
            token=conn.token,
            certificate_path=conn.cert_file,
            private_key_path=conn.key_file,
            default_namespace=conn.namespace,
        )

    @kopf.on.cleanup(registry=registry)
    async def cleanup(memo: kopf.Memo, **_: Any) -> None:
        runtime: Runtime | None = memo.get("runtime")
        if runtime:
            await runtime.stop()

    @kopf.on.event(GROUP, VERSION, "instances", registry=registry)
    async def instance_event(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        runtime: Runtime = memo["runtime"]
        key = f"{body.metadata.namespace}/{body.metadata.name}"
        if type == "DELETED":
            runtime.instances.uids[key] = body.metadata.uid or ""
            runtime.instance_queue.put(key, None)
        else:
            runtime.instance_queue.put(key, slim(dict(body)))

    for kind, plural, namespaced in (
        ("Flavor", "flavors", False),
        ("Image", "images", False),
        ("ServerGroup", "servergroups", True),
    ):
        _register_catalog(registry, kind, plural, namespaced)

    @kopf.on.event(GROUP, VERSION, "hosts", registry=registry)
    async def host_event(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        runtime: Runtime = memo["runtime"]
        name = body.metadata.name or ""
        await runtime.hosts.host_event(None if type == "DELETED" else dict(body), name)

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
        runtime: Runtime = memo["runtime"]
        host = host_of_lease(body.metadata.name or "")
        if host:
            await runtime.hosts.lease_event(host, None if type == "DELETED" else dict(body))

    register_all(registry, config)
    return registry


def _register_catalog(
    registry: kopf.OperatorRegistry, kind: str, plural: str, namespaced: bool
) -> None:
    @kopf.on.event(GROUP, VERSION, plural, registry=registry)
    async def catalog_event(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        runtime: Runtime = memo["runtime"]
        meta = body.metadata
        key = f"{meta.namespace}/{meta.name}" if namespaced else (meta.name or "")
        runtime.catalog.put(kind, key, None if type == "DELETED" else slim(dict(body)))
