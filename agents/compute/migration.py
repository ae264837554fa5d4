"""Live migration of one guest between two hosts' libvirtds (issue 18), both sides.

The target prepares first (`prepare_target`: a fresh, empty overlay on its own copy of the
base image, and the NoCloud seed, in its own instance directory; the network service has
plugged the bridges); the source then runs libvirt's peer-to-peer migration (`LiveMigration`):
its libvirtd connects to the target's (`PeerEndpoint.libvirt_uri`), QEMU streams memory and
the overlay's blocks (NON_SHARED_INC: only `vda`, the seed and iSCSI volumes are opened by
the target itself) over TCP to `PeerEndpoint.address`, and the guest is switched over once
memory converged. The domain is persisted on the target and undefined on the source in the
same job, so there is never a moment with two defined, running copies: a failed or aborted
job leaves the guest running on the source and nothing defined on the target.

Recipe and pitfalls measured in RUNBOOK.md ("Live migration between two private libvirtds"):
the destination must use its own paths (same path: "Block node is read-only"), given both as
destination XML and persistent XML; the address is passed per migration, never in qemu.conf.
"""

from __future__ import annotations

import contextlib
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import libvirt

from kubenova.agents.compute.domain_xml import ROOT_TARGET, DomainFiles
from kubenova.agents.compute.driver import ComputeFailure, InstanceNotFound
from kubenova.agents.compute.libvirt_events import translated_errors
from kubenova.agents.compute.libvirt_qemu import LibvirtDriver
from kubenova.agents.compute.spec import DomainSpec, domain_name_for

# Live, driven by the source libvirtd (the agent may die without stopping the job), local
# overlay copied incrementally (the base image is already on the target), and the domain's
# definition moved with it: the target persists it, the source undefines it.
MIGRATION_FLAGS = (
    libvirt.VIR_MIGRATE_LIVE
    | libvirt.VIR_MIGRATE_PEER2PEER
    | libvirt.VIR_MIGRATE_NON_SHARED_INC
    | libvirt.VIR_MIGRATE_PERSIST_DEST
    | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE
)
# Each jobStats call is a query job on the domain and a QEMU monitor round trip, competing
# with libvirt's own migration loop for both; the agent writes progress every 0.5 s anyway.
PROGRESS_INTERVAL = 0.5
# How long the guest may stay paused at the switch-over (QEMU's downtime-limit; its default
# is 300 ms, most of issue 18's 0.5 s). Measured here (bench, 128 MiB TCG guest, same run,
# 5 moves each): libvirt's downtime 184-511 ms at QEMU's default, 29-335 ms (median 105) at
# 100 ms, and the job no longer; a guest too busy to converge under it is the one a host
# operator raises it for (kubenova-agent --migration-max-downtime).
MAX_DOWNTIME_MS = 100


@dataclass(frozen=True)
class MigrationTuning:
    """The host operator's knobs for the jobs this host's agent starts (agent options,
    never tenant spec). None leaves QEMU's own: no bandwidth cap, a 300 ms downtime limit."""

    bandwidth_mib: int | None = None  # MiB/s for memory and disk: keeps a busy network usable
    max_downtime_ms: int | None = MAX_DOWNTIME_MS


@dataclass(frozen=True)
class PeerEndpoint:
    """How a source reaches a target host: what the target's agent publishes in its Host
    status (never a field a tenant writes)."""

    libvirt_uri: str  # the target libvirtd, as the source libvirtd connects to it
    address: str  # the IP QEMU on the target listens on for the migration stream
    instances_dir: Path  # where the target keeps instance directories


def published_endpoint(
    libvirt_uri: str, address: str | None, instances_dir: Path
) -> dict[str, str] | None:
    """What this host's agent writes to its Host's status.migration: a system QEMU libvirtd
    reached over TCP on the host's underlay address (libvirtd --listen, listen_tcp; the
    operator's network is expected to keep it to the hosts). None when there is nothing a
    peer could reach: no address, or a session/test libvirtd. A private system libvirtd on
    its own unix socket (the dev cloud's and the tests' hosts, all on one machine) is
    published as it is: only a peer on the same machine reaches that socket."""
    if address is None:
        return None
    if libvirt_uri.startswith("qemu+unix:///system?socket="):
        uri = libvirt_uri
    elif libvirt_uri.startswith("qemu:///system"):
        uri = f"qemu+tcp://{address}/system"
    else:
        return None
    return {
        "libvirtURI": uri,
        "address": address,
        "instancesDir": str(instances_dir),
    }


@dataclass(frozen=True)
class Progress:
    """libvirt's job statistics, reduced to what the InstanceMigration status shows."""

    data_total: int | None = None
    data_remaining: int | None = None
    memory_iteration: int | None = None
    downtime_ms: int | None = None
    elapsed_ms: int | None = None


ProgressCallback = Callable[[Progress], None]


class MigrationFailed(ComputeFailure):
    """The migration job failed or was aborted; the guest still runs on the source."""

    reason = "MigrationFailed"


