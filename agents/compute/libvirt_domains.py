"""The part of the contract any libvirt connection does the same way (real QEMU or test driver).

Subclasses decide where an instance's files live and how volumes are plugged; this class
defines, starts, stops, reports and adopts domains named `kubenova-<uid>`.
"""

from __future__ import annotations

import abc
import contextlib
import logging
import threading
import time
from pathlib import Path
from typing import Any

import libvirt

from kubenova.agents.compute.domain_xml import (
    DomainFiles,
    DomainSettings,
    build_domain_xml,
    disk_targets,
    instance_key,
    secret_usages,
)
from kubenova.agents.compute.driver import (
    ComputeDriver,
    ComputeFailure,
    DomainState,
    HypervisorUnavailable,
    InstanceInfo,
    InstanceNotFound,
    LifecycleCallback,
    LifecycleEvent,
)
from kubenova.agents.compute.libvirt_events import (
    ensure_event_loop,
    is_not_running,
    translated_errors,
)
from kubenova.agents.compute.resize import resized_xml
from kubenova.agents.compute.spec import (
    DOMAIN_PREFIX,
    DomainSpec,
    domain_name_for,
    uid_from_domain_name,
)

log = logging.getLogger(__name__)

_STATES = {
    libvirt.VIR_DOMAIN_NOSTATE: DomainState.UNKNOWN,
    libvirt.VIR_DOMAIN_RUNNING: DomainState.RUNNING,
    libvirt.VIR_DOMAIN_BLOCKED: DomainState.RUNNING,
    libvirt.VIR_DOMAIN_PAUSED: DomainState.PAUSED,
    libvirt.VIR_DOMAIN_SHUTDOWN: DomainState.SHUTTING_DOWN,
    libvirt.VIR_DOMAIN_SHUTOFF: DomainState.SHUTOFF,
    libvirt.VIR_DOMAIN_CRASHED: DomainState.CRASHED,
    libvirt.VIR_DOMAIN_PMSUSPENDED: DomainState.PAUSED,
}
SHUTDOWN_RETRY_SECONDS = 5.0
_EVENTS: dict[int, tuple[str, DomainState | None]] = {
    libvirt.VIR_DOMAIN_EVENT_DEFINED: ("defined", None),
    libvirt.VIR_DOMAIN_EVENT_UNDEFINED: ("undefined", None),
    libvirt.VIR_DOMAIN_EVENT_STARTED: ("started", DomainState.RUNNING),
    libvirt.VIR_DOMAIN_EVENT_SUSPENDED: ("suspended", DomainState.PAUSED),
    libvirt.VIR_DOMAIN_EVENT_RESUMED: ("resumed", DomainState.RUNNING),
    libvirt.VIR_DOMAIN_EVENT_STOPPED: ("stopped", DomainState.SHUTOFF),
    libvirt.VIR_DOMAIN_EVENT_SHUTDOWN: ("shutdown", DomainState.SHUTTING_DOWN),
    libvirt.VIR_DOMAIN_EVENT_PMSUSPENDED: ("pmsuspended", DomainState.PAUSED),
    libvirt.VIR_DOMAIN_EVENT_CRASHED: ("crashed", DomainState.CRASHED),
}


