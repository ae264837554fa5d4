"""An Instance whose host stopped heart-beating says so: Ready turns Unknown (HostNotReady).

The compute agent owns an Instance's Ready condition, and an agent that is gone cannot say
that nobody watches its guest any more: left alone, Ready would read True for as long as the
host is down. As Kubernetes' node lifecycle controller does with the Pods of a NotReady
node, the operator then sets Ready to Unknown, once per loss, and records a Warning Event on
the Instance. The phase stays what the agent said last: the guest may well still run.

The write is an apply under a field manager of its own (`HOST_MONITOR_MANAGER`): the
operator's other status applies never carry Ready, so they leave it as it is. The agent,
once back, finds Ready differing from what it would write and applies it again (forcing,
as every apply of ours does), which takes the field back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from kubenova import conditions as cond
from kubenova.kube import KubeClient, NotFound
from kubenova.kube.events import EventRecorder
from kubenova.kube.meta import Body, generation_of, key_of
from kubenova.kube.objects import apply_status
from kubenova.operator.instances.handover import INSTANCES, READY

log = logging.getLogger(__name__)

HOST_NOT_READY = "HostNotReady"
HOST_MONITOR_MANAGER = "kubenova-host-monitor"


def host_lost(body: Body, host: str) -> cond.Condition:
    """The Ready condition of an Instance whose host `host` is NotReady."""
    return cond.condition(
        READY,
        "Unknown",
        HOST_NOT_READY,
        f"host {host} is not ready (its agent stopped heart-beating): whether the guest "
        "still runs is unknown",
        generation=generation_of(body),
        previous=(body.get("status") or {}).get("conditions"),
    )


@dataclass
class HostLoss:
    """Shows the loss of an Instance's host in its Ready condition."""

    client: KubeClient
    events: EventRecorder
    host_judged: Callable[[str], bool]
    host_ready: Callable[[str], bool]

    async def show(self, body: Body, host: str) -> None:
        """Ready Unknown when `host` is judged NotReady; nothing when it says so already."""
        if not self.host_judged(host) or self.host_ready(host):
            return  # a host not judged since we started is not known to be lost
        entry = host_lost(body, host)
        if cond.same(cond.find((body.get("status") or {}).get("conditions"), READY), entry):
            return
        try:
            await apply_status(
                self.client, INSTANCES, body, {"conditions": [entry]}, manager=HOST_MONITOR_MANAGER
            )
        except NotFound:
            return  # deleted meanwhile
        log.warning("instance %s: %s", key_of(body), entry["message"])
        self.events.record(body, "Warning", HOST_NOT_READY, entry["message"])
