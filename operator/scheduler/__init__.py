"""The scheduler: Nova's filter/weigh design over the hosts it is handed.

Usage::

    from kubenova.operator.scheduler import Scheduler, SchedulerConfig, PlacementRequest

    scheduler = Scheduler(SchedulerConfig(filters=("ready", "memory"), weighers=(("ram", -1.0),)))
    decision = scheduler.schedule(request, hosts)   # a HostTable, or a list of HostState
    # -> Chosen(host, alternates) or NoValidHost(message="3 hosts: 1 not ready, 2 lack memory
    #    (need 4096 MiB, max free 2048 MiB)", removed={"ready": 1, "memory": 2})

Filters (`filters/`, run in the configured order; a host removed by one is not counted
again by the next) and weighers (`weighers/`, scores normalised to 0..1 x multiplier,
summed; a positive RAM/CPU multiplier spreads, a negative one packs) are looked up by
name and work on whole columns of a HostTable (numpy); ties go to the smallest host
name. The scheduler only decides: it reads no database and imports neither SQLAlchemy
nor the inventory (an import-linter contract says so). Turning inventory rows into
HostStates and claiming the chosen host is `kubenova.operator.placement`'s job.
"""

from kubenova.operator.scheduler.config import DEFAULT_FILTERS, DEFAULT_WEIGHERS, SchedulerConfig
from kubenova.operator.scheduler.core import Scheduler, schedule
from kubenova.operator.scheduler.decision import Chosen, Decision, NoValidHost
from kubenova.operator.scheduler.host_table import HostTable
from kubenova.operator.scheduler.request import HostState, PlacementRequest

__all__ = [
    "DEFAULT_FILTERS",
    "DEFAULT_WEIGHERS",
    "Chosen",
    "Decision",
    "HostState",
    "HostTable",
    "NoValidHost",
    "PlacementRequest",
    "Scheduler",
    "SchedulerConfig",
    "schedule",
]
