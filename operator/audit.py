"""The audit: compare the inventory with the resources and repair what is safe to repair.

- a claim whose Instance no longer exists is released (it leaked, e.g. the operator was
  down when the Instance went away);
- an Instance handed to a host (the operator's status.host) but without a claim is
  re-claimed on that host, or, if the host no longer has room, reported (the Instance keeps
  running; the admin decides).

Claims are read *before* the Instances are listed: a claim is only ever made for an
Instance that already exists, so a claim missing from the listing really is a leak.
In the operator each pass waits first until the Instance work queue has worked off its
backlog (`after_backlog`): listing every Instance in the middle of a start-up drain
slowed the placements it competed with.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from kubenova.api.v1alpha1 import Flavor, Image, Instance, ServerGroup
from kubenova.errors import UserError
from kubenova.kube import KubeClient, kubenova_kind
from kubenova.kube.meta import Body, deleting, key_of, slim, uid_of
from kubenova.kube.watch import list_pages
from kubenova.operator import inventory as inv
from kubenova.operator.catalog import Catalog
from kubenova.operator.inventory.consumers import list_consumers
from kubenova.operator.placement import Placer, build_request
from kubenova.workqueue import WorkQueue

log = logging.getLogger(__name__)

INSTANCES = kubenova_kind(Instance)
# Seconds between looks at the Instance work queue while an audit waits for it.
BACKLOG_POLL = 0.25


@dataclass
class AuditReport:
    released: list[str] = field(default_factory=list)
    reclaimed: list[str] = field(default_factory=list)
    flagged: list[str] = field(default_factory=list)
    checked_claims: int = 0
    checked_instances: int = 0

    @property
    def clean(self) -> bool:
        return not (self.released or self.reclaimed or self.flagged)

    def lines(self) -> list[str]:
        out = [
            f"checked {self.checked_claims} claims and {self.checked_instances} instances",
        ]
        out += [f"released leaked claim: {item}" for item in self.released]
        out += [f"re-claimed missing claim: {item}" for item in self.reclaimed]
        out += [f"NEEDS ATTENTION: {item}" for item in self.flagged]
        if self.clean:
            out.append("inventory and resources agree")
        return out


async def fill_catalog(client: KubeClient, catalog: Catalog) -> None:
    """Load Flavors, Images and ServerGroups (for a one-off audit outside the operator)."""
    for model in (Flavor, Image, ServerGroup):
        listing = await client.list(kubenova_kind(model))
        for item in listing.get("items", []):
            key = key_of(item)
            catalog.put(model.crd.kind, key, item)


async def after_backlog(listed: asyncio.Event, queue: WorkQueue[str], limit: float) -> bool:
    """Wait until the Instances are `listed` and `queue` has nothing queued or in hand, for
    at most `limit` seconds; False if it never got there (churn that never stops: the
    audit then runs anyway, as it must not wait for ever).

    What the audit checks does not change: claims and Instances are still read at the start
    of the pass, after the wait. Only its cost moves out of the drain: the list of every
    Instance (10,000 bodies, managed fields included), its decode on the event loop and
    the claims' read in a worker's thread, all while placements wait for those.
    """
    try:
        async with asyncio.timeout(limit):
            await listed.wait()
            while len(queue):
                await asyncio.sleep(BACKLOG_POLL)
    except TimeoutError:
        return False
    return True


async def audit(client: KubeClient, placer: Placer, catalog: Catalog) -> AuditReport:
    """One audit pass; safe to run while the operator works."""
    report = AuditReport()
    claims = await asyncio.to_thread(list_consumers, placer.engine, "Instance")
    report.checked_claims = len(claims)
    claimed = {claim.uid for claim in claims}
    # Read a page at a time and only what the pass needs kept: every Instance's full body
    # at once (10,000 with their managed fields) was ~100 MB on top of the operator's
    # resident set, at the end of every start-up drain.
    seen: set[str] = set()
    unclaimed: list[Body] = []  # handed over by our status write, yet without a claim
    async for page in list_pages(client, INSTANCES, transform=slim):
        for body in page["items"]:
            uid = uid_of(body)
            seen.add(uid)
            # Handed over by our own status write: status.host is the commit point.
            host = (body.get("status") or {}).get("host")
            if host and uid not in claimed and not deleting(body):
                unclaimed.append(body)
    report.checked_instances = len(seen)
    for claim in claims:
        if claim.uid not in seen:
            await asyncio.to_thread(placer.release, claim.uid)
            report.released.append(
                f"{claim.namespace}/{claim.name} (uid {claim.uid}) on {claim.host}"
            )
    for body in unclaimed:
        host = body["status"]["host"]
        name = f"{key_of(body)}"
        try:
            request = build_request(body, Instance.model_validate(body), catalog)
            await asyncio.to_thread(placer.claim_on, request, host)
            report.reclaimed.append(f"{name} on {host}")
        except (UserError, inv.ClaimRefused, inv.UnknownHost) as exc:
            report.flagged.append(f"{name} runs on {host} without a claim: {exc}")
    for line in report.lines():
        log.info("audit: %s", line)
    return report
