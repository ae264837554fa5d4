"""The scheduler: Nova's filter/weigh design over the inventory's hosts.

Pure core (no database)::

    from kubenova.operator.scheduler import Scheduler, SchedulerConfig, PlacementRequest

    scheduler = Scheduler(SchedulerConfig(filters=("ready", "memory"), weighers=(("ram", -1.0),)))
    decision = scheduler.schedule(request, hosts)   # a HostTable, or a list of HostState
    # -> Chosen(host, alternates) or NoValidHost(message="3 hosts: 1 not ready, 2 lack memory
    #    (need 4096 MiB, max free 2048 MiB)", removed={"ready": 1, "memory": 2})

Filters (`filters/`, run in the configured order; a host removed by one is not counted
again by the next) and weighers (`weighers/`, scores normalised to 0..1 x multiplier,
summed; a positive RAM/CPU multiplier spreads, a negative one packs) are looked up by
name and work on whole columns of a HostTable (numpy); ties go to the smallest host
name. With the database::

    view = HostView(engine)                          # one per process, kept warm
    result = place(engine, request, view, scheduler) # -> inventory.Claim or NoValidHost

`place` claims atomically and moves to the next candidate when a claim loses a race.
"""

from kubenova.operator.scheduler.config import DEFAULT_FILTERS, DEFAULT_WEIGHERS, SchedulerConfig
from kubenova.operator.scheduler.core import Scheduler, schedule
from kubenova.operator.scheduler.decision import Chosen, Decision, NoValidHost
from kubenova.operator.scheduler.host_table import HostTable
from kubenova.operator.scheduler.host_view import HostView
from kubenova.operator.scheduler.placement import place
from kubenova.operator.scheduler.request import HostState, PlacementRequest

__all__ = [
    "DEFAULT_FILTERS",
    "DEFAULT_WEIGHERS",
    "Chosen",
    "Decision",
    "HostState",
    "HostTable",
    "HostView",
    "NoValidHost",
    "PlacementRequest",
    "Scheduler",
    "SchedulerConfig",
    "place",
    "schedule",
]
