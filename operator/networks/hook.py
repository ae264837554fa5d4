"""The Instance hook: every NIC gets its fixed IP, MAC (and floating IP) with its claim.

The Networks are resolved from the catalog while the placement request is built (a
missing or terminating one refuses before anything is claimed); the addresses are then
taken inside the claim's own transaction (`NicStep`), so an address in use or an
exhausted pool leaves no claim behind, and they land in the operator's one status write
(`status.addresses`). Idempotent per (network, instance): a retried or rescheduled
Instance keeps what it had. Released only when the Instance is released, except a
floating IP, which follows its NIC's floatingIP on a placed Instance (`association`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine

from kubenova.errors import NotFoundError, UserError
from kubenova.kube.meta import Body, deleting, name_of, namespace_of
from kubenova.operator.catalog import Catalog
from kubenova.operator.inventory import Consumer
from kubenova.operator.networks import floating, ports, registry
from kubenova.operator.networks.floating import Pool
from kubenova.operator.networks.records import NetworkRecord, network_record
from kubenova.operator.networks.settings import NetworkSettings

log = logging.getLogger(__name__)

NETWORK_KIND = "Network"


@dataclass(frozen=True)
class Nic:
    """One entry of spec.networks, its Network resolved."""

    network: NetworkRecord
    ip: str | None
    floating_ip: bool


@dataclass(frozen=True)
class NicStep:
    """The claim step taking every NIC's addresses (an `inventory.ClaimStep`)."""

    nics: tuple[Nic, ...]
    pool: Pool | None

    def take(self, connection: Connection, consumer: Consumer, host: str) -> Mapping[str, Any]:
        addresses = []
        for nic in self.nics:
            record = nic.network
            try:
                registry.register_in(connection, record)
            except UserError as exc:
                raise UserError(
                    f"Network {record.name} cannot be used: {exc.message}", reason=exc.reason
                ) from exc
            port = ports.allocate_in(connection, record, consumer.uid, nic.ip)
            address = {"network": record.name, "ip": port.ip, "mac": port.mac}
            if nic.floating_ip:
                address["floatingIP"] = floating.allocate_in(
                    connection, self.pool, record.uid, consumer.uid, port.ip
                )
            addresses.append(address)
        return {"addresses": addresses}


class NetworkInstanceHook:
    """Resolves NICs for the claim, frees them on release, and tells the Network reconciler."""

    def __init__(
        self,
        engine: Engine,
        catalog: Catalog,
        settings: NetworkSettings,
        changed: Callable[[str], None],
        key_of_uid: Callable[[str], str | None],
        *,
        follow_floating: Callable[[Body], Awaitable[None]],
    ) -> None:
        self.engine = engine
        self.catalog = catalog
        self.settings = settings
        self.changed = changed  # mark a Network key for reconcile
        self.key_of_uid = key_of_uid  # Network uid -> key
        # A placed Instance's floating IPs follow its NICs (`association`).
        self.follow_floating = follow_floating

    def claim_step(self, body: Body) -> NicStep | None:
        namespace = namespace_of(body)
        waiter = f"{namespace}/{name_of(body)}"
        nics = []
        for attachment in (body.get("spec") or {}).get("networks") or []:
            found = self._network(f"{namespace}/{attachment['network']}", waiter)
            nics.append(
                Nic(network_record(found), attachment.get("ip"), bool(attachment.get("floatingIP")))
            )
        return NicStep(tuple(nics), self.settings.floating_pool) if nics else None

    def on_placed(self, body: Body, host: str) -> None:
        namespace = namespace_of(body)
        for attachment in (body.get("spec") or {}).get("networks") or []:
            self.changed(f"{namespace}/{attachment['network']}")

    async def on_scheduled(self, body: Body) -> None:
        # NICs are fixed (CRD rules) but for their floating IP, associated or released here.
        await self.follow_floating(body)

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
