"""Each part of the cloud restarted in turn during steady creates and deletes; afterwards it
converges with nothing lost, duplicated or orphaned (issue 13 item 6).

The parts: kube-apiserver, etcd, PostgreSQL (the inventory), tgtd, the network host's
dnsmasq, each agent and the operator. The load: Instances with fixed IPs on a tenant
Network, every third with a Volume exported by tgtd; most are deleted again right away.
Afterwards each kept Instance runs once with its claim, its fixed IP, its DHCP host entry,
its domain; each kept Volume has its backing file and its target; nothing else is left.
libvirt's test driver is the hypervisor here (libvirtd is restarted in the real-guest run,
tests/e2e/test_restart_real_guests.py).
"""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from kubenova.devcluster import ClusterAccess, ControlPlane
from kubenova.operator import inventory as inv
from kubenova.operator.inventory import volumes as vol
from kubenova.operator.inventory.consumers import list_consumers
from kubenova.operator.inventory.models import FixedIp
from tests.builders import a_flavor, a_network, a_volume, an_image, an_instance, as_yaml
from tests.e2e.test_lifecycle_fake import instance_files
from tests.fixtures.agent import AgentFactory, AgentProcess
from tests.fixtures.netns import NetnsLab
from tests.fixtures.operator import OperatorProcess, clean_slate
from tests.fixtures.postgres import PostgresCluster
from tests.fixtures.tgtd import TgtDaemon
from tests.integration.operator.test_scheduling import wait_ready
from tests.support.waiting import eventually

pytestmark = [
    pytest.mark.apiserver,
    pytest.mark.postgres,
    pytest.mark.tgt,
    pytest.mark.netns,
    pytest.mark.slow,
]

CIDR = ipaddress.ip_network("10.61.0.0/24")
FIRST_HOST = 10  # fixed IPs 10.61.0.10 and up, one per Instance ever created
KEEP_EVERY = 3
# Instances 1, 4, 7, ... (all deleted again) and 0, 12, 24, ... (kept) have a Volume.
VOLUME_EVERY = 3
BATCH = 6
# Batches let through before each restart (one created first, the rest during it).
BATCHES_PER_PHASE = 3
Body = dict[str, Any]
# What a dead daemon (dnsmasq, tgtd) sends no event about is healed by the agents' resync.
RESYNC = 2.0
AUDIT_INTERVAL = 5.0
BIG = "vcpus=4096,memoryMiB=1048576,diskGiB=100000"


def kubectl_until_done(cluster: ClusterAccess, *args: str, input: str | None = None) -> None:
    """Retry while the apiserver (or its etcd) is down: the load goes on through restarts."""
    deadline = time.monotonic() + 120
    while True:
        result = cluster.kubectl(*args, input=input, check=False)
        if result.returncode == 0:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"kubectl {' '.join(args)}: {result.stderr}")
        time.sleep(0.5)


def items(cluster: ClusterAccess, kind: str, namespace: str) -> list[dict[str, Any]]:
    out = cluster.kubectl("get", kind, "-n", namespace, "-o", "json").stdout
    return list(json.loads(out)["items"])


@dataclass
class Load:
    """Creates Instances in batches and deletes most of them again, until stopped."""

    cluster: ClusterAccess
    namespace: str
    flavor: str
    network: str = "lan"
    created: list[str] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    limit: int = 200 - FIRST_HOST
    # Batches the test has let through: it paces the load by progress, not by time.
    grants: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(0))

    @staticmethod
    def kept(index: int) -> bool:
        return index % KEEP_EVERY == 0

    @staticmethod
    def has_volume(index: int) -> bool:
        return index % VOLUME_EVERY == 1 or index % (VOLUME_EVERY * 4) == 0

    @staticmethod
    def ip(index: int) -> str:
        return str(CIDR.network_address + FIRST_HOST + index)

    def manifests(self, index: int) -> list[dict[str, Any]]:
        name = f"r{index:03d}"
        extra: dict[str, Any] = {}
        docs = []
        if self.has_volume(index):
            docs.append(a_volume(f"v{index:03d}", self.namespace, sizeGiB=1))
            extra["volumes"] = [{"volume": f"v{index:03d}"}]
        networks = [{"network": self.network, "ip": self.ip(index)}]
        docs.append(
            an_instance(name, self.namespace, flavor=self.flavor, networks=networks, **extra)
        )
        return docs

    def run(self) -> None:
        try:
            while not self.stop.is_set() and len(self.created) < self.limit:
                if not self.grants.acquire(timeout=0.2):
                    continue
                start = len(self.created)
                batch = range(start, min(start + BATCH, self.limit))
                docs = [doc for i in batch for doc in self.manifests(i)]
                kubectl_until_done(self.cluster, "apply", "-f", "-", input=as_yaml(*docs))
                self.created.extend(f"r{i:03d}" for i in batch)
                doomed = [i for i in batch if not self.kept(i)]
                ns = self.namespace
                instances = [f"r{i:03d}" for i in doomed]
                volumes = [f"v{i:03d}" for i in doomed if self.has_volume(i)]
                kubectl_until_done(self.cluster, "delete", "instances", "-n", ns,
                                   "--wait=false", "--ignore-not-found", *instances)  # fmt: skip
                if volumes:
                    kubectl_until_done(self.cluster, "delete", "volumes", "-n", ns,
                                       "--wait=false", "--ignore-not-found", *volumes)  # fmt: skip
                self.stop.wait(1.0)
        except BaseException as error:  # reported by the test, not lost in the thread
            self.errors.append(error)

    def expected(self) -> dict[str, str]:
        """Kept Instance name -> its fixed IP."""
        return {f"r{i:03d}": self.ip(i) for i in range(len(self.created)) if self.kept(i)}

    def expected_volumes(self) -> list[str]:
        count = len(self.created)
        return [f"v{i:03d}" for i in range(count) if self.kept(i) and self.has_volume(i)]


