"""Writes the agent's part of an Instance's status, and remembers its own last write.

A write costs an API call and wakes every watcher, so the status is applied (as
`kubenova-agent`) only when a reader would see a change; and since the body in hand may
predate our own last write, that write is what the desired status is compared with.
"""

from __future__ import annotations

import asyncio
import logging

from kubenova.agents.compute import status as st
from kubenova.agents.compute.driver import InstanceInfo
from kubenova.api.v1alpha1 import Instance
from kubenova.kube import KubeClient, kubenova_kind
from kubenova.kube.meta import Body, uid_of
from kubenova.kube.objects import LastWrites, apply_status
from kubenova.wellknown import AGENT_MANAGER

log = logging.getLogger(__name__)

INSTANCES = kubenova_kind(Instance)


class StatusWriter:
    """One host's status writes for its Instances; memory per UID, lost on restart."""

    def __init__(self, client: KubeClient, domain_type: str | None) -> None:
        self.client = client
        self.domain_type = domain_type
        self._written = LastWrites()

    async def report(
        self,
        key: str,
        body: Body,
        observation: st.InstanceObservation,
        *,
        info: InstanceInfo | None = None,
        restarted_at: str | None = None,
        refresh: bool = False,
    ) -> None:
        """Apply the status `observation` and `info` call for, unless it is already there.

        `refresh` re-reads the console tail and counts a changed tail as a change.
        """
        uid = uid_of(body)
        tail = None
        if info is not None and info.console_log is not None:
            previous = ((body.get("status") or {}).get("console") or {}).get("tail")
            tail = (
                await asyncio.to_thread(st.console_tail, info.console_log) if refresh else previous
            )
        desired = st.desired_status(
            body,
            observation,
            info=info,
            domain_type=self.domain_type,
            console_tail=tail,
            restarted_at=restarted_at,
        )
        if not st.differs(self._written.newest_status(body), desired, compare_tail=refresh):
            return
        # A fresh tail goes along with any write: it costs nothing extra then.
        if info is not None and info.console_log is not None and not refresh:
            fresh = await asyncio.to_thread(st.console_tail, info.console_log)
            if fresh and "console" in desired:
                desired["console"]["tail"] = fresh
        updated = await apply_status(self.client, INSTANCES, body, desired, manager=AGENT_MANAGER)
        self._written.remember(uid, updated, desired)
        log.info("instance %s: %s (%s)", key, observation.phase, observation.reason or "no reason")

    async def held(self, key: str, body: Body, info: InstanceInfo | None, why: str) -> None:
        """Ready says the guest is held stopped for a cold move (`why`), and what waits."""
        if info is not None:
            wanted = str(Instance.model_validate(body).spec.power_state)
            restarted = (body.get("status") or {}).get("restartedAt")
            await self.report(
                key, body, st.held(info, why, wanted), info=info, restarted_at=restarted
            )

    def last_written_phase(self, uid: str) -> str | None:
        """The phase of our last write for `uid`; None when this process wrote none."""
        written = self._written.last(uid)
        return None if written is None else written.get("phase")

    def forget(self, uid: str) -> None:
        self._written.forget(uid)