class LibvirtBackedDriver(ComputeDriver, abc.ABC):
    """ComputeDriver on one libvirt connection; files and volume plugging left to subclasses."""

    def __init__(self, uri: str, settings: DomainSettings, *, shutdown_timeout: float) -> None:
        ensure_event_loop()
        self.uri = uri
        self.settings = settings
        self.shutdown_timeout = shutdown_timeout
        self._lock = threading.Lock()
        self._connect_lock = threading.Lock()
        self._callbacks: list[LifecycleCallback] = []
        self._event_registration: int | None = None
        # usage -> when define_secret last ran: a sweep started before leaves it alone.
        self._secrets_defined: dict[str, float] = {}
        with translated_errors(f"connect to {uri}"):
            self._open: Any = libvirt.open(uri)

    # -- what subclasses provide ---------------------------------------------------------------
    @abc.abstractmethod
    def _prepare_files(self, spec: DomainSpec) -> DomainFiles:
        """Create (or find) the instance's overlay, seed and console log path."""

    @abc.abstractmethod
    def _remove_files(self, uid: str) -> None:
        """Remove everything `_prepare_files` made for `uid`."""

    @abc.abstractmethod
    def _grow_root_disk(self, uid: str, size_gib: int) -> None:
        """Grow the instance's overlay to `size_gib` if it is smaller."""

    @abc.abstractmethod
    def _domain_xml_for_disks(self, domain: Any) -> str:
        """The domain XML whose <disk>s say what is attached now."""

    def _build_xml(self, spec: DomainSpec, files: DomainFiles) -> str:
        """The domain's definition; the Xen driver builds Xen's (xen.py)."""
        return build_domain_xml(spec, self.settings, files)

    # -- the contract --------------------------------------------------------------------------
    def spawn(self, spec: DomainSpec) -> InstanceInfo:
        """Define (once) and start the domain; an existing domain of this UID is adopted."""
        domain = self._lookup(spec.uid)
        if domain is None:
            files = self._prepare_files(spec)
            xml = self._build_xml(spec, files)
            with translated_errors(f"define {spec.domain_name}"):
                domain = self._connection.defineXML(xml)
        self._start(domain)
        return self._info(domain)

    def resize(self, uid: str, vcpus: int, memory_mib: int, disk_gib: int) -> None:
        domain = self._require(uid)
        if self._is_active(domain):
            raise ComputeFailure(f"domain {domain.name()} runs: it is resized only while shut off")
        with translated_errors(f"resize {domain.name()}"):
            _state, max_kib, _memory, defined_vcpus, _time = domain.info()
            if (defined_vcpus, max_kib // 1024) != (vcpus, memory_mib):  # a define is an event
                xml = domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
                self._connection.defineXML(resized_xml(xml, vcpus, memory_mib))
        self._grow_root_disk(uid, disk_gib)

    def power_on(self, uid: str) -> None:
        """Start the domain unless it runs."""
        self._start(self._require(uid))

    def power_off(self, uid: str, *, timeout: float | None = None) -> None:
        """ACPI shutdown, then destroy what is still running after `timeout` seconds."""
        domain = self._require(uid)
        grace = self.shutdown_timeout if timeout is None else timeout
        deadline = time.monotonic() + grace
        next_request = 0.0
        while grace > 0 and self._is_active(domain) and time.monotonic() < deadline:
            if time.monotonic() >= next_request:
                # One ACPI press can be lost (a guest still booting); press again now and then.
                self._request_shutdown(domain)
                next_request = time.monotonic() + SHUTDOWN_RETRY_SECONDS
            time.sleep(0.1)
        self._force_off(domain)

    def _request_shutdown(self, domain: Any) -> None:
        try:
            domain.shutdown()
        except libvirt.libvirtError as error:
            if not is_not_running(error):
                with translated_errors(f"shut down {domain.name()}"):
                    raise

    def reboot(self, uid: str, *, hard: bool = False) -> None:
        """Reboot via the guest, or reset the machine when `hard`; a stopped domain is started."""
        domain = self._require(uid)
        if not self._is_active(domain):
            self._start(domain)
            return
        with translated_errors(f"reboot {domain.name()}"):
            if hard:
                domain.reset(0)
            else:
                domain.reboot(0)

    def destroy(self, uid: str) -> None:
        """Stop and undefine the domain, then remove its files; nothing there is fine, and so
        is a domain that goes meanwhile (the orphan sweep and the reconciler may both be at
        it: the second finds it gone between its lookup and its power-off)."""
        domain = self._lookup(uid)
        if domain is not None:
            with contextlib.suppress(InstanceNotFound):
                self._force_off(domain)
                self._undefine(domain)
        self._remove_files(uid)

    def get_info(self, uid: str) -> InstanceInfo:
        """The instance as libvirt sees it now."""
        return self._info(self._require(uid))

    def libvirt_domain(self, uid: str) -> Any:
        """The libvirt domain of `uid`, for the jobs the contract does not cover (live
        migration, migration.py); InstanceNotFound if absent."""
        return self._require(uid)

    def list_instances(self) -> list[InstanceInfo]:
        """All domains named kubenova-*, running or defined."""
        with translated_errors("list domains"):
            domains = self._connection.listAllDomains(0)
        infos = []
        for domain in domains:
            if not domain.name().startswith(DOMAIN_PREFIX):
                continue
            try:
                infos.append(self._info(domain))
            except InstanceNotFound:
                continue  # undefined while we listed
        return infos

    def secret_defined_at(self, usage: str) -> float | None:
        return self._secrets_defined.get(usage)

    def _note_secret(self, usage: str) -> None:
        self._secrets_defined[usage] = time.monotonic()

    def secrets_in_use(self) -> set[str]:
        """The secret usages any domain here names, live or in its persistent definition
        (an incoming migration's paused domain included)."""
        with translated_errors("list domains"):
            domains = self._connection.listAllDomains(0)
        used: set[str] = set()
        for domain in domains:
            try:
                used |= secret_usages(domain.XMLDesc(0))
                if domain.isActive() and domain.isPersistent():
                    used |= secret_usages(domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
            except libvirt.libvirtError:
                continue  # undefined while we listed
        return used

    def subscribe(self, callback: LifecycleCallback) -> None:
        """Deliver lifecycle events of our domains to `callback` from libvirt's event thread."""
        connection = self._connection
        with self._lock:
            self._callbacks.append(callback)
            if self._event_registration is None:
                self._event_registration = self._register_events(connection)

    def close(self) -> None:
        """Deregister events and close the connection."""
        with self._lock:
            if self._event_registration is not None:
                with contextlib.suppress(libvirt.libvirtError):
                    self._open.domainEventDeregisterAny(self._event_registration)
                self._event_registration = None
            self._callbacks.clear()
        with contextlib.suppress(libvirt.libvirtError):
            self._open.close()

    # -- shared mechanics ----------------------------------------------------------------------
    @property
    def _connection(self) -> Any:
        """The connection, opened again when libvirtd went away since (a crash, a restart).

        A closed connection never recovers by itself: without this every later call fails
        with "client socket is closed" while the guests run on under the new daemon.
        """
        with self._connect_lock:
            if not self._open.isAlive():
                self._reconnect()
            return self._open

    def _reconnect(self) -> None:
        with translated_errors(f"connect to {self.uri} again"):
            fresh = libvirt.open(self.uri)
        with self._lock:
            if self._event_registration is not None:
                # Events lost in between are not replayed: the service's resync lists domains.
                try:
                    self._event_registration = self._register_events(fresh)
                except HypervisorUnavailable:
                    fresh.close()
                    raise
        stale, self._open = self._open, fresh
        with contextlib.suppress(libvirt.libvirtError):
            stale.close()
        log.warning("libvirt connection to %s was lost: connected again", self.uri)

    def _register_events(self, connection: Any) -> int:
        with translated_errors("register for domain events"):
            registration: int = connection.domainEventRegisterAny(
                None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, self._on_lifecycle, None
            )
        return registration

    def _lookup(self, uid: str) -> Any | None:
        try:
            return self._connection.lookupByName(domain_name_for(uid))
        except libvirt.libvirtError as error:
            if error.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return None
            with translated_errors(f"look up {domain_name_for(uid)}"):
                raise

    def _require(self, uid: str) -> Any:
        domain = self._lookup(uid)
        if domain is None:
            raise InstanceNotFound(f"no domain {domain_name_for(uid)} on {self.uri}")
        return domain

    def _is_active(self, domain: Any) -> bool:
        with translated_errors(f"state of {domain.name()}"):
            return bool(domain.isActive())

    def _start(self, domain: Any) -> None:
        if self._is_active(domain):
            return
        try:
            domain.create()
        except libvirt.libvirtError as error:
            # Another caller started it between our check and create(): that is success.
            if is_not_running(error) and self._is_active(domain):
                return
            with translated_errors(f"start {domain.name()}"):
                raise

    def _force_off(self, domain: Any) -> None:
        if not self._is_active(domain):
            return
        try:
            domain.destroy()
        except libvirt.libvirtError as error:
            if not is_not_running(error):
                with translated_errors(f"destroy {domain.name()}"):
                    raise

    def _undefine(self, domain: Any) -> None:
        with translated_errors(f"undefine {domain.name()}"):
            try:
                domain.undefineFlags(
                    libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
                    | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
                    | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM
                )
            except libvirt.libvirtError as error:
                # The test driver refuses these flags ("unsupported flags"): plain undefine.
                if error.get_error_code() not in (
                    libvirt.VIR_ERR_NO_SUPPORT,
                    libvirt.VIR_ERR_INVALID_ARG,
                ):
                    raise
                domain.undefine()

    def _info(self, domain: Any) -> InstanceInfo:
        name = domain.name()
        with translated_errors(f"info of {name}"):
            state, _max_kib, memory_kib, vcpus, _cpu_time = domain.info()
            domain_uuid = domain.UUIDString()
            disks_xml = self._domain_xml_for_disks(domain)
        uid = uid_from_domain_name(name) or name
        return InstanceInfo(
            uid=uid,
            domain_name=name,
            domain_uuid=domain_uuid,
            state=_STATES.get(state, DomainState.UNKNOWN),
            vcpus=vcpus,
            memory_mib=memory_kib // 1024,
            volume_targets=disk_targets(disks_xml),
            console_log=self.console_log(uid),
            instance_key=instance_key(disks_xml),
        )

    def _on_lifecycle(
        self, _connection: Any, domain: Any, event: int, _detail: int, _opaque: object
    ) -> None:
        uid = uid_from_domain_name(domain.name())
        if uid is None:
            return
        what, state = _EVENTS.get(event, (f"event-{event}", None))
        lifecycle = LifecycleEvent(uid=uid, domain_name=domain.name(), state=state, detail=what)
        with self._lock:
            callbacks = list(self._callbacks)
        for callback in callbacks:
            callback(lifecycle)


def console_log_path(instance_dir: Path) -> Path:
    """Where an instance's serial console is logged, inside its directory."""
    return instance_dir / "console.log"
