"""The agent's domain reconciler: make this host's hypervisor match each Instance placed here.

Level-triggered: every call reads the newest Instance body and the domain's real state
(never the last status written) and does only what is missing: spawn once (domains are
named after the Instance UID, so a restarted agent adopts instead of duplicating), converge
spec.powerState, reboot once per new spec.restartRequestedAt, tear down on deletion. Status
is applied as `kubenova-agent` only when it would change, so an Instance costs the agent one
write from Scheduled to Running.

This module decides and sequences; its parts, one job each: `references` (the Flavor, Image
and Networks an Instance names), `spec_builder` (the driver's DomainSpec), `power` (power
state and reboots), `status` (the status as a pure function of the domain) and
`status_writer` (applying it, remembering our last write).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import pydantic

from kubenova.agents.assignment import Whereabouts, placed_here, recheck
from kubenova.agents.compute import status as st
from kubenova.agents.compute.driver import (
    ComputeDriver,
    DomainState,
    HypervisorUnavailable,
    InstanceInfo,
    InstanceNotFound,
)
from kubenova.agents.compute.power import PowerControl
from kubenova.agents.compute.references import InstanceReferences, Sizing
from kubenova.agents.compute.resize import GuestResizer, claimed_sizing
from kubenova.agents.compute.spec import DomainSpec
from kubenova.agents.compute.spec_builder import domain_spec
from kubenova.agents.compute.status_writer import StatusWriter
from kubenova.agents.images.fetcher import ImageFetcher
from kubenova.api.v1alpha1 import Image, Instance
from kubenova.errors import KubenovaError, TemporaryError, UserError
from kubenova.kube import ApiError, KubeClient, kubenova_kind
from kubenova.kube.events import EventRecorder
from kubenova.kube.meta import Body, deleting, finalizers_of, uid_of
from kubenova.kube.objects import remove_finalizer
from kubenova.wellknown import AGENT_FINALIZER

log = logging.getLogger(__name__)

INSTANCES = kubenova_kind(Instance)

# Retry delays (seconds): a missing Flavor/Image is looked up again, a refused spawn retried.
RECHECK_MISSING = 30.0
MAX_RETRY = 300.0
STILL_STOPPING = 1.0


@dataclass
class DomainReconcilerSettings:
    host: str
    domain_type: str | None = None
    # Report phase Building when fetching + spawning takes longer than this (seconds).
    building_after: float = 1.0
    # A missing Flavor/Image (not watched) is looked up again after this many seconds.
    recheck_missing: float = RECHECK_MISSING
    # Plug NICs into the Networks' bridges (this agent also runs the network service).
    wire_nics: bool = False


@dataclass
class _Memory:
    """What this process remembers per Instance UID between reconciles (lost on restart)."""

    restarts: dict[str, str] = field(default_factory=dict)  # restartRequestedAt handled
    failures: dict[str, int] = field(default_factory=dict)


class DomainReconciler:
    """`await reconciler(key, body)` converges one Instance; a WorkQueue handler."""

    def __init__(
        self,
        client: KubeClient,
        driver: ComputeDriver,
        images: ImageFetcher,
        settings: DomainReconcilerSettings,
        events: EventRecorder,
    ) -> None:
        self.client = client
        self.driver = driver
        self.images = images
        self.settings = settings
        self.events = events
        self.uids: dict[str, str] = {}  # key -> uid of the Instance last seen under it
        self._keys: dict[str, str] = {}  # uid -> key
        self.refresh_console: set[str] = set()  # keys whose console tail should be re-read
        self._references = InstanceReferences(client)
        self._status = StatusWriter(client, settings.domain_type)
        self._power = PowerControl(driver, events, self._status)
        self._resize = GuestResizer(driver)
        self._memory = _Memory()
        self._finalized: set[str] = set()  # UIDs whose agent finalizer we removed
        # Keys that left the watch while a fresh read places them here: kept, rechecked.
        self.retained: set[str] = set()
        # UIDs of guests moving to or from this host: the migration service owns their
        # domain until the move is over, so no pass here may spawn one (a second copy), start
        # or tear one down; `held`: a cold move's source holds it stopped (uid -> why).
        self.moving: set[str] = set()
        self.held: dict[str, str] = {}
        self.converging: set[str] = set()  # UIDs a pass works on (a move's hold waits for it)

    def key_of_uid(self, uid: str) -> str | None:
        return self._keys.get(uid)

    async def __call__(self, key: str, body: Body | None) -> float | None:
        if body is None:
            await self._left(key)
            return None
        uid = uid_of(body)
        self._remember(key, uid)
        self.retained.discard(key)
        if uid in self.moving:  # the migration's end marks it again
            if (why := self.held.get(uid)) is not None and placed_here(body, self.settings.host):
                await self._status.held(key, body, await self._info_quietly(uid), why)
            return None
        self.held.pop(uid, None)
        if deleting(body):
            await self._delete(key, body)
            return None
        if not placed_here(body, self.settings.host):
            return None  # not selected by status.host (a relisted body): its DELETED follows
        self.converging.add(uid)
        try:
            return await self._converge(key, body)
        except InstanceNotFound:
            return 0.1  # the domain vanished under us (destroyed outside): look again
        except ApiError:
            raise  # the API, not the Instance, failed: the work queue backs off and retries
        except KubenovaError as exc:
            return await self._failed(key, body, exc)
        finally:
            self.converging.discard(uid)

    async def still_placed_here(self, info: InstanceInfo) -> bool:
        """Is a domain no watched Instance explains still this host's, as the operator says?

        Out of the watch's cache does not mean gone (the cache may lag, e.g. right after
        this agent started): the Instance the domain was defined for is read again, and
        kept, like one that left the watch, unless it is gone, deleting or placed elsewhere.
        """
        key = info.instance_key
        if key is None:
            return False
        try:
            where = await recheck(self.client, INSTANCES, key, info.uid, self.settings.host)
        except (ApiError, OSError, TimeoutError) as exc:
            log.warning("domain %s kept for now: reading %s failed: %s", info.domain_name, key, exc)
            return True  # never destroy on a guess; the next sweep looks again
        if where.whereabouts is Whereabouts.DELETING and where.body is not None:
            self._remember(key, info.uid)
            await self._delete(key, where.body)  # destroyed, and our finalizer released
            await self._destroy(key)
            return True
        if where.whereabouts is not Whereabouts.STILL_HERE:
            return False
        if key not in self.retained:
            log.warning(
                "domain %s: instance %s is not in the watch but its status.host is %s and it "
                "is not deleted: kept",
                info.domain_name,
                key,
                self.settings.host,
            )
        self._remember(key, info.uid)
        self.retained.add(key)
        return True

    def _remember(self, key: str, uid: str) -> None:
        old = self.uids.get(key)
        if old is not None and old != uid:
            self._keys.pop(old, None)  # recreated under the same name: the old domain is an orphan
        self.uids[key] = uid
        self._keys[uid] = key

    # -- teardown ----------------------------------------------------------------------------

    async def _left(self, key: str) -> None:
        """The Instance left this host's watch: destroy its domain only if it really left.

        Leaving the watch means status.host changed or the Instance is gone. A watch event
        is not proof, so the Instance is read again: the domain stays while the operator's
        status.host still names this host and the Instance is not being deleted.
        """
        uid = self.uids.get(key)
        if uid is None:
            await self._destroy(key)  # never seen here: only this process's memory to drop
            return
        if uid in self.moving:
            # A move's hand-over: what is left of the guest here is the migration's to
            # remove (a cold move's target has the source forget it); an orphan sweep
            # takes anything still defined after the move. This process forgets it.
            log.info("instance %s left this host during its move: its files are the move's", key)
            await self._destroy(key, keep_domain=True)
            return
        where = await recheck(self.client, INSTANCES, key, uid, self.settings.host)
        if where.whereabouts is Whereabouts.STILL_HERE:
            if key not in self.retained:
                log.warning(
                    "instance %s left the watch but its status.host is still %s and it is "
                    "not deleted: its domain stays",
                    key,
                    self.settings.host,
                )
            self.retained.add(key)
            return
        self.retained.discard(key)
        if where.whereabouts is Whereabouts.DELETING and where.body is not None:
            await self._delete(key, where.body)
        await self._destroy(key)

    async def _destroy(self, key: str, *, keep_domain: bool = False) -> None:
        """The Instance is gone, deleted or placed elsewhere: nothing of it may stay here
        (but its domain and files with `keep_domain`: a move removes those)."""
        self.retained.discard(key)
        uid = self.uids.pop(key, None)
        self.refresh_console.discard(key)
        if uid is None:
            return
        self._keys.pop(uid, None)
        self._finalized.discard(uid)
        if keep_domain:
            self._forget(uid)
            return
        await asyncio.to_thread(self.driver.destroy, uid)
        log.info("instance %s: gone, deleted or placed elsewhere: domain of %s destroyed", key, uid)
        self._forget(uid)

    async def _delete(self, key: str, body: Body) -> None:
        uid = uid_of(body)
        if uid in self._finalized:
            return  # done; this body predates our finalizer removal (a domain event's pass)
        if AGENT_FINALIZER not in finalizers_of(body):
            return
        await asyncio.to_thread(self.driver.destroy, uid)
        await remove_finalizer(self.client, INSTANCES, body, AGENT_FINALIZER)
        log.info("instance %s: domain destroyed, agent finalizer removed", key)
        self._forget(uid)
        self._finalized.add(uid)

    def _forget(self, uid: str) -> None:
        self._status.forget(uid)
        self._power.forget(uid)
        self._resize.forget(uid)
        for table in (self._memory.restarts, self._memory.failures, self.held):
            table.pop(uid, None)
        self.events.forget(uid)

    # -- convergence -------------------------------------------------------------------------

    async def _converge(self, key: str, body: Body) -> float | None:
        try:
            instance = Instance.model_validate(body)
        except pydantic.ValidationError as exc:
            raise UserError(f"the Instance does not parse: {exc}", reason="InvalidSpec") from exc
        uid = uid_of(body)
        wanted = str(instance.spec.power_state)
        requested = (body.get("spec") or {}).get("restartRequestedAt")
        handled = {(body.get("status") or {}).get("restartedAt"), self._memory.restarts.get(uid)}
        info = await self._info(uid)
        if info is None:
            info = await self._build(key, body, instance, wanted)
            # A fresh boot satisfies any restart asked for before it.
            restarted_at = requested
        else:
            info = await self._resize(key, body, info)  # a claimed new size, while shut off
            info = await self._power.converge(key, body, info, wanted)
            restarted_at = self._memory.restarts.get(uid) or (body.get("status") or {}).get(
                "restartedAt"
            )
            if requested and requested not in handled:
                info = await self._power.reboot(key, body, info, wanted)
                restarted_at = requested
        if restarted_at:
            self._memory.restarts[uid] = restarted_at
        self._memory.failures.pop(uid, None)
        note = self._power.note(uid) if wanted == "Running" else ""
        observation = st.observe(info, wanted, note)
        await self._status.report(
            key,
            body,
            observation,
            info=info,
            restarted_at=restarted_at,
            refresh=self._refresh(key),
        )
        if info.state == DomainState.SHUTTING_DOWN:
            return STILL_STOPPING
        return None

    async def _info(self, uid: str) -> InstanceInfo | None:
        try:
            return await asyncio.to_thread(self.driver.get_info, uid)
        except InstanceNotFound:
            return None

    async def _build(self, key: str, body: Body, instance: Instance, wanted: str) -> InstanceInfo:
        """Fetch the image and spawn; say Building only if that turns out to be slow."""
        sizing = claimed_sizing(body) or await self._references.sizing(instance)
        image = await self._references.image(instance.spec.image)
        work = asyncio.create_task(
            self._spawn(key, body, instance, sizing=sizing, image=image, wanted=wanted)
        )
        done, _ = await asyncio.wait({work}, timeout=self.settings.building_after)
        if not done:
            message = f"fetching image {instance.spec.image} and building the domain"
            await self._status.report(key, body, st.building(message), refresh=self._refresh(key))
        return await work

    async def incoming_spec(self, body: Body, *, resized: bool = False) -> DomainSpec:
        """The DomainSpec of an Instance arriving here by migration (image fetched); sized
        as its spec asks when `resized` (a cold move claims that size here), else as its
        claim holds."""
        instance = Instance.model_validate(body)
        claimed = None if resized else claimed_sizing(body)
        sizing = claimed or await self._references.sizing(instance)
        image = await self._references.image(instance.spec.image)
        local = await self.images.fetch(instance.spec.image, image)
        nics = await self._references.nics(body) if self.settings.wire_nics else ()
        return domain_spec(body, instance, sizing, image, local, nics)

    async def _spawn(
        self,
        key: str,
        body: Body,
        instance: Instance,
        *,
        sizing: Sizing,
        image: Image,
        wanted: str,
    ) -> InstanceInfo:
        local = await self.images.fetch(instance.spec.image, image)
        nics = await self._references.nics(body) if self.settings.wire_nics else ()
        spec = domain_spec(body, instance, sizing, image, local, nics)
        log.info("instance %s: spawning %s on %s", key, spec.domain_name, self.settings.host)
        try:
            info = await asyncio.to_thread(self.driver.spawn, spec)
            if wanted == "Stopped":
                await asyncio.to_thread(self.driver.power_off, spec.uid, timeout=0)
                info = await asyncio.to_thread(self.driver.get_info, spec.uid)
        except Exception:
            # Nothing half-created stays on the host: no domain, overlay or seed.
            try:
                await asyncio.to_thread(self.driver.destroy, spec.uid)
            except KubenovaError as cleanup:
                log.error("instance %s: cleanup after a failed spawn failed: %s", key, cleanup)
            raise
        return info

    # -- status ------------------------------------------------------------------------------

    def _refresh(self, key: str) -> bool:
        """Whether this pass re-reads the console tail (asked by a resync; asked once)."""
        refresh = key in self.refresh_console
        self.refresh_console.discard(key)
        return refresh

    async def _failed(self, key: str, body: Body, exc: KubenovaError) -> float:
        uid = uid_of(body)
        if isinstance(exc, HypervisorUnavailable) and (body.get("status") or {}).get("domain"):
            # libvirtd away (restarting) says nothing about a guest it ran, which runs on:
            # the status keeps what was last seen rather than calling it Error.
            self.events.record(body, "Warning", exc.reason, exc.message)
            log.warning("instance %s: %s: %s", key, exc.reason, exc.message)
            return exc.delay
        failures = self._memory.failures.get(uid, 0) + 1
        self._memory.failures[uid] = failures
        info = await self._info_quietly(uid)
        await self._status.report(
            key,
            body,
            st.failed(exc.reason, exc.message),
            info=info,
            refresh=self._refresh(key),
        )
        self.events.record(body, "Warning", exc.reason, exc.message)
        log.warning("instance %s: %s: %s", key, exc.reason, exc.message)
        if isinstance(exc, TemporaryError):
            return exc.delay
        if isinstance(exc, UserError):
            return self.settings.recheck_missing
        return min(MAX_RETRY, 5.0 * 2.0 ** (failures - 1))

    async def _info_quietly(self, uid: str) -> InstanceInfo | None:
        try:
            return await self._info(uid)
        except KubenovaError:
            return None
