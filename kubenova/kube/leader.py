"""Leader election on a coordination.k8s.io Lease, the way client-go's leaderelection does it.

A candidate reads the Lease; while another holder's record keeps changing it waits. A
record that has not changed for its `leaseDurationSeconds`, measured on *our* monotonic
clock from the moment we first saw it (never by comparing its renewTime with our wall
clock), is expired and may be taken. Every write carries the resourceVersion that was
read, so of two candidates racing for an expired Lease one gets a 409 and stays a
candidate.

The leader renews every `retry_period`; a round of renewals that has not succeeded within
`renew_deadline` loses the lead. Whether we lead is decided by our own clock too: `holds()`
is true only while our last successful write was sent less than a lease duration ago, so a
process paused past that (SIGSTOP, a long GC, a frozen VM) knows, the instant it resumes and
before its next write, that another may lead now; `check()` raises then. The others count
the duration from when they *saw* that write, never earlier than we sent it, so our belief
ends before their takeover.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubenova.errors import Conflict, NotFound, TemporaryError

from .client import KubeClient
from .meta import Body
from .paths import ResourceKind

log = logging.getLogger(__name__)

# Up to this fraction of a candidate's period is added at random: candidates do not poll
# in step.
JITTER = 0.25


class NotLeading(TemporaryError):
    """A write was refused because this process cannot prove it still holds the lead."""

    reason = "NotLeading"


@dataclass(frozen=True)
class ElectionTiming:
    """Shorter than client-go's 15/10/2 s, so a dead leader is replaced within 15 s.

    A candidate takes over one lease duration after it *saw* the last renewal, and sees it
    up to one candidate period late, then notices the expiry up to one period late: the
    worst takeover after a kill is about lease_duration + 2 * candidate_period * (1 + JITTER).
    """

    lease_duration: float = 10.0
    renew_deadline: float = 7.0  # a leader unable to renew for this long gives up
    retry_period: float = 2.0  # the leader renews this often
    candidate_period: float = 1.0  # a standby reads the Lease this often


def _microtime(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _record(spec: Body) -> tuple[str, ...]:
    """The fields that change whenever a holder renews or a new one acquires."""
    keys = (
        "holderIdentity",
        "leaseDurationSeconds",
        "acquireTime",
        "renewTime",
        "leaseTransitions",
    )
    return tuple(str(spec.get(key) or "") for key in keys)


class LeaderElector:
    """Acquire, renew and release one Lease as `identity`."""

    def __init__(
        self,
        client: KubeClient,
        kind: ResourceKind,
        namespace: str,
        name: str,
        identity: str,
        *,
        timing: ElectionTiming | None = None,
        holder_dead: Callable[[str], bool] = lambda holder: False,
        clock: Callable[[], float] = time.monotonic,
        owner: dict[str, Any] | None = None,
    ) -> None:
        self.client = client
        self.kind = kind
        self.owner = owner  # ownerReference of the Lease when this elector makes it
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.timing = timing or ElectionTiming()
        # Told by the caller when a holder is known dead without waiting out its lease (a
        # process of ours on this host that no longer exists).
        self.holder_dead = holder_dead
        self.clock = clock
        self.seen = False  # the Lease has been read (or made) at least once
        self.holder = ""  # the holder as last seen
        self._observed: tuple[str, ...] | None = None
        self._observed_at = 0.0
        self._renewed_at: float | None = None  # our clock just before our last good write
        self._resource_version = ""

    # -- whether we lead ---------------------------------------------------------------------

    def holds(self) -> bool:
        """Do we still hold the lease, by our own clock? Cheap: call it before every write."""
        renewed = self._renewed_at
        return renewed is not None and self.clock() - renewed < self.timing.lease_duration

    def check(self) -> None:
        """Raise NotLeading unless `holds()`."""
        if not self.holds():
            raise NotLeading(f"{self.identity} does not hold lease {self.namespace}/{self.name}")

    # -- the election ------------------------------------------------------------------------

    async def acquire(self) -> None:
        """Return once we lead (retrying every retry period, jittered, until then)."""
        while not await self._attempt():
            period = self.timing.candidate_period
            await asyncio.sleep(period + random.random() * JITTER * period)

    async def keep(self) -> None:
        """Renew until leadership is lost, then return (the caller stops acting)."""
        while True:
            await asyncio.sleep(self.timing.retry_period)
            started = self.clock()
            while not await self._attempt():
                if not self.holds() or self.clock() - started >= self.timing.renew_deadline:
                    self._renewed_at = None
                    return
                await asyncio.sleep(self.timing.retry_period / 4)
            if not self.holds():  # the renewal came back too late to count
                self._renewed_at = None
                return

    async def release(self) -> None:
        """Give the lease up at once (a clean shutdown): the next candidate need not wait."""
        if not self.holds():
            return
        self._renewed_at = None  # stop believing before the others may start
        now = _microtime(datetime.now(UTC))
        patch = {
            "metadata": {"resourceVersion": self._resource_version},
            "spec": {
                "holderIdentity": None,
                "leaseDurationSeconds": 1,
                "acquireTime": now,
                "renewTime": now,
            },
        }
        try:
            await self.client.patch(self.kind, self.name, patch, self.namespace)
            log.info("released leader lease %s/%s", self.namespace, self.name)
        except Exception as exc:  # the lease expires by itself anyway
            log.warning("could not release leader lease %s/%s: %s", self.namespace, self.name, exc)

    async def _attempt(self) -> bool:
        """One round of client-go's tryAcquireOrRenew: True if we lead after it."""
        try:
            return await self._try()
        except Conflict:
            return False  # another candidate wrote first
        except Exception as exc:
            log.warning("leader lease %s/%s: %s", self.namespace, self.name, exc)
            return False

    async def _try(self) -> bool:
        now = datetime.now(UTC)
        try:
            current = await self.client.get(self.kind, self.name, self.namespace)
        except NotFound:
            spec = self._spec({}, now)
            body = {
                "apiVersion": self.kind.api_version,
                "kind": self.kind.kind,
                "metadata": {
                    "name": self.name,
                    "namespace": self.namespace,
                    **({"ownerReferences": [self.owner]} if self.owner else {}),
                },
                "spec": spec,
            }
            sent = self.clock()
            made = await self.client.create(self.kind, body, self.namespace)
            self._won(sent, made)
            return True
        spec = current.get("spec") or {}
        record = _record(spec)
        if record != self._observed:
            self._observed, self._observed_at = record, self.clock()
        self.seen = True
        self.holder = str(spec.get("holderIdentity") or "")
        if self.holder and self.holder != self.identity:
            duration = float(spec.get("leaseDurationSeconds") or self.timing.lease_duration)
            if self.clock() - self._observed_at < duration and not self.holder_dead(self.holder):
                self._renewed_at = None
                return False
            log.info(
                "leader lease %s/%s: taking it over from %s", self.namespace, self.name, self.holder
            )
        patch = {
            "metadata": {"resourceVersion": current["metadata"]["resourceVersion"]},
            "spec": self._spec(spec, now),
        }
        sent = self.clock()
        written = await self.client.patch(self.kind, self.name, patch, self.namespace)
        self._won(sent, written)
        return True

    def _spec(self, old: Body, now: datetime) -> Body:
        ours = old.get("holderIdentity") == self.identity
        transitions = int(old.get("leaseTransitions") or 0)
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": int(self.timing.lease_duration),
            "acquireTime": old.get("acquireTime") if ours else _microtime(now),
            "renewTime": _microtime(now),
            "leaseTransitions": transitions if ours or not old else transitions + 1,
        }

    def _won(self, sent: float, written: Body) -> None:
        if self._renewed_at is None:
            log.info("leader lease %s/%s acquired by %s", self.namespace, self.name, self.identity)
        self._renewed_at = sent
        self._resource_version = written["metadata"]["resourceVersion"]
        self._observed = _record(written.get("spec") or {})
        self._observed_at = self.clock()
        self.seen = True
        self.holder = self.identity
