"""Power for an existing domain: converge it to spec.powerState, reboot when asked.

A guest that stopped outside kubenova while spec.powerState says Running is started again,
with a Warning event and a note in the Ready condition's message; the note is kept per
Instance UID until the guest is stopped on purpose (lost on restart, like all such memory).
"""

from __future__ import annotations

import asyncio
import logging
import time

from kubenova.agents.compute.driver import ComputeDriver, DomainState, InstanceInfo
from kubenova.agents.compute.status_writer import StatusWriter
from kubenova.kube.events import EventRecorder
from kubenova.kube.meta import Body

log = logging.getLogger(__name__)


class PowerControl:
    """Starts, stops and reboots domains as their Instances ask; remembers restart notes."""

    def __init__(self, driver: ComputeDriver, events: EventRecorder, status: StatusWriter) -> None:
        self.driver = driver
        self.events = events
        self.status = status
        self._notes: dict[str, str] = {}  # uid -> shown in Ready's message

    def note(self, uid: str) -> str:
        return self._notes.get(uid, "")

    def forget(self, uid: str) -> None:
        self._notes.pop(uid, None)

    async def converge(self, key: str, body: Body, info: InstanceInfo, wanted: str) -> InstanceInfo:
        """Power the domain on or off as `wanted` (spec.powerState) says; its fresh info."""
        uid = info.uid
        if wanted == "Running" and info.state in (DomainState.SHUTOFF, DomainState.CRASHED):
            if self._was_running(uid, body):
                message = (
                    f"domain {info.domain_name} stopped outside kubenova ({info.state}); "
                    "started again because spec.powerState is Running"
                )
                log.warning("instance %s: %s", key, message)
                self.events.record(body, "Warning", "DomainRestarted", message)
                stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                self._notes[uid] = f"restarted at {stamp} after it stopped outside kubenova"
            await asyncio.to_thread(self.driver.power_on, uid)
            return await asyncio.to_thread(self.driver.get_info, uid)
        if wanted == "Stopped" and info.state in (
            DomainState.RUNNING,
            DomainState.PAUSED,
            DomainState.SHUTTING_DOWN,
        ):
            log.info("instance %s: shutting down %s", key, info.domain_name)
            await asyncio.to_thread(self.driver.power_off, uid)
            self._notes.pop(uid, None)
            return await asyncio.to_thread(self.driver.get_info, uid)
        return info

    async def reboot(self, key: str, body: Body, info: InstanceInfo, wanted: str) -> InstanceInfo:
        """Reboot a running guest (spec.restartRequestedAt); a stopped one has nothing to do."""
        if wanted != "Running" or info.state != DomainState.RUNNING:
            return info  # a stopped guest has nothing to reboot; the request is done
        await asyncio.to_thread(self.driver.reboot, info.uid)
        log.info("instance %s: rebooted %s as requested", key, info.domain_name)
        self.events.record(body, "Normal", "Rebooted", "rebooted as spec.restartRequestedAt asks")
        return await asyncio.to_thread(self.driver.get_info, info.uid)

    def _was_running(self, uid: str, body: Body) -> bool:
        phase = self.status.last_written_phase(uid)
        if phase is not None:
            return phase == "Running"
        return bool((body.get("status") or {}).get("phase") == "Running")
