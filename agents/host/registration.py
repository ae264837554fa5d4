"""The agent's `Host`: created with defaults once, its status kept true by the agent.

The spec belongs to administrators after creation (zone, services, overcommit, cordon):
the agent sets it only when it creates the Host and never writes it again. The status
fields the agent observes are server-side applied as `kubenova-agent`, and only when they
differ from what the Host already says, so a restart costs no write.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from importlib import metadata
from typing import Any

from kubenova import conditions as cond
from kubenova.agents.host.capacity import Capacity
from kubenova.agents.host.lease import LeaseKeeper
from kubenova.api.v1alpha1 import Host
from kubenova.errors import KubenovaError
from kubenova.kube import Conflict, KubeClient, NotFound, kubenova_kind
from kubenova.kube.config import service_account_owner
from kubenova.kube.meta import generation_of
from kubenova.kube.objects import apply_status
from kubenova.wellknown import AGENT_MANAGER, SYSTEM_NAMESPACE

log = logging.getLogger(__name__)

HOSTS = kubenova_kind(Host)
AGENT_READY = "AgentReady"
HEARTBEAT_INTERVAL = 10.0
# Every this many heartbeats the Host itself is checked again (a GET; a write only on drift).
RECHECK_EVERY = 6
# Heartbeats (at least a second each) without a renewal that make a gap (see run_heartbeat).
GAP_BEATS = 3


def agent_version() -> str:
    try:
        return metadata.version("kubenova")
    except metadata.PackageNotFoundError:
        return "0.0.0+unknown"


class HostRegistration:
    """Registers one host and keeps its heartbeat; usable without libvirt."""

    def __init__(
        self,
        client: KubeClient,
        name: str,
        *,
        capacity: Capacity,
        zone: str = "nova",
        services: Sequence[str] = ("compute",),
        domain_type: str | None = None,
        underlay_ip: str | None = None,
        migration: dict[str, str] | None = None,
        heartbeat_interval: float = HEARTBEAT_INTERVAL,
        lease_clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.client = client
        self.name = name
        self.capacity = capacity
        self.zone = zone
        self.services = list(services)
        self.domain_type = domain_type
        self.underlay_ip = underlay_ip
        # status.migration: how peers' libvirtds reach ours (libvirtURI, address,
        # instancesDir); the agent's to write, so a live migration never trusts a tenant.
        self.migration = migration
        self.heartbeat_interval = heartbeat_interval
        owner = service_account_owner(client.config, SYSTEM_NAMESPACE)
        self.lease = (
            LeaseKeeper(client, name, clock=lease_clock, owner=owner)
            if lease_clock
            else LeaseKeeper(client, name, owner=owner)
        )

    async def register(self) -> dict[str, Any]:
        """Create the Host if missing, then bring the agent's status fields up to date."""
        host = await self._get_or_create()
        status = self.desired_status(host)
        if _status_matches(host.get("status") or {}, status):
            return host
        updated = await apply_status(self.client, HOSTS, host, status, manager=AGENT_MANAGER)
        log.info("host %s registered: %s", self.name, status["capacity"])
        return updated

    async def renew(self) -> dict[str, Any]:
        """Renew the heartbeat Lease once."""
        return await self.lease.renew()

    async def run_heartbeat(self, after_gap: Callable[[], Awaitable[object]] | None = None) -> None:
        """Renew the Lease every `heartbeat_interval` s, re-checking the Host now and then.

        API errors are logged and retried at the next beat: a heartbeat never gives up.
        After a gap (the process was paused, or could not renew for several beats) the
        host may have been declared dead and its guests rebuilt elsewhere: `after_gap`
        (the compute service's resync, destroying what is no longer placed here) must
        succeed before the next renewal says the host is alive.
        """
        beats = 0
        last = time.monotonic()
        while True:
            try:
                if after_gap is not None and time.monotonic() - last > GAP_BEATS * max(
                    self.heartbeat_interval, 1.0
                ):
                    gap = time.monotonic() - last
                    log.warning("host %s: no heartbeat for %.0fs: catching up", self.name, gap)
                    await after_gap()
                    await self.renew()
                    log.warning("host %s: heart-beating again after the gap", self.name)
                else:
                    await self.renew()
                last = time.monotonic()
                if beats % RECHECK_EVERY == RECHECK_EVERY - 1:
                    await self.register()
            except (KubenovaError, OSError, TimeoutError) as exc:
                log.warning("heartbeat of host %s failed: %s", self.name, exc)
            beats += 1
            await asyncio.sleep(self.heartbeat_interval)

    def desired_status(self, host: dict[str, Any]) -> dict[str, Any]:
        """The status fields this agent owns, computed from its configuration."""
        previous = (host.get("status") or {}).get("conditions")
        generation = generation_of(host)
        ready = cond.condition(
            AGENT_READY,
            True,
            "AgentRunning",
            f"kubenova-agent {agent_version()} runs {', '.join(self.services)} on {self.name}",
            generation=generation,
            previous=previous,
        )
        status: dict[str, Any] = {
            "capacity": self.capacity.as_status(),
            "agentVersion": agent_version(),
            "observedGeneration": generation,
            "conditions": [ready],
        }
        if self.domain_type:
            status["domainType"] = self.domain_type
        if self.underlay_ip:
            status["underlayIP"] = self.underlay_ip
        if self.migration:
            status["migration"] = self.migration
        return status

    async def _get_or_create(self) -> dict[str, Any]:
        try:
            return await self.client.get(HOSTS, self.name)
        except NotFound:
            pass
        body = {
            "apiVersion": HOSTS.api_version,
            "kind": HOSTS.kind,
            "metadata": {"name": self.name},
            "spec": {
                "availabilityZone": self.zone,
                "services": self.services,
                "overcommit": {},  # the schema's defaults
                "schedulable": True,
            },
        }
        try:
            created = await self.client.create(HOSTS, body)
        except Conflict:  # a previous run of this agent raced us
            return await self.client.get(HOSTS, self.name)
        log.info("created host %s (zone %s, services %s)", self.name, self.zone, self.services)
        return created


def _status_matches(current: dict[str, Any], desired: dict[str, Any]) -> bool:
    """True when writing `desired` would change nothing a reader sees."""
    for key, value in desired.items():
        if key == "conditions":
            for entry in value:
                if not cond.same(cond.find(current.get("conditions"), entry["type"]), entry):
                    return False
        elif current.get(key) != value:
            return False
    # Fields we stopped setting (e.g. underlayIP) would be dropped by the apply.
    return all(current.get(key) is None for key in {"domainType", "underlayIP"} - desired.keys())
