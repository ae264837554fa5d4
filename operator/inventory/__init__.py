"""The SQL inventory: authoritative record of host capacity, allocations and identifiers.

The operator is its only writer (agents never hold database credentials). Usage::

    from kubenova.operator import inventory as inv

    engine = inv.make_engine()            # $KUBENOVA_DATABASE_URL or ~/.local/share/kubenova
    inv.check_schema(engine)              # at start-up: raises SchemaOutOfDate if stale
    inv.upsert_host(engine, inv.HostRecord("node-1", inv.Resources(16, 65536, 500)))
    claim = inv.claim(engine, inv.Consumer(uid, "web-0", "demo"), "node-1",
                      inv.Resources(vcpus=2, memory_mb=4096, disk_gb=20))
    inv.release(engine, uid)              # idempotent

`claim` re-checks capacity and hard server-group policies inside one locking transaction
(with the `ClaimStep`s other domains take along: addresses, attachments),
so racing claimers (threads, processes, operator replicas) cannot overcommit a host, and
it is idempotent per consumer uid. Choosing the host is the scheduler's job
(`kubenova.operator.placement.Placer` schedules and claims together). Errors: see
`kubenova.operator.inventory.errors`. Schema: `upgrade(url)` applies the Alembic
migrations shipped in `migrations/` (`kubenova db upgrade`).
"""

from kubenova.operator.inventory.claims import claim, claim_in, find_claim, move_in, release
from kubenova.operator.inventory.driver_sql import savepoint
from kubenova.operator.inventory.engine import default_url, make_engine, write_transaction
from kubenova.operator.inventory.errors import (
    ClaimRefused,
    InsufficientCapacity,
    InventoryError,
    SchemaOutOfDate,
    ServerGroupConflict,
    UnknownHost,
)
from kubenova.operator.inventory.hosts import (
    host_usage,
    load_hosts,
    set_host_ready,
    set_host_schedulable,
    upsert_host,
    upsert_hosts,
)
from kubenova.operator.inventory.quotas import QuotaAmounts, QuotaExceeded, QuotaLimits
from kubenova.operator.inventory.records import Claim, HostRecord, HostSnapshot
from kubenova.operator.inventory.resize import NothingToResize, resize_in
from kubenova.operator.inventory.schema import (
    check_schema,
    current_revision,
    head_revision,
    upgrade,
)
from kubenova.operator.inventory.server_groups import member_hosts
from kubenova.operator.inventory.steps import ClaimStep

# The values the functions above take, so that a caller needs one import.
from kubenova.operator.resources import (
    Consumer,
    GroupPolicy,
    OvercommitRatios,
    ResourceClass,
    Resources,
    ServerGroupRef,
)

__all__ = [
    "Claim",
    "ClaimRefused",
    "ClaimStep",
    "Consumer",
    "GroupPolicy",
    "HostRecord",
    "HostSnapshot",
    "InsufficientCapacity",
    "InventoryError",
    "NothingToResize",
    "OvercommitRatios",
    "QuotaAmounts",
    "QuotaExceeded",
    "QuotaLimits",
    "ResourceClass",
    "Resources",
    "SchemaOutOfDate",
    "ServerGroupConflict",
    "ServerGroupRef",
    "UnknownHost",
    "check_schema",
    "claim",
    "claim_in",
    "current_revision",
    "default_url",
    "find_claim",
    "head_revision",
    "host_usage",
    "load_hosts",
    "make_engine",
    "member_hosts",
    "move_in",
    "release",
    "resize_in",
    "savepoint",
    "set_host_ready",
    "set_host_schedulable",
    "upgrade",
    "upsert_host",
    "upsert_hosts",
    "write_transaction",
]
