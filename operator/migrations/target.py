"""Choose and claim a migration's target: the scheduler's filters (capacity, zone,
readiness, anti-affinity...) over every host but the source, then a claim in the database,
which has the last word; a lost race tries the next candidate, then decides again. A cold
move's claim also charges the Instance's project for the size it claims (a resize's)."""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import Engine

from kubenova.errors import UserError
from kubenova.operator import inventory as inv
from kubenova.operator.migrations.claims import MIGRATION_KIND, claim_cold_target, claim_target
from kubenova.operator.placement import host_state
from kubenova.operator.scheduler import NoValidHost, PlacementRequest, Scheduler

ROUNDS = 5


def place_target(
    engine: Engine,
    scheduler: Scheduler,
    request: PlacementRequest,
    migration: inv.Consumer,
    source: str,
    *,
    cold: bool = False,
) -> inv.Claim | NoValidHost:
    """Claim a host other than `source` for the guest of `request` (the Instance's own
    placement request; `request.host` is the migration's spec.targetHost, if any). Cold,
    the project is charged for `request.resources` in the claim's transaction
    (QuotaExceeded: nothing claimed)."""
    if request.host == source:
        raise UserError(
            f"spec.targetHost {source} is the host the instance already runs on: name "
            "another host or leave targetHost out",
            reason="TargetIsSource",
        )
    migration = replace(migration, kind=MIGRATION_KIND)
    # Claimed already (a second pass on a body older than our status write): that claim,
    # not a new decision, which would count the claim against its own host.
    if (held := inv.find_claim(engine, migration.uid)) is not None:
        return held
    decision: NoValidHost | None = None
    for _ in range(ROUNDS):
        hosts = [host_state(s) for s in inv.load_hosts(engine) if s.record.name != source]
        group_hosts = inv.member_hosts(engine, request.group.uid) if request.group else {}
        # Quota is not charged again for the same guest: the claim's kind says so.
        moving = replace(request, consumer=migration, floating_ips=0, group_hosts=group_hosts)
        chosen = scheduler.schedule(moving, hosts)
        if isinstance(chosen, NoValidHost):
            return chosen
        for host in chosen.candidates:
            try:
                if cold:
                    return claim_cold_target(
                        engine,
                        migration,
                        request.consumer,
                        host,
                        request.resources,
                        group=request.group,
                    )
                return claim_target(engine, migration, host, request.resources, request.group)
            except inv.QuotaExceeded:
                raise  # the project's, on any host alike
            except inv.ClaimRefused as refused:
                decision = NoValidHost(f"{host}: {refused}")
    return decision or NoValidHost("every candidate was taken meanwhile")