@dataclass
class Cloud:
    """The parts under test and how each is restarted."""

    plane: ControlPlane
    postgres: PostgresCluster
    inventory_url: str
    operator: Supervisor
    compute: AgentProcess
    store: AgentProcess
    network: AgentProcess
    tgtd: TgtDaemon
    lab: NetnsLab

    def restarts(self) -> dict[str, Callable[[], None]]:
        return {
            "kube-apiserver": lambda: self.plane.restart("kube-apiserver"),
            "etcd": lambda: self.plane.restart("etcd"),
            "postgresql": self.postgres.restart,
            "tgtd": self.tgtd.restart,
            "dnsmasq": self.kill_dnsmasq,
            "compute agent": lambda: restart(self.compute),
            "volume agent": lambda: restart(self.store),
            "network agent": lambda: restart(self.network),
            "operator": self.operator.restart,
        }

    def dead_agents(self) -> list[str]:
        """Agents that exited: none may die of another part's restart (a DaemonSet would
        start them again, but each crash loses its host's heartbeat and work meanwhile)."""
        return [
            agent.host
            for agent in (self.compute, self.store, self.network)
            if agent.process is None or agent.process.poll() is not None
        ]

    def kill_dnsmasq(self) -> None:
        """dnsmasq dies; its agent is the one to start it again."""
        (pid,) = self.lab.dnsmasq_pids("rs-net")
        os.kill(pid, signal.SIGKILL)
        eventually(lambda: self.lab.dnsmasq_pids("rs-net") not in ([], [pid]), timeout=30,
                   what="dnsmasq started again by its agent")  # fmt: skip


@dataclass
class Supervisor:
    """Starts the operator again when it exits, as its Deployment would: a replica that
    cannot renew its leader lease (the apiserver is away longer than the lease) exits on
    purpose, so that a half-informed brain never acts."""

    process: OperatorProcess
    exits: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    done: threading.Event = field(default_factory=threading.Event)

    def watch(self) -> None:
        while not self.done.wait(0.5):
            with self.lock:
                running = self.process.process
                if running is not None and running.poll() is not None:
                    self.exits += 1
                    self.process.start()

    def restart(self) -> None:
        with self.lock:
            restart(self.process)


def restart(process: AgentProcess | OperatorProcess) -> None:
    process.stop()
    process.start()


@pytest.fixture
def own_postgres() -> Iterator[PostgresCluster]:
    """A PostgreSQL of this test's own: it is restarted, and the session's is shared."""
    try:
        cluster = PostgresCluster()
    except RuntimeError as missing:
        pytest.fail(str(missing))
    with cluster:
        yield cluster


def test_a_restart_of_each_part_loses_duplicates_and_orphans_nothing(
    control_plane: ControlPlane,
    apiserver: ClusterAccess,
    crds_installed: list[str],
    own_postgres: PostgresCluster,
    agents: AgentFactory,
    tgtd: TgtDaemon,
    netns_lab: NetnsLab,
    namespace: str,
    tmp_path: Path,
) -> None:
    clean_slate(apiserver)
    url = own_postgres.create_database()
    inv.upgrade(url)
    operator = OperatorProcess(
        log_path=tmp_path / "operator.log",
        env=dict(os.environ),
        kubeconfig=apiserver.kubeconfig,
        database_url=url,
        # What a restart leaks by design (the claim of an Instance deleted while the operator
        # was away) the audit repairs, and the Networks' resync of the same period frees
        # those Instances' addresses: short here, so the test sees it.
        extra_args=("--audit-interval", str(AUDIT_INTERVAL)),
    )
    supervisor = Supervisor(operator)
    operator.start()
    threading.Thread(target=supervisor.watch, daemon=True).start()
    try:
        run_the_restarts(apiserver, control_plane, own_postgres, url, supervisor, agents, tgtd,
                         netns_lab, namespace)  # fmt: skip
    finally:
        supervisor.done.set()  # before the stop, which it would undo
        with supervisor.lock:
            operator.stop()
    print(f"restart each part: the operator exited {supervisor.exits} time(s) on its own")


