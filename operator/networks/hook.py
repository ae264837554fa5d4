"""The Instance hook: every NIC gets its fixed IP, MAC (and floating IP) when it is placed.

Allocated in the inventory before the hand-over, so the addresses land in the operator's
one status write (`status.addresses`); idempotent per (network, instance), so a retried or
rescheduled Instance keeps what it had. Released only when the Instance is released.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine

from kubenova.errors import NotFoundError, UserError
from kubenova.kube.meta import Body, deleting, name_of, namespace_of, uid_of
from kubenova.operator.catalog import Catalog
from kubenova.operator.networks import floating, ports, registry
from kubenova.operator.networks.records import network_record
from kubenova.operator.networks.settings import NetworkSettings

log = logging.getLogger(__name__)

NETWORK_KIND = "Network"


class NetworkInstanceHook:
    """Allocates on schedule, frees on release, and tells the Network reconciler."""

    def __init__(
        self,
        engine: Engine,
        catalog: Catalog,
        settings: NetworkSettings,
        changed: Callable[[str], None],
        key_of_uid: Callable[[str], str | None],
    ) -> None:
        self.engine = engine
        self.catalog = catalog
        self.settings = settings
        self.changed = changed  # mark a Network key for reconcile
        self.key_of_uid = key_of_uid  # Network uid -> key

    async def on_schedule(self, body: Body, host: str) -> dict[str, Any]:
        namespace, uid = namespace_of(body), uid_of(body)
        waiter = f"{namespace}/{name_of(body)}"
        addresses = []
        for attachment in (body.get("spec") or {}).get("networks") or []:
            key = f"{namespace}/{attachment['network']}"
            network_body = self._network(key, waiter)
            record = network_record(network_body)
            try:
                await asyncio.to_thread(registry.register, self.engine, record)
            except UserError as exc:
                raise UserError(
                    f"Network {record.name} cannot be used: {exc.message}", reason=exc.reason
                ) from exc
            port = await asyncio.to_thread(
                ports.allocate, self.engine, record, uid, attachment.get("ip")
            )
            address = {"network": record.name, "ip": port.ip, "mac": port.mac}
            if attachment.get("floatingIP"):
                address["floatingIP"] = await asyncio.to_thread(
                    floating.allocate,
                    self.engine,
                    self.settings.floating_pool,
                    record.uid,
                    uid,
                    port.ip,
                )
            addresses.append(address)
            self.changed(key)
        return {"addresses": addresses} if addresses else {}

    async def on_scheduled(self, body: Body) -> None:
        return None  # NICs are immutable (CRD rule); nothing changes after placement

    async def on_release(self, uid: str) -> None:
        network_uids = await asyncio.to_thread(ports.release, self.engine, uid)
        for network_uid in network_uids:
            key = self.key_of_uid(network_uid)
            if key is not None:
                self.changed(key)

    def _network(self, key: str, waiter: str) -> Body:
        found = self.catalog.get(NETWORK_KIND, key)
        if found is None:
            self.catalog.wait_for(NETWORK_KIND, key, waiter)
            raise NotFoundError(
                f"Network {key.split('/', 1)[1]} does not exist in this namespace "
                "(kubectl get networks shows what there is); the Instance is scheduled as "
                "soon as it is created",
                reason="NetworkNotFound",
            )
        if deleting(found):
            raise UserError(
                f"Network {key.split('/', 1)[1]} is being deleted: attach another network",
                reason="NetworkTerminating",
            )
        return found
