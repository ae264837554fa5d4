"""The Network reconciler: inventory allocation, gateway host, host labels and status.

Level-triggered through a keyed work queue: Network events, Host changes (underlay
address, network service, readiness), the Instance hook (a NIC allocated or freed) and a
guest's live migration starting or ending (operator/moves.py) only mark a Network; the
reconciler then registers it in the inventory (refusing a CIDR that overlaps its
project), allocates its segment id, picks its gateway host, labels it
`wired.kubenova.io/<host>` for every host that must carry it, and applies its status as
`kubenova-operator` when something a reader sees changed. A Network with NICs left is
not let go (finalizer) until the last Instance on it is deleted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from kubenova import conditions as cond
from kubenova.api.v1alpha1 import Network
from kubenova.errors import UserError
from kubenova.kube import KubeClient, NotFound, kubenova_kind
from kubenova.kube.events import EventRecorder
from kubenova.kube.meta import (
    Body,
    deleting,
    finalizers_of,
    generation_of,
    labels_of,
    name_of,
    namespace_of,
    uid_of,
)
from kubenova.kube.objects import apply_status, ensure_metadata, remove_finalizer
from kubenova.operator.moves import Moves
from kubenova.operator.networks import gateways, ports, registry, segments
from kubenova.operator.networks import status as st
from kubenova.operator.networks.records import NetworkRecord, network_record
from kubenova.operator.networks.settings import NetworkSettings
from kubenova.wellknown import OPERATOR_FINALIZER, OPERATOR_MANAGER
from kubenova.workqueue import WorkQueue

log = logging.getLogger(__name__)

NETWORKS = kubenova_kind(Network)


@dataclass
class NetworkReconciler:
    client: KubeClient
    engine: Engine
    settings: NetworkSettings
    events: EventRecorder
    hosts: Mapping[str, Body]  # the Host bodies the host monitor has seen, by name
    moves: Moves  # the migrations under way: their targets carry the guests' networks too
    keys: dict[str, str] = field(default_factory=dict)  # uid -> namespace/name
    host_facts: dict[str, tuple[Any, ...]] = field(default_factory=dict)

    async def __call__(self, key: str, body: Body | None) -> float | None:
        if body is None:
            self.keys = {uid: k for uid, k in self.keys.items() if k != key}
            return None
        self.keys[uid_of(body)] = key
        if deleting(body):
            await self._finalize(key, body)
            return None
        await self._reconcile(key, body)
        return None

    async def _reconcile(self, key: str, body: Body) -> None:
        spec = body.get("spec") or {}
        generation = generation_of(body)
        observation = await self._observe(body, spec, generation)
        desired = _without_none(
            st.desired_status(observation, (body.get("status") or {}).get("conditions"))
        )
        hosts = st.wired_hosts(observation) if observation.problem is None else []
        labels = st.label_changes(labels_of(body), hosts)
        updated = await ensure_metadata(
            self.client, NETWORKS, body, finalizers=(OPERATOR_FINALIZER,)
        )
        body = updated or body
        if labels:
            body = await self.client.patch(
                NETWORKS, name_of(body), {"metadata": {"labels": labels}}, namespace_of(body)
            )
        if not st.status_differs(body.get("status"), desired):
            return
        before = cond.find((body.get("status") or {}).get("conditions"), st.READY)
        await apply_status(self.client, NETWORKS, body, desired, manager=OPERATOR_MANAGER)
        after = desired["conditions"][0]
        if before is None or before.get("reason") != after["reason"]:
            kind = "Normal" if after["status"] == "True" else "Warning"
            self.events.record(body, kind, after["reason"], after["message"])
            log.info("network %s: %s: %s", key, after["reason"], after["message"])

    async def _observe(self, body: Body, spec: Body, generation: int | None) -> st.Observation:
        try:
            record = network_record(body)
            await asyncio.to_thread(registry.register, self.engine, record)
            segment = await self._segment(record)
        except UserError as exc:
            return st.Observation(None, generation, problem=exc)
        leaked = await asyncio.to_thread(ports.release_orphans, self.engine, record.uid)
        if leaked:
            message = f"released {len(leaked)} address(es) of deleted Instances: {leaked}"
            log.warning("network %s/%s: %s", record.namespace, record.name, message)
            self.events.record(body, "Normal", "AddressesReleased", message)
        # The moves before the ports: a migration leaves Running only after its hand-over
        # moved the guest's row to the target, so read in this order a guest is always
        # counted on its target, by one or the other. Read the other way round, a hand-over
        # and Completed landing between the two reads dropped the target for one status
        # write, right after the switch: the gateway removed its VXLAN peer, and the target
        # its bridge with the guest's tap in it if the next write came after its recheck.
        incoming = await self.moves.incoming_hosts(record.namespace)
        port_views = await asyncio.to_thread(ports.ports_of, self.engine, record.uid)
        needs = st.needs_gateway(spec, port_views)
        gateway_host = (
            await asyncio.to_thread(gateways.assign, self.engine, record) if needs else None
        )
        underlay = {
            name: ((host.get("status") or {}).get("underlayIP"))
            for name, host in self.hosts.items()
        }
        return st.Observation(
            record,
            generation,
            segment_id=segment,
            gateway_host=gateway_host,
            needs_gateway=needs,
            ports=port_views,
            underlay=underlay,
            incoming=incoming,
        )

    async def _segment(self, record: NetworkRecord) -> int | None:
        kind = record.segment_kind
        if kind is None:
            return None
        return await asyncio.to_thread(
            segments.allocate, self.engine, record.uid, kind, self.settings.ranges(kind)
        )

    async def _finalize(self, key: str, body: Body) -> None:
        if OPERATOR_FINALIZER not in finalizers_of(body):
            return
        in_use = await asyncio.to_thread(registry.unregister, self.engine, uid_of(body))
        if in_use:
            message = (
                f"{in_use} Instance NIC(s) still use this network: delete those Instances; "
                "the Network goes when the last one is gone"
            )
            previous = (body.get("status") or {}).get("conditions")
            entry = cond.condition(st.READY, False, "InUse", message, previous=previous)
            if not cond.same(cond.find(previous, st.READY), entry):
                await apply_status(
                    self.client, NETWORKS, body, {"conditions": [entry]}, manager=OPERATOR_MANAGER
                )
                self.events.record(body, "Warning", "InUse", message)
            return
        try:
            await remove_finalizer(self.client, NETWORKS, body, OPERATOR_FINALIZER)
        except NotFound:
            return
        log.info("network %s: released from the inventory", key)

    def host_changed(self, name: str, body: Body | None, queue: WorkQueue[str]) -> None:
        """Re-reconcile every Network when a host's underlay, services or health changed."""
        status = (body or {}).get("status") or {}
        facts = (
            status.get("underlayIP"),
            tuple((body or {}).get("spec", {}).get("services") or ()),
            cond.is_true(status.get("conditions"), "Ready"),
        )
        if self.host_facts.get(name) == facts:
            return
        self.host_facts[name] = facts
        for key in set(self.keys.values()):
            queue.mark(key)


def _without_none(status: dict[str, Any]) -> dict[str, Any]:
    """Server-side apply treats an omitted field as given up: drop what we do not set."""
    return {k: v for k, v in status.items() if v is not None}