def run_the_restarts(
    apiserver: ClusterAccess,
    plane: ControlPlane,
    postgres: PostgresCluster,
    url: str,
    supervisor: Supervisor,
    agents: AgentFactory,
    tgtd: TgtDaemon,
    lab: NetnsLab,
    namespace: str,
) -> None:
    netns = lab.add_host("rs-net", "192.168.80.3")
    network = agents.start(
        "rs-net",
        extra=(
            "--services=network",
            f"--netns={netns}",
            "--underlay-ip=192.168.80.3",
            f"--resync-interval={RESYNC}",
        ),
    )
    store = agents.start(
        "rs-store",
        extra=("--services=volume", f"--tgt-control-port={tgtd.control_port}",
               f"--iscsi-portal={tgtd.portal}", f"--resync-interval={RESYNC}"),
    )  # fmt: skip
    compute = agents.start(
        "rs-compute",
        capacity=BIG,
        extra=("--services=compute", "--storage-interface=lo", f"--resync-interval={RESYNC}"),
    )
    for doc in (a_flavor("rs.tiny", vcpus=1, memory=64, disk=1), an_image("test-image")):
        kubectl_until_done(apiserver, "apply", "-f", "-", input=as_yaml(doc))
    kubectl_until_done(
        apiserver, "apply", "-f", "-", input=as_yaml(a_network("lan", namespace, cidr=str(CIDR)))
    )
    wait_ready(apiserver, "rs-net", "rs-store", "rs-compute")
    eventually(lambda: lab.dnsmasq_pids("rs-net"), timeout=60, what="dnsmasq for lan on rs-net")
    cloud = Cloud(plane, postgres, url, supervisor, compute, store, network, tgtd, lab)

    load = Load(apiserver, namespace, "rs.tiny")
    restarts = cloud.restarts()
    # Each part is restarted mid-load by construction, however fast or slow the machine:
    # only once the load has made progress since the last restart, and with batches of it
    # still to come (the fixed IPs of /24 last for every phase).
    assert (len(restarts) + 1) * BATCHES_PER_PHASE * BATCH <= load.limit
    worker = threading.Thread(target=load.run, daemon=True)
    worker.start()
    try:
        for part, restart_it in restarts.items():
            loaded_phase(load)
            print(f"restarting {part} after {len(load.created)} creates")
            restart_it()
            assert cloud.dead_agents() == [], f"agents exited after the {part} restart"
        loaded_phase(load)
    finally:
        load.stop.set()
        worker.join(timeout=180)
    assert not load.errors, load.errors
    converged(cloud, apiserver, load, namespace)


def loaded_phase(load: Load) -> None:
    """Let BATCHES_PER_PHASE more batches through; return once the first is created."""
    before = len(load.created)
    for _ in range(BATCHES_PER_PHASE):
        load.grants.release()
    eventually(lambda: len(load.created) > before or load.errors, timeout=120,
               what="a batch of the load created")  # fmt: skip
    assert not load.errors, load.errors


def converged(cloud: Cloud, apiserver: ClusterAccess, load: Load, namespace: str) -> None:
    """Only the kept Instances and Volumes, each with exactly what it should hold."""
    expected = load.expected()

    def instances_settled() -> bool:
        present = items(apiserver, "instances", namespace)
        phases = {i["metadata"]["name"]: phase_of(i) for i in present}
        assert phases == dict.fromkeys(expected, "Running"), phases
        return True

    eventually(instances_settled, timeout=180, interval=1, what="only the kept Instances, Running")
    volumes = sorted(load.expected_volumes())

    def volumes_settled() -> bool:
        present = items(apiserver, "volumes", namespace)
        phases = {v["metadata"]["name"]: phase_of(v) for v in present}
        assert phases == dict.fromkeys(volumes, "InUse"), phases
        return True

    eventually(volumes_settled, timeout=120, interval=1, what="only the kept Volumes, InUse")

    bodies = items(apiserver, "instances", namespace)
    volume_bodies = items(apiserver, "volumes", namespace)
    engine = inv.make_engine(cloud.inventory_url)
    try:
        in_the_inventory(engine, bodies, volume_bodies, expected)
    finally:
        engine.dispose()
    on_the_hosts(cloud, bodies, volume_bodies)
    print(
        f"restart each part: {len(load.created)} creates, {len(expected)} kept, "
        f"{len(volumes)} volumes kept"
    )