def prepare_target(driver: LibvirtDriver, spec: DomainSpec) -> DomainFiles:
    """The target's files for an incoming guest: always a fresh overlay, since an aborted
    earlier attempt leaves one partly written (RUNBOOK). Refused where the guest's domain
    is defined: that host is its source (or it arrived already), and wiping its directory
    would destroy the running guest's disk."""
    if defined(driver, spec.uid):
        raise ComputeFailure(
            f"{spec.domain_name} is defined on {driver.uri}: this host is not a migration "
            "target for it"
        )
    driver.files.remove(spec.uid)
    return driver.files.prepare(spec)


def arrived(peer: PeerEndpoint, uid: str) -> bool:
    """Whether the guest's domain is running on the target (asked of its libvirtd, as the
    source's libvirtd reaches it): what a source that lost the guest must know before it
    says the guest moved."""
    try:
        connection = libvirt.open(peer.libvirt_uri)
    except libvirt.libvirtError as error:
        raise ComputeFailure(f"cannot ask {peer.libvirt_uri}: {error}") from error
    try:
        return bool(connection.lookupByName(domain_name_for(uid)).isActive())
    except libvirt.libvirtError:
        return False
    finally:
        connection.close()


def bridges_missing(spec: DomainSpec, sysfs: Path = Path("/sys/class/net")) -> list[str]:
    """The bridges of the guest's NICs this host does not have yet. The network service
    wires them once the operator lists this host for the guest's networks (from the
    target's claim on); until then the guest cannot arrive with its MACs and addresses."""
    return [nic.bridge for nic in spec.nics if not (sysfs / nic.bridge).is_dir()]


def finish_source(driver: LibvirtDriver, uid: str) -> None:
    """After the guest runs on the target (its domain already undefined here): the source's
    overlay and seed go. Refused while the domain is still defined here."""
    if defined(driver, uid):
        raise ComputeFailure(f"{domain_name_for(uid)} is still defined on {driver.uri}")
    driver.files.remove(uid)


def abandon_target(driver: LibvirtDriver, uid: str) -> None:
    """Roll the target back after a failed or cancelled migration: its files go (never
    those of a guest defined here)."""
    if defined(driver, uid):
        raise ComputeFailure(f"{domain_name_for(uid)} is defined on {driver.uri}: kept")
    driver.files.remove(uid)


def defined(driver: LibvirtDriver, uid: str) -> bool:
    """Whether the guest's domain is defined on this host (running or not)."""
    try:
        driver.get_info(uid)
    except InstanceNotFound:
        return False
    return True


def idle_domain(driver: LibvirtDriver, uid: str) -> Any | None:
    """The guest's libvirt domain here, None while a job runs on it (one thread hop: each
    is a wait on a loaded host, and this is on the move's critical path); InstanceNotFound
    once it is gone."""
    domain = driver.libvirt_domain(uid)
    try:
        active = domain.jobInfo()[0] != libvirt.VIR_DOMAIN_JOB_NONE
    except libvirt.libvirtError:
        return driver.libvirt_domain(uid)  # gone meanwhile: InstanceNotFound says so
    return None if active else domain


def destination_xml(
    source_xml: str,
    source_dir: Path,
    target_dir: Path,
    initiators: Mapping[str, str] | None = None,
) -> str:
    """The source's migratable XML with every file of the instance's directory moved to
    the target's directory (overlay, seed, console log), and the overlay's backing chain
    left out: the target's overlay names its own copy of the base image. The iSCSI disks'
    initiator names become the target's (`initiators`: source's -> target's): the target's
    QEMU logs in as its own host, which the volume host's access list admits before the
    move, and the source's name is taken off the list after it."""
    root = ET.fromstring(source_xml)
    for iqn in root.findall("./devices/disk/source/initiator/iqn"):
        name = iqn.get("name")
        if name is not None and initiators and name in initiators:
            iqn.set("name", initiators[name])
    old, new = f"{source_dir}/", f"{target_dir}/"
    for element in root.iter():
        for attribute in ("file", "path"):
            value = element.get(attribute)
            if value is not None and (value.startswith(old) or value == str(source_dir)):
                element.set(attribute, new + value[len(old) :])
    for disk in root.findall("./devices/disk"):
        for backing in disk.findall("backingStore"):
            disk.remove(backing)
    return ET.tostring(root, encoding="unicode")


def job_progress(stats: dict[str, Any]) -> Progress:
    """A Progress from `virDomainGetJobStats` (keys absent while no job runs)."""

    def number(key: str) -> int | None:
        value = stats.get(key)
        return int(value) if value is not None else None

    total = number("data_total")
    remaining = number("data_remaining")
    return Progress(
        data_total=total,
        data_remaining=remaining,
        memory_iteration=number("memory_iteration"),
        downtime_ms=number("downtime"),
        elapsed_ms=number("time_elapsed"),
    )


