"""Floating IPs associated with or released from a placed Instance (its NICs' floatingIP
turned on or off after creation: `openstack server add floating ip`, or kubectl).

The inventory decides, in one transaction (`floating.follow`: the address allocated or
released and the project's floatingIPs quota re-charged together); `status.addresses` is
then written from what the inventory holds. An operator killed between the two sees the
status still differ from the spec on the next event and writes it (the transaction is
idempotent per Instance uid and network), so nothing is left half-done. The Network is
marked for reconcile: its `status.ports` carries the mapping to the gateway host's agent,
which rebuilds its NAT without touching the guest.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Engine

from kubenova.errors import Conflict, UserError
from kubenova.kube import KubeClient, NotFound
from kubenova.kube.events import EventRecorder
from kubenova.kube.meta import Body, deleting, key_of, name_of, namespace_of, uid_of
from kubenova.kube.objects import apply_status
from kubenova.operator.catalog import Catalog
from kubenova.operator.instances import INSTANCES, still_handed_over
from kubenova.operator.inventory.quotas import QuotaExceeded
from kubenova.operator.networks import floating
from kubenova.operator.networks.floating import Pool
from kubenova.operator.resources import Consumer
from kubenova.wellknown import OPERATOR_MANAGER

log = logging.getLogger(__name__)

NETWORK_KIND = "Network"  # the catalog's kind for Networks (as the hook files them)


def differs(body: Body) -> bool:
    """Does a NIC's floatingIP in the spec disagree with status.addresses? (cheap)"""
    wanted = {
        nic["network"]: bool(nic.get("floatingIP"))
        for nic in (body.get("spec") or {}).get("networks") or []
    }
    return any(
        wanted.get(address.get("network"), False) != bool(address.get("floatingIP"))
        for address in (body.get("status") or {}).get("addresses") or []
    )


class FloatingAssociations:
    """Makes a placed Instance's floating IPs follow its spec (the networks hook calls it)."""

    def __init__(
        self,
        client: KubeClient,
        engine: Engine,
        events: EventRecorder,
        pool: Pool | None,
        *,
        catalog: Catalog,
        changed: Callable[[str], None],
    ) -> None:
        self.client = client
        self.engine = engine
        self.events = events
        self.pool = pool
        self.catalog = catalog
        self.changed = changed  # mark a Network key for reconcile

    async def follow(self, body: Body) -> None:
        status = body.get("status") or {}
        host = status.get("host")
        if deleting(body) or not host or not differs(body):
            return
        namespace = namespace_of(body)
        wanted = {
            nic["network"]: bool(nic.get("floatingIP"))
            for nic in (body.get("spec") or {}).get("networks") or []
        }
        addresses: list[dict[str, Any]] = status.get("addresses") or []
        uids: dict[str, str] = {}
        for address in addresses:
            network_key = f"{namespace}/{address['network']}"
            network = self.catalog.get(NETWORK_KIND, network_key)
            if network is None:
                # Not seen yet (start-up: Instances may be listed before kopf's Networks):
                # the Instance is reconciled again when it arrives.
                self.catalog.wait_for(NETWORK_KIND, network_key, key_of(body))
                return
            uids[address["network"]] = uid_of(network)
        consumer = Consumer(uid_of(body), name_of(body), namespace)
        wishes = [(uids[a["network"]], wanted.get(a["network"], False)) for a in addresses]
        try:
            held = await asyncio.to_thread(
                floating.follow, self.engine, self.pool, consumer, wishes
            )
        except (UserError, QuotaExceeded) as exc:
            # Admission refuses this at apply time; here only a race (or a quota or pool
            # changed since) gets through: the spec asks, the status says it has none.
            message = f"no floating IP associated: {exc.message}"
            log.warning("instance %s: %s", key_of(body), message)
            self.events.record(body, "Warning", "FloatingIPRefused", message)
            return
        await self._publish(body, host, addresses, uids, held)

    async def _publish(
        self,
        body: Body,
        host: str,
        addresses: list[dict[str, Any]],
        uids: dict[str, str],
        held: Mapping[str, str],
    ) -> None:
        written = []
        for address in addresses:
            entry = {k: v for k, v in address.items() if k != "floatingIP"}
            if (mapped := held.get(uids[address["network"]])) is not None:
                entry["floatingIP"] = mapped
            written.append(entry)
        extra: dict[str, Any] = {"addresses": written}
        # Our hand-over's phase, while no agent has taken it over: an apply drops what it
        # leaves out.
        if (body.get("status") or {}).get("phase") == "Scheduled":
            extra["phase"] = "Scheduled"
        try:
            # Decided from the body read before the inventory's thread: a migration ending
            # meanwhile names another host, which this apply would turn back. The status
            # still differing from the spec, the newer event writes it.
            await apply_status(
                self.client,
                INSTANCES,
                body,
                still_handed_over(body, host, extra),
                manager=OPERATOR_MANAGER,
                if_unchanged=True,
            )
        except NotFound:
            return  # deleted meanwhile: the release frees what it holds
        except Conflict:
            return
        for before, after in zip(addresses, written, strict=True):
            self._tell(body, before, after)

    def _tell(self, body: Body, before: dict[str, Any], after: dict[str, Any]) -> None:
        old, new = before.get("floatingIP"), after.get("floatingIP")
        if old == new:
            return
        self.changed(f"{namespace_of(body)}/{after['network']}")
        if old is not None:
            message = f"floating IP {old} released from {before['ip']} on {before['network']}"
            self.events.record(body, "Normal", "FloatingIPReleased", message)
            log.info("instance %s: %s", key_of(body), message)
        if new is not None:
            message = f"floating IP {new} mapped to {after['ip']} on {after['network']}"
            self.events.record(body, "Normal", "FloatingIPAssociated", message)
            log.info("instance %s: %s", key_of(body), message)