def in_the_inventory(
    engine: Engine, bodies: list[Body], volume_bodies: list[Body], expected: dict[str, str]
) -> None:
    """One claim and one fixed IP per kept Instance; one target and one attachment per
    kept Volume; nothing for anything deleted."""
    uids = {b["metadata"]["uid"] for b in bodies}
    for body in bodies:
        assert [a["ip"] for a in body["status"]["addresses"]] == [
            expected[body["metadata"]["name"]]
        ]
    eventually(
        lambda: {c.uid for c in list_consumers(engine, "Instance")} == uids,
        timeout=60,
        what="claims exactly for the kept Instances",
    )
    ips = {b["metadata"]["uid"]: expected[b["metadata"]["name"]] for b in bodies}

    def fixed_ips_settled() -> bool:
        with engine.connect() as connection:
            rows = connection.execute(select(FixedIp.consumer_uid, FixedIp.address)).all()
        held = {str(uid): str(address) for uid, address in rows}
        assert held == ips, {
            "leaked": sorted(set(held.items()) - set(ips.items())),
            "lost": sorted(set(ips.items()) - set(held.items())),
        }
        return True

    eventually(fixed_ips_settled, timeout=60, interval=1, what="fixed IPs of the kept only")
    volume_uids = sorted(v["metadata"]["uid"] for v in volume_bodies)
    assert sorted(t.volume_uid for t in vol.list_targets(engine)) == volume_uids, "targets"
    attached = sorted((a.volume_uid, a.instance_uid) for a in vol.list_attachments(engine))
    users = {v["metadata"]["name"]: v["metadata"]["uid"] for v in volume_bodies}
    wanted = sorted(
        (users[spec["volume"]], b["metadata"]["uid"])
        for b in bodies
        for spec in b["spec"].get("volumes", [])
    )
    assert attached == wanted, "volume attachments"


def on_the_hosts(cloud: Cloud, bodies: list[Body], volume_bodies: list[Body]) -> None:
    """One domain per kept Instance, one DHCP host entry per NIC, one target (admitting the
    compute host) and one backing file per kept Volume; one dnsmasq."""
    uids = sorted(b["metadata"]["uid"] for b in bodies)
    eventually(
        lambda: (
            sorted(f.removeprefix("kubenova-") for f in instance_files(cloud.compute.state_dir))
            == uids
        ),
        timeout=60,
        what="one domain per kept Instance, no orphans",
    )
    nics = sorted(
        (a["mac"], a["ip"], b["metadata"]["name"]) for b in bodies for a in b["status"]["addresses"]
    )
    eventually(lambda: dhcp_hosts(cloud.network.state_dir) == nics, timeout=60,
               what="one DHCP host entry per kept NIC")  # fmt: skip
    assert len(cloud.lab.dnsmasq_pids("rs-net")) == 1
    iqns = sorted(v["status"]["target"]["iqn"] for v in volume_bodies)
    eventually(lambda: sorted(cloud.tgtd.target_names()) == iqns, timeout=60,
               what="one target per kept Volume")  # fmt: skip
    shown = cloud.tgtd.tgtadm("--op", "show", "--mode", "target").stdout
    admitted = shown.count("iqn.2010-10.io.kubenova:host.rs-compute")
    assert admitted == len(iqns), f"the compute host is admitted by {admitted} of {len(iqns)}"
    volume_uids = sorted(v["metadata"]["uid"] for v in volume_bodies)
    eventually(
        lambda: backing_files(cloud.store.state_dir) == volume_uids,
        timeout=60,
        what="one backing file per kept Volume",
    )


def dhcp_hosts(state_dir: Path) -> list[tuple[str, ...]]:
    """(mac, ip, name) of every static lease the network host's dnsmasq hands out."""
    lines = [
        line
        for hosts in (state_dir / "network" / "dhcp").glob("*/hosts")
        for line in hosts.read_text().splitlines()
        if line.strip()
    ]
    return sorted(tuple(line.split(",")) for line in lines)


def phase_of(body: Body) -> str | None:
    phase: str | None = (body.get("status") or {}).get("phase")
    return phase


def backing_files(state_dir: Path) -> list[str]:
    return sorted(p.stem for p in state_dir.rglob("*.raw"))
