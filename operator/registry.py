"""The operator's kopf registry: its own start-up, login and clean-up, then every domain's.

kopf watches and dispatches; it writes nothing of its own (no progress annotations, no
finalizers, no posted log events): every write the operator makes is deliberate and
counted, made by the reconcilers behind the work queues.

The domains are listed here, not discovered, so a reader (and every static tool) sees
each handler. Order matters: kopf runs start-up handlers and the handlers of one event in
the order they were registered, so the runtime comes first. Hosts and their Leases are
not kopf's: the runtime lists and watches them (`hosts.watches`) and hands Host events to
the domains that listen (`runtime.host_watches.on_host`); nor are the catalog's Flavors,
Images and ServerGroups (`catalog.watches`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import kopf

from kubenova.kube import load_config
from kubenova.operator.admission.registration import register as register_admission
from kubenova.operator.config import OperatorConfig
from kubenova.operator.migrations.drain import register as register_drains
from kubenova.operator.migrations.registration import register as register_migrations
from kubenova.operator.networks.registration import register as register_networks
from kubenova.operator.prefetch import Prefetch
from kubenova.operator.projects.registration import register as register_projects
from kubenova.operator.runtime import RUNTIME, Runtime
from kubenova.operator.volumes.registration import register as register_volumes

Registration = Callable[[kopf.OperatorRegistry, OperatorConfig], None]

DOMAINS: tuple[Registration, ...] = (
    register_admission,
    register_networks,
    register_projects,
    register_volumes,
    register_migrations,
    register_drains,
)


def build_registry(
    config: OperatorConfig, prefetch: Prefetch | None = None
) -> kopf.OperatorRegistry:
    """A registry with every handler of the operator, bound to `config` (its watches
    starting from what `prefetch` read)."""
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
        # Cut from our side too, should the server's end never arrive (a half-open
        # connection); kopf also reopens a stream silent for inactivity_timeout (70 s).
        settings.watching.client_timeout = 330
        settings.watching.connect_timeout = 10
        settings.networking.request_timeout = 60
        runtime = Runtime.build(config, prefetch or Prefetch())
        runtime.start()
        RUNTIME.put(memo, runtime)

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        # One source of credentials for kopf's watches and our own client. kopf calls this
        # again after a 401, so a rotated token file is read anew then.
        conn = load_config(config.kubeconfig)
        return kopf.ConnectionInfo(
            server=conn.server,
            ca_path=conn.ca_file,
            insecure=conn.insecure,
            token=conn.current_token(),
            certificate_path=conn.cert_file,
            private_key_path=conn.key_file,
            default_namespace=conn.namespace,
        )

    for register in DOMAINS:
        register(registry, config)

    # Registered last, so it runs after the domains stopped their queues: then the leader
    # Lease is released (no write of ours can follow) and the clients closed.
    @kopf.on.cleanup(registry=registry)
    async def cleanup(memo: kopf.Memo, **_: Any) -> None:
        runtime = RUNTIME.find(memo)
        if runtime:
            await runtime.stop()

    return registry