class LiveMigration:
    """One running migration of `domain` (a libvirt domain on the source) to `peer`.

    `start()` returns at once; libvirt's blocking call runs in a thread while `poll` reads
    the job statistics; `abort()` cancels (the guest stays on the source); `wait()` returns
    the last progress (with libvirt's downtime) or raises MigrationFailed.
    """

    def __init__(
        self,
        domain: Any,
        peer: PeerEndpoint,
        source_dir: Path,
        *,
        on_progress: ProgressCallback | None = None,
        bandwidth_mib: int | None = None,
        max_downtime_ms: int | None = MAX_DOWNTIME_MS,
        initiators: Mapping[str, str] | None = None,
    ) -> None:
        self.domain = domain
        self.max_downtime_ms = max_downtime_ms
        self.initiators = dict(initiators or {})
        self.bandwidth_mib = bandwidth_mib
        self.peer = peer
        self.source_dir = source_dir
        self.on_progress = on_progress
        self._thread: threading.Thread | None = None
        self._error: libvirt.libvirtError | None = None
        self._done = threading.Event()
        self._cancelled = threading.Event()
        self._called = False  # migrateToURI3 was called (not cancelled before)
        self.last = Progress()

    def params(self) -> dict[str, Any]:
        """migrateToURI3's typed parameters (RUNBOOK's working set)."""
        with translated_errors(f"migratable XML of {self.domain.name()}"):
            source = self.domain.XMLDesc(libvirt.VIR_DOMAIN_XML_MIGRATABLE)
        target_dir = self.peer.instances_dir / self.source_dir.name
        xml = destination_xml(source, self.source_dir, target_dir, self.initiators)
        params: dict[str, Any] = {
            libvirt.VIR_MIGRATE_PARAM_DEST_XML: xml,
            libvirt.VIR_MIGRATE_PARAM_PERSIST_XML: xml,
            libvirt.VIR_MIGRATE_PARAM_MIGRATE_DISKS: [ROOT_TARGET],
            libvirt.VIR_MIGRATE_PARAM_URI: f"tcp://{self.peer.address}",
            libvirt.VIR_MIGRATE_PARAM_LISTEN_ADDRESS: self.peer.address,
        }
        if self.bandwidth_mib is not None:
            # A cap keeps a busy network usable; MiB/s, as libvirt counts it.
            params[libvirt.VIR_MIGRATE_PARAM_BANDWIDTH] = self.bandwidth_mib
        return params

    def start(self) -> None:
        params = self.params()
        if self.max_downtime_ms is not None:
            # QEMU's downtime-limit (how long the guest may stay paused at the switch-over);
            # migrateToURI3 has no parameter for it, the domain keeps it for its next job.
            with translated_errors(f"max downtime of {self.domain.name()}"):
                self.domain.migrateSetMaxDowntime(self.max_downtime_ms, 0)
        self._thread = threading.Thread(
            target=self._run, args=(params,), name=f"migrate-{self.domain.name()}", daemon=True
        )
        self._thread.start()

    def _run(self, params: dict[str, Any]) -> None:
        try:
            if not self._cancelled.is_set():  # else aborted before there was a job to abort
                self._called = True
                self.domain.migrateToURI3(self.peer.libvirt_uri, params, MIGRATION_FLAGS)
        except libvirt.libvirtError as error:
            self._error = error
        finally:
            self._done.set()

    def poll(self) -> Progress:
        """The job's progress now (the last seen once the job is over)."""
        if not self._done.is_set():
            with contextlib.suppress(libvirt.libvirtError):
                progress = job_progress(self.domain.jobStats(0))
                if progress.data_total is not None:
                    self.last = progress
                    if self.on_progress is not None:
                        self.on_progress(progress)
        return self.last

    def abort(self) -> None:
        """Cancel the job: QEMU stops streaming, the guest runs on on the source. Asked
        before libvirt has the job (start() still building its parameters), it is never
        started, or aborted by `wait` once it is there."""
        self._cancelled.set()
        with contextlib.suppress(libvirt.libvirtError):
            self.domain.abortJob()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float = 600.0) -> Progress:
        """Poll progress until the job ends; MigrationFailed (guest on the source) if it
        failed, ComputeFailure if it outlived `timeout` (then it is aborted)."""
        deadline = time.monotonic() + timeout
        while not self._done.wait(PROGRESS_INTERVAL):
            self.poll()
            if self._cancelled.is_set():
                with contextlib.suppress(libvirt.libvirtError):
                    self.domain.abortJob()  # the abort came as the job was starting
            if time.monotonic() > deadline:
                self.abort()
                self._done.wait(30.0)
                raise ComputeFailure(
                    f"migration of {self.domain.name()} took over {timeout:.0f} s: aborted"
                )
        if self._error is not None:
            message = self._error.get_error_message()
            raise MigrationFailed(f"migration of {self.domain.name()} failed: {message}")
        if not self._called:
            raise MigrationFailed(f"migration of {self.domain.name()} cancelled before it began")
        return self.last
