"""The agent's heartbeat: a coordination.k8s.io/v1 Lease renewed every few seconds.

The operator treats a host whose Lease it has not seen change for its timeout as NotReady
(on its own clock: renewTime only has to change, so this host's clock may be off). Renewing
is one merge patch; the Lease (and the system namespace) are created on first use.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from kubenova.kube import Conflict, KubeClient, NotFound
from kubenova.kube.objects import ensure_namespace
from kubenova.kube.paths import LEASES
from kubenova.wellknown import SYSTEM_NAMESPACE, lease_name

log = logging.getLogger(__name__)

LEASE_DURATION_SECONDS = 40


def micro_time(moment: datetime | None = None) -> str:
    """A Kubernetes MicroTime: RFC 3339 in UTC with exactly six fractional digits."""
    return (moment or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaseKeeper:
    """Holds the Lease `host-<host>` in the system namespace for this host's agent."""

    def __init__(
        self,
        client: KubeClient,
        host: str,
        *,
        namespace: str = SYSTEM_NAMESPACE,
        duration_seconds: int = LEASE_DURATION_SECONDS,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        owner: dict[str, Any] | None = None,
    ) -> None:
        self.client = client
        # The agent pod's ServiceAccount in a chart install: the Lease goes with the chart.
        self.owner = owner
        self.host = host
        self.namespace = namespace
        self.name = lease_name(host)
        self.duration_seconds = duration_seconds
        self.clock = clock  # this host's notion of now (tests skew it)
        self._exists = False

    async def renew(self) -> dict[str, Any]:
        """Stamp renewTime now (creating the Lease, and its namespace, when missing)."""
        now = micro_time(self.clock())
        if self._exists:
            try:
                return await self._patch(now)
            except NotFound:
                self._exists = False  # deleted under us: create it again
        try:
            lease = await self._create(now)
        except Conflict:
            lease = await self._take_over(now)
        self._exists = True
        return lease

    async def _patch(self, now: str) -> dict[str, Any]:
        spec = {
            "holderIdentity": self.host,
            "leaseDurationSeconds": self.duration_seconds,
            "renewTime": now,
        }
        return await self.client.patch(LEASES, self.name, {"spec": spec}, self.namespace)

    async def _create(self, now: str) -> dict[str, Any]:
        body = {
            "apiVersion": LEASES.api_version,
            "kind": LEASES.kind,
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                **({"ownerReferences": [self.owner]} if self.owner else {}),
            },
            "spec": {
                "holderIdentity": self.host,
                "leaseDurationSeconds": self.duration_seconds,
                "acquireTime": now,
                "renewTime": now,
                "leaseTransitions": 0,
            },
        }
        try:
            return await self.client.create(LEASES, body, self.namespace)
        except NotFound:  # a bare cluster without the system namespace
            await ensure_namespace(self.client, self.namespace)
            return await self.client.create(LEASES, body, self.namespace)

    async def _take_over(self, now: str) -> dict[str, Any]:
        """The Lease exists (an earlier run of this agent): renew it, noting a new holder."""
        current = await self.client.get(LEASES, self.name, self.namespace)
        spec = current.get("spec") or {}
        if spec.get("holderIdentity") == self.host:
            return await self._patch(now)
        log.warning(
            "lease %s/%s was held by %r; taking it over for host %s",
            self.namespace,
            self.name,
            spec.get("holderIdentity"),
            self.host,
        )
        patch = {
            "metadata": {"resourceVersion": current["metadata"]["resourceVersion"]},
            "spec": {
                "holderIdentity": self.host,
                "leaseDurationSeconds": self.duration_seconds,
                "acquireTime": now,
                "renewTime": now,
                "leaseTransitions": int(spec.get("leaseTransitions") or 0) + 1,
            },
        }
        return await self.client.patch(LEASES, self.name, patch, self.namespace)
