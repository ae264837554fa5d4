"""Live migration between two hosts' libvirtds (issue 18), with one real TCG guest.

Two private libvirtds stand for two hosts: distinct host UUIDs, their own migration port
ranges, their own instance directories. The guest prints `KUBENOVA-TICK <n>` to its serial
console every 100 ms (user-data key `kubenova-test-tick-ms`); a watcher reads both hosts'
console logs every 10 ms. Moving it proves it live: the counter goes on without a hole across
the move, and the longest wait between two ticks is the guest's pause. The same guest is then
moved back and forth for the failure cases: a cancelled job, a target whose libvirtd is down,
and `kill -9` of the agent mid-move each leave exactly one running copy of it.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import libvirt
import pytest

from kubenova.agents.compute import (
    CloudInitSeed,
    ComputeFailure,
    DomainSpec,
    DomainState,
    InstanceNotFound,
    RootDisk,
)
from kubenova.agents.compute.libvirt_qemu import LibvirtDriver, LibvirtSettings
from kubenova.agents.compute.migration import (
    LiveMigration,
    MigrationFailed,
    PeerEndpoint,
    abandon_target,
    arrived,
    finish_source,
    prepare_target,
)
from kubenova.devcluster.libvirtd import LibvirtdError, PrivateLibvirtd, check_prerequisites
from tests.fixtures.test_image import GuestImage
from tests.support.waiting import eventually

pytestmark = pytest.mark.libvirt

TICK = re.compile(r"KUBENOVA-TICK (\d+)")
TICK_MS = 100
PAUSE_TARGET = 0.5  # seconds (issue 18); asserted with headroom for a loaded 2-core machine
PAUSE_LIMIT = 1.5


def free_port_range(width: int = 10) -> tuple[int, int]:
    """A port range that was free a moment ago (each daemon its own: incoming QEMUs bind it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        low = int(probe.getsockname()[1])
    return low, low + width - 1


@dataclass
class Host:
    name: str
    libvirtd: PrivateLibvirtd
    driver: LibvirtDriver
    instances_dir: Path

    @property
    def peer(self) -> PeerEndpoint:
        return PeerEndpoint(self.libvirtd.uri, "127.0.0.1", self.instances_dir)

    def runs(self, uid: str) -> bool:
        try:
            return self.driver.get_info(uid).state is DomainState.RUNNING
        except InstanceNotFound:
            return False

    def defined(self, uid: str) -> bool:
        try:
            self.driver.get_info(uid)
        except InstanceNotFound:
            return False
        return True


def start_host(name: str) -> Host:
    root = Path(tempfile.mkdtemp(prefix=f"kn-mig{name}-"))  # short: socket paths <= 108 bytes
    daemon = PrivateLibvirtd(root, host_uuid=str(uuid.uuid4()), migration_ports=free_port_range())
    daemon.start()
    instances = root / "instances"
    driver = LibvirtDriver(
        LibvirtSettings(uri=daemon.uri, instances_dir=instances, domain_type="qemu")
    )
    return Host(name, daemon, driver, instances)


def stop_host(host: Host) -> None:
    with contextlib.suppress(Exception):
        host.driver.close()
    host.libvirtd.stop()
    shutil.rmtree(host.libvirtd.root, ignore_errors=True)


@pytest.fixture(scope="module")
def hosts() -> Iterator[tuple[Host, Host]]:
    try:
        check_prerequisites()
    except LibvirtdError as error:
        pytest.fail(str(error), pytrace=False)
    a = start_host("a")
    try:
        b = start_host("b")
    except BaseException:
        stop_host(a)
        raise
    try:
        yield a, b
    finally:
        stop_host(b)
        stop_host(a)


@dataclass
class Ticks:
    """Every tick seen on either host's console log, with when the watcher saw it."""

    seen: dict[int, tuple[str, float]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def last(self) -> int:
        with self.lock:
            return max(self.seen, default=-1)

    def host_of_last(self) -> str:
        with self.lock:
            return self.seen[max(self.seen)][0]

    def pause_after(self, start: int) -> tuple[float, int]:
        """The longest wait between consecutive ticks from `start` on, and after which tick."""
        with self.lock:
            numbers = sorted(n for n in self.seen if n >= start)
            gaps = [
                (self.seen[n + 1][1] - self.seen[n][1], n) for n in numbers if n + 1 in self.seen
            ]
        return max(gaps)

    def holes(self, start: int) -> list[int]:
        with self.lock:
            top = max(self.seen)
            return [n for n in range(start, top) if n not in self.seen]


class TickWatcher:
    """Reads both console logs every 10 ms (each log is only ever appended to)."""

    def __init__(self, logs: dict[str, Callable[[], Path | None]]) -> None:
        self.logs = logs
        self.ticks = Ticks()
        self._offsets: dict[str, tuple[int, int]] = {}  # host -> (inode, bytes read)
        self._tails: dict[str, bytes] = {}  # host -> its log's unfinished last line
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            for host, where in self.logs.items():
                path = where()
                if path is None or not path.exists():
                    continue
                try:
                    with path.open("rb") as log:
                        # A move back makes a fresh file on this host: read it from the start.
                        # ext4 often gives it the inode the source's removed log had, so a
                        # file shorter than what was read of the old one is new too.
                        info = os.fstat(log.fileno())
                        known, offset = self._offsets.get(host, (info.st_ino, 0))
                        inode = info.st_ino
                        offset = offset if known == inode and info.st_size >= offset else 0
                        log.seek(offset)
                        chunk = log.read()
                except FileNotFoundError:
                    continue
                end = chunk.rfind(b"\n") + 1
                self._offsets[host] = (inode, offset + end)
                # A line the guest was printing as it switched hosts begins in the source's
                # log and ends in the target's fresh one: the start goes in front.
                others = b"".join(t for h, t in self._tails.items() if h != host)
                head = others if offset == 0 else b""
                self._tails[host] = chunk[end:]
                now = time.monotonic()
                for match in TICK.finditer((head + chunk[:end]).decode(errors="replace")):
                    with self.ticks.lock:
                        self.ticks.seen.setdefault(int(match.group(1)), (host, now))

    def wait_past(self, tick: int, timeout: float = 60.0) -> None:
        try:
            eventually(lambda: self.ticks.last() > tick, timeout=timeout, interval=0.05,
                       what=f"the guest's counter past {tick}")  # fmt: skip
        except AssertionError as error:
            raise AssertionError(f"{error}; the logs: {self.describe()}") from None

    def describe(self) -> str:
        """Each host's log as it is now and as read: what a stalled counter is told by."""
        told = []
        for host, where in self.logs.items():
            path = where()
            try:
                assert path is not None
                info = path.stat()
                text = path.read_text(errors="replace")
                ticks = TICK.findall(text)
                now = (f"inode {info.st_ino}, {info.st_size} B, last tick {ticks[-1:]}, "
                       f"ending {text[-300:]!r}")  # fmt: skip
            except (AssertionError, OSError) as exc:
                now = f"unreadable ({exc!r})"
            told.append(f"{host}: {path}: {now}; read (inode, bytes) {self._offsets.get(host)}")
        return " | ".join(told)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class Guest:
    spec: DomainSpec
    watcher: TickWatcher


@pytest.fixture(scope="module")
def guest(hosts: tuple[Host, Host], test_image: GuestImage) -> Iterator[Guest]:
    """One 128 MiB TCG guest ticking every 100 ms, started on host a."""
    a = hosts[0]
    uid = str(uuid.uuid4())
    spec = DomainSpec(
        uid=uid,
        namespace="tenant-a",
        name="mover",
        vcpus=1,
        memory_mib=128,
        root_disk=RootDisk(test_image.disk_qcow2),
        kernel_boot=test_image.kernel_boot(),
        seed=CloudInitSeed(
            instance_id=f"i-{uid[:8]}", hostname="mover",
            user_data=f"#cloud-config\nkubenova-test-tick-ms: {TICK_MS}\n",
        ),
    )  # fmt: skip
    a.driver.spawn(spec)
    watcher = TickWatcher({h.name: (lambda h=h: h.driver.console_log(uid)) for h in hosts})
    try:
        watcher.wait_past(5, timeout=120)
        yield Guest(spec, watcher)
    finally:
        watcher.stop()
        for host in hosts:
            with contextlib.suppress(Exception):
                host.driver.destroy(uid)


def where(hosts: tuple[Host, Host], uid: str) -> tuple[Host, Host]:
    """(the host running the guest, the other one); exactly one runs it."""
    running = [host for host in hosts if host.runs(uid)]
    assert len(running) == 1, f"guest runs on {[h.name for h in running]}"
    [source] = running
    return source, next(host for host in hosts if host is not source)


def migration(source: Host, target: Host, spec: DomainSpec, **options: int) -> LiveMigration:
    prepare_target(target.driver, spec)
    return LiveMigration(
        source.driver.libvirt_domain(spec.uid),
        target.peer,
        source.driver.files.directory(spec.uid),
        **options,  # type: ignore[arg-type]
    )


def assert_still_on(host: Host, other: Host, guest: Guest) -> None:
    """After a failed move: the guest ticks on `host`, `other` has no domain (rollback)."""
    uid = guest.spec.uid
    abandon_target(other.driver, uid)
    before = guest.watcher.ticks.last()
    guest.watcher.wait_past(before + 3)
    assert guest.watcher.ticks.host_of_last() == host.name
    assert host.runs(uid)
    assert not other.defined(uid)
    assert not other.driver.files.directory(uid).exists()


def test_the_guest_keeps_counting_across_the_move(
    hosts: tuple[Host, Host], guest: Guest, record_property: Callable[[str, object], None]
) -> None:
    source, target = where(hosts, guest.spec.uid)
    first = guest.watcher.ticks.last()
    move = migration(source, target, guest.spec)
    started = time.monotonic()
    move.start()
    move.wait(timeout=120)
    seconds = time.monotonic() - started
    finish_source(source.driver, guest.spec.uid)
    guest.watcher.wait_past(guest.watcher.ticks.last() + 5, timeout=30)

    assert where(hosts, guest.spec.uid) == (target, source)
    assert not source.defined(guest.spec.uid)  # undefined on the source in the same job
    # What a source that finds no domain asks before it says the guest moved: only the
    # target's libvirtd running it counts (a guest on neither host ends GuestNotFound).
    assert arrived(target.peer, guest.spec.uid)
    assert not arrived(source.peer, guest.spec.uid)
    assert not arrived(target.peer, str(uuid.uuid4()))
    assert guest.watcher.ticks.host_of_last() == target.name
    assert guest.watcher.ticks.holes(first) == []  # not one tick lost: the same guest, live
    pause, after = guest.watcher.ticks.pause_after(first)
    stats = target.driver.libvirt_domain(guest.spec.uid).jobStats(
        libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED
    )
    record_property("libvirt_downtime_ms", stats.get("downtime"))
    record_property("migration_seconds", round(seconds, 2))
    record_property("guest_pause_seconds", round(pause, 3))
    print(f"\nlive migration {source.name}->{target.name}: {seconds:.2f} s, guest paused "
          f"{pause:.3f} s (after tick {after}; target {PAUSE_TARGET} s), libvirt downtime "
          f"{stats.get('downtime')} ms")  # fmt: skip
    assert pause < PAUSE_LIMIT, f"guest paused {pause:.2f} s"
    # The target's persistent definition names its own files, not the source's.
    persistent = target.driver.libvirt_domain(guest.spec.uid).XMLDesc(
        libvirt.VIR_DOMAIN_XML_INACTIVE
    )
    assert str(target.instances_dir) in persistent
    assert str(source.instances_dir) not in persistent


def last_tick(log: Path) -> int:
    return max((int(n) for n in TICK.findall(log.read_text(errors="replace"))), default=-1)


def writers(log: Path) -> list[str]:
    """Where the processes writing `log` have it open: '<path> (deleted)' for an unlinked one."""
    found = set()
    for fd in Path("/proc").glob("[0-9]*/fd/*"):
        if fd.parts[2] != str(os.getpid()):  # not the watcher's reads
            with contextlib.suppress(OSError):
                if (target := os.readlink(fd)).startswith(str(log)):
                    found.add(target)
    return sorted(found)


def test_the_console_log_grows_again_on_a_host_the_guest_returns_to(
    hosts: tuple[Host, Host], guest: Guest
) -> None:
    """There and back: the log the user reads on the host it returns to is the one its new
    QEMU writes, never what is left of its earlier stint there."""
    uid = guest.spec.uid
    home, away = where(hosts, uid)
    stint = last_tick(home.driver.files.console_log(uid))
    for source, target in ((home, away), (away, home)):
        move = migration(source, target, guest.spec)
        move.start()
        move.wait(timeout=120)
        if source is home:
            # Left as a source agent killed mid-move leaves it (no finish_source): the move
            # back must not reuse the earlier stint's log.
            assert home.driver.files.console_log(uid).exists()
        else:
            finish_source(source.driver, uid)
    back = guest.watcher.ticks.last()
    log = home.driver.console_log(uid)
    assert log is not None
    eventually(lambda: last_tick(log) > back + 3, timeout=30,
               what=f"{home.name}'s console log past tick {back} (its earlier stint ended at "
                    f"{stint})")  # fmt: skip
    assert writers(log) == [str(log)]  # the file at the path, not an unlinked one
    with pytest.raises(ComputeFailure, match="still defined"):
        finish_source(home.driver, uid)  # a late cleanup of its first stint there: refused
    assert writers(log) == [str(log)]
    assert guest.watcher.ticks.host_of_last() == home.name
    assert guest.watcher.ticks.holes(stint) == []


def test_the_source_is_never_prepared_as_a_target(hosts: tuple[Host, Host], guest: Guest) -> None:
    source, _target = where(hosts, guest.spec.uid)
    disk = source.driver.files.overlay(guest.spec.uid)
    with pytest.raises(ComputeFailure, match="not a migration target"):
        prepare_target(source.driver, guest.spec)
    with pytest.raises(ComputeFailure, match="kept"):
        abandon_target(source.driver, guest.spec.uid)
    assert disk.exists()  # the running guest's disk untouched


def test_a_cancelled_move_leaves_the_guest_on_its_source(
    hosts: tuple[Host, Host], guest: Guest
) -> None:
    source, target = where(hosts, guest.spec.uid)
    move = migration(source, target, guest.spec, bandwidth_mib=1, max_downtime_ms=150)
    move.start()
    eventually(lambda: move.poll().data_total, timeout=30, interval=0.05, what="job running")
    # The downtime limit reached QEMU on the source (the job's switch-over would keep to it).
    assert move.domain.migrateGetMaxDowntime(0) == 150
    move.abort()
    with pytest.raises(MigrationFailed):
        move.wait(timeout=60)
    assert_still_on(source, target, guest)


def test_a_move_cancelled_before_its_job_began_never_starts(
    hosts: tuple[Host, Host], guest: Guest
) -> None:
    """The agent's abort can come while start() still builds the job's parameters (seen in
    the e2e: a deleted migration's abort, then the job started): it must not run on."""
    source, target = where(hosts, guest.spec.uid)
    move = migration(source, target, guest.spec)
    move.abort()
    move.start()
    with pytest.raises(MigrationFailed, match="cancelled before it began"):
        move.wait(timeout=60)
    assert_still_on(source, target, guest)


def test_a_move_to_a_host_whose_libvirtd_is_down_fails_and_rolls_back(
    hosts: tuple[Host, Host], guest: Guest
) -> None:
    source, target = where(hosts, guest.spec.uid)
    move = migration(source, target, guest.spec)
    target.libvirtd.stop()
    try:
        move.start()
        with pytest.raises(MigrationFailed):
            move.wait(timeout=60)
    finally:
        target.libvirtd.start()
    assert_still_on(source, target, guest)


MIGRATE_IN_A_CHILD = """
import sys, time
from pathlib import Path
import libvirt
from kubenova.agents.compute.migration import LiveMigration, PeerEndpoint
source_uri, name, target_uri, instances, source_dir = sys.argv[1:6]
domain = libvirt.open(source_uri).lookupByName(name)
move = LiveMigration(domain, PeerEndpoint(target_uri, "127.0.0.1", Path(instances)),
                     Path(source_dir))
move.start()
while not move.poll().data_total:
    time.sleep(0.05)
print("RUNNING", flush=True)
move.wait(timeout=600)
"""


def test_kill_9_of_the_source_agent_mid_move_leaves_exactly_one_copy(
    hosts: tuple[Host, Host], guest: Guest
) -> None:
    source, target = where(hosts, guest.spec.uid)
    prepare_target(target.driver, guest.spec)
    argv = [sys.executable, "-c", MIGRATE_IN_A_CHILD, source.libvirtd.uri,
            guest.spec.domain_name, target.libvirtd.uri, str(target.instances_dir),
            str(source.driver.files.directory(guest.spec.uid))]  # fmt: skip
    # Run from elsewhere: `-c` puts the working directory first on sys.path, and the
    # checkout's top-level operator/ would shadow the standard library's module.
    agent = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, cwd=tempfile.gettempdir())
    try:
        assert agent.stdout is not None
        assert agent.stdout.readline().strip() == "RUNNING"
        os.kill(agent.pid, signal.SIGKILL)
    finally:
        agent.wait(timeout=30)
    # The job belongs to the source libvirtd, not to the dead client: it ends one way or
    # the other, and then the guest runs on exactly one host, defined there only.
    domain = source.driver.libvirt_domain(guest.spec.uid)

    def job_over() -> bool:
        try:
            return bool(domain.jobInfo()[0] == libvirt.VIR_DOMAIN_JOB_NONE)
        except libvirt.libvirtError:
            return True  # undefined on the source: the move completed

    eventually(job_over, timeout=120, interval=0.1, what="the orphaned job to end")
    running, idle = where(hosts, guest.spec.uid)
    assert not idle.defined(guest.spec.uid)
    before = guest.watcher.ticks.last()
    guest.watcher.wait_past(before + 3)
    assert guest.watcher.ticks.host_of_last() == running.name
    print(f"\nafter kill -9 mid-move the guest runs on {running.name} only")
