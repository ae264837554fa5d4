"""A guest keeps its address: seen from inside a real guest across reboots, restarts and an
evacuation to a second compute host.

One TCG guest on a real tenant network (the network agent's dnsmasq), booted once; then one
event after another on the host. The test image asks for a DHCP lease from scratch every
few seconds when its user-data says so and prints each on the serial console
(`KUBENOVA-LEASE ... ip=<ip> ... mac=<mac>`): after every event the guest must be handed the
same address for the same MAC it had before, the inventory's fixed-IP row must not move and
the Instance must stay Running and Ready. Last, its host fails and is fenced: the guest is
rebuilt on a second compute host and must be handed the same address there. That host lives in
a network namespace of its own (its libvirtd, so QEMU's taps, and its agent inside it), with a
veth underlay to the first one: each host's network agent sees and sweeps only its own devices.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from kubenova.devcluster import ClusterAccess
from kubenova.devcluster.libvirtd import PrivateLibvirtd
from kubenova.operator import inventory as inv
from kubenova.operator.inventory.models import FixedIp
from tests.builders import a_network, an_instance, as_yaml
from tests.e2e.test_lifecycle_fake import patch_spec, wait_phase
from tests.e2e.test_real_vm import console, start_guest_host
from tests.fixtures.agent import AgentFactory, AgentProcess
from tests.fixtures.operator import OperatorProcess
from tests.integration.operator.test_scheduling import condition, get, host_ready, wait_ready
from tests.support.netns_host import NetnsHost
from tests.support.waiting import eventually

pytestmark = [pytest.mark.apiserver, pytest.mark.libvirt, pytest.mark.s3, pytest.mark.slow]

DHCP_EVERY = 2  # seconds between the guest's DHCP requests
RESYNC_INTERVAL = 3  # the agent's: a dnsmasq that died is started again within it
OUT_OF_SERVICE = '{"spec":{"outOfService":true}}'
NOT_OUT_OF_SERVICE = '{"spec":{"outOfService":null}}'
LEASE = re.compile(r"KUBENOVA-LEASE interface=eth0 ip=(\S+) mask=\d+ router=\S* mac=(\S+)")


@dataclass(frozen=True)
class Address:
    ip: str
    mac: str


@dataclass
class Guest:
    """The guest as the test sees it: its Instance, its console, its inventory row."""

    cluster: ClusterAccess
    namespace: str
    name: str
    inventory_url: str
    marker: str

    def body(self) -> dict[str, Any]:
        body = get(self.cluster, self.namespace, self.name)
        assert body is not None, f"Instance {self.name} is gone"
        return body

    def ready(self) -> dict[str, Any] | None:
        body = self.body()
        return body if condition(body, "Ready").get("status") == "True" else None

    def console(self) -> str:
        return console(self.body())

    def console_path(self) -> str | None:
        return ((self.body().get("status") or {}).get("console") or {}).get("logPath")

    def leases(self, since: int = 0) -> list[Address]:
        return [Address(ip, mac) for ip, mac in LEASE.findall(self.console()[since:])]

    def boots(self) -> int:
        return self.console().count(self.marker)

    def inventory(self) -> list[tuple[str, str | None, str | None]]:
        engine = inv.make_engine(self.inventory_url)
        try:
            with engine.connect() as connection:
                rows = connection.execute(
                    select(FixedIp.address, FixedIp.mac, FixedIp.consumer_uid).where(
                        FixedIp.consumer_uid == self.body()["metadata"]["uid"]
                    )
                )
                return [tuple(row) for row in rows]
        finally:
            engine.dispose()


@dataclass(frozen=True)
class Event:
    """Something that happens to the guest's host; `reboots` if the guest boots again."""

    name: str
    act: Callable[[], None]
    reboots: bool = False
    moves_to: str | None = None  # the guest is rebuilt on this host (a fresh console)


class StatusLog:
    """Every version of the Instance the apiserver had, from a `kubectl get -w` stream."""

    def __init__(self, cluster: ClusterAccess, namespace: str, name: str, path: Path) -> None:
        self.path = path
        with path.open("wb") as out:
            self.process = subprocess.Popen(
                [
                    str(cluster.kubectl_binary),
                    f"--kubeconfig={cluster.kubeconfig}",
                    "get",
                    "instance",
                    name,
                    "-n",
                    namespace,
                    "--watch",
                    "-o",
                    "json",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def stop(self) -> list[tuple[str, str, str]]:
        """(phase, Ready, reason) of each version seen, in order."""
        self.process.terminate()
        self.process.wait(timeout=10)
        text, decoder, seen = self.path.read_text(), json.JSONDecoder(), []
        position = 0
        while (start := text.find("{", position)) >= 0:
            body, position = decoder.raw_decode(text, start)
            ready = condition(body, "Ready")
            phase = (body.get("status") or {}).get("phase", "")
            seen.append((phase, ready.get("status", ""), ready.get("reason", "")))
        return seen


def dnsmasq_pid(agent: AgentProcess) -> int | None:
    for pid_file in agent.state_dir.rglob("pid"):
        if (pid_file.parent / "hosts").exists():
            try:
                pid = int(pid_file.read_text().strip())
                if b"dnsmasq" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    return pid
            except (OSError, ValueError):
                continue
    return None


def keeps_its_address(guest: Guest, event: Event, expected: Address, boots: int) -> None:
    """After `event`: fresh leases, all `expected`; inventory, status and Ready unchanged."""
    since, path = len(guest.console()), guest.console_path()
    started = time.monotonic()
    event.act()
    if event.moves_to is not None:
        # Rebuilt elsewhere: a console file of its own there, one boot in it. The status
        # may name the old host's file for a moment after the guest is Ready.
        eventually(
            lambda: guest.console_path() not in (None, path),
            timeout=30,
            what=f"the console of the guest on {event.moves_to}",
        )
        since, boots = 0, 0
    # Two leases after the event: the second was asked for once whatever the event broke
    # had come back.
    try:
        eventually(
            lambda: len(guest.leases(since)) >= 2,
            # A rebuilt guest boots from scratch first (TCG).
            timeout=60 if event.moves_to is None else 120,
            what=f"the guest's DHCP leases after {event.name}",
        )
    except AssertionError as timeout:
        raise AssertionError(f"{timeout}\nguest console:\n{guest.console()[-1500:]}") from None
    seen = set(guest.leases())
    assert seen == {expected}, f"after {event.name} the guest was handed {seen}, not {expected}"
    assert guest.boots() == boots + (1 if event.reboots else 0), f"boots after {event.name}"
    nics = set(re.findall(r"KUBENOVA-NIC eth0 mac=(\S+)", guest.console()))
    assert nics == {expected.mac}, f"the guest's NIC after {event.name}: {nics}"
    body = eventually(guest.ready, timeout=30, what=f"{guest.name} Ready after {event.name}")
    assert body["status"]["phase"] == "Running"
    if event.moves_to is not None:
        assert body["status"]["host"] == event.moves_to, f"the guest's host after {event.name}"
    address = body["status"]["addresses"][0]
    assert Address(address["ip"], address["mac"]) == expected
    uid = body["metadata"]["uid"]
    assert guest.inventory() == [(expected.ip, expected.mac, uid)], f"inventory after {event.name}"
    print(f"{event.name}: same address in {time.monotonic() - started:.1f} s")


def test_a_guest_keeps_its_address_through_reboots_and_restarts(
    apiserver: ClusterAccess,
    operator: OperatorProcess,
    agents: AgentFactory,
    namespace: str,
    inventory_url: str,
    libvirtd: Any,
    s3: Any,
    s3_bucket: str,
    test_image: Any,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    # The host the guest is evacuated to, in a network namespace of its own; the guest's
    # first host (this machine's root namespace) reaches it over a veth underlay.
    second_host = NetnsHost("evac")
    request.addfinalizer(second_host.remove)
    agent = start_guest_host(
        apiserver,
        agents,
        libvirtd,
        s3,
        s3_bucket,
        test_image,
        host="addr-host",
        image="guest-address",
        flavor="addr.tiny",
        extra=(
            # A dnsmasq that died is started again at the next resync.
            f"--resync-interval={RESYNC_INTERVAL}",
            f"--underlay-ip={second_host.peer_ip}",
        ),
    )
    # Its agent and libvirtd run inside the namespace; the apiserver and the object store
    # answer there on their loopback ports. It holds a stopped Instance on the guest's
    # network, so it is among the network's tunnel endpoints before the first host stops
    # (a frozen agent adds no new VXLAN peer). Less memory than addr-host: the scheduler
    # (most free memory first) puts the guest on addr-host.
    for url in (apiserver.url, s3.url):
        second_host.forward_loopback(urlsplit(url).port or 443)
    second = PrivateLibvirtd(Path(tempfile.mkdtemp(prefix="kn-lv-evac-")), second_host.netns)
    request.addfinalizer(lambda: stopped(second))
    second.start()
    second_agent = agents.start(
        "addr-host-2",
        libvirt_uri=second.uri,
        domain_type="qemu",
        capacity="vcpus=2,memoryMiB=1024,diskGiB=20",
        env=s3.env(),
        extra=("--services=compute,network", f"--underlay-ip={second_host.ip}"),
        netns=second_host.netns,
    )
    request.addfinalizer(second_agent.stop)
    wait_ready(apiserver, "addr-host-2")
    apiserver.kubectl(
        "apply",
        "-f",
        "-",
        input=as_yaml(
            a_network("addr-net", namespace, mode="vxlan", cidr="10.78.0.0/24"),
            an_instance(
                "anchor",
                namespace,
                flavor="addr.tiny",
                image="guest-address",
                networks=[{"network": "addr-net"}],
                powerState="Stopped",
                placement={"host": "addr-host-2"},
            ),
            an_instance(
                "guest",
                namespace,
                flavor="addr.tiny",
                image="guest-address",
                networks=[{"network": "addr-net"}],
                userData=f"#cloud-config\nkubenova-test-dhcp-every: {DHCP_EVERY}\n",
            ),
        ),
    )
    guest = Guest(apiserver, namespace, "guest", inventory_url, test_image.ready_marker)
    body = wait_phase(apiserver, namespace, "guest", "Running")
    assert body["status"]["host"] == "addr-host"
    status = body["status"]["addresses"][0]
    expected = Address(status["ip"], status["mac"])
    assert expected.ip.startswith("10.78.0.")
    try:
        eventually(lambda: len(guest.leases()) >= 2, timeout=90, what="the guest's first leases")
    except AssertionError as timeout:
        raise AssertionError(f"{timeout}\nguest console:\n{guest.console()[-1500:]}") from None
    assert set(guest.leases()) == {expected}
    assert f"KUBENOVA-DHCP-EVERY {DHCP_EVERY}" in guest.console()
    eventually(guest.ready, timeout=30, what="the guest Ready")
    statuses = StatusLog(apiserver, namespace, "guest", tmp_path / "guest-status.json")

    def reboot() -> None:
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        boots = guest.boots()
        patch_spec(apiserver, namespace, "guest", {"restartRequestedAt": stamp})
        eventually(lambda: guest.boots() > boots, timeout=90, what="the guest booted again")

    def restart_agent() -> None:
        listings = agent.log().count("placed here; watching")
        agent.kill()
        agent.start()
        eventually(
            lambda: agent.log().count("placed here; watching") > listings,
            timeout=30,
            what="the restarted compute agent listing its instances",
        )

    def restart_operator() -> None:
        operator.kill()
        operator.start()

    def restart_libvirtd() -> None:
        # Away for longer than the agent's resync interval: the agent meets the gap.
        libvirtd.crash_and_restart(down_for=2 * RESYNC_INTERVAL)

    def restart_dnsmasq() -> None:
        first = dnsmasq_pid(agent)
        assert first is not None, "no dnsmasq serves the guest's network"
        os.kill(first, signal.SIGKILL)
        eventually(
            lambda: dnsmasq_pid(agent) not in (None, first),
            timeout=30,
            what="dnsmasq started again by the network agent",
        )

    def restart_agent_and_dnsmasq() -> None:
        pid = dnsmasq_pid(agent)
        agent.kill()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
        agent.start()
        eventually(
            lambda: dnsmasq_pid(agent) not in (None, pid),
            timeout=30,
            what="dnsmasq started again by the restarted agent",
        )

    def evacuate() -> None:
        fail_and_fence(apiserver, agent, libvirtd, guest)

    events = [
        Event("a guest reboot", reboot, reboots=True),
        Event("a compute agent restart (kill -9)", restart_agent),
        Event("an operator restart (kill -9)", restart_operator),
        Event("a libvirtd restart (kill -9)", restart_libvirtd),
        Event("a dnsmasq crash", restart_dnsmasq),
        Event("a network agent and dnsmasq crash", restart_agent_and_dnsmasq),
        # The agent still drives the guest after all that (its libvirt connection included).
        Event("a second guest reboot", reboot, reboots=True),
        Event("an evacuation", evacuate, reboots=True, moves_to="addr-host-2"),
    ]
    seen: list[tuple[str, str, str]] | None = None
    try:
        for event in events:
            if event.moves_to is not None and seen is None:
                # A rebuilt guest is not Running for a while: the watch covers the rest.
                seen = statuses.stop()
            keeps_its_address(guest, event, expected, guest.boots())
    finally:
        if seen is None:
            seen = statuses.stop()
        resume(agent)
    # Through all of it the Instance said its guest ran: no Error while libvirtd, the agent
    # or dnsmasq were away for a moment.
    assert seen, "kubectl --watch saw no version of the Instance"
    unexpected = [status for status in seen if status != ("Running", "True", "Running")]
    assert not unexpected, f"the Instance said, of a guest that ran on: {unexpected}"

    back_after_the_gap(apiserver, agent, libvirtd, guest)
    apiserver.kubectl("delete", "instance", "guest", "anchor", "-n", namespace, "--timeout=120s")
    apiserver.kubectl("delete", "network", "addr-net", "-n", namespace, "--timeout=60s")
    for host_agent in (agent, second_agent):
        assert "Traceback" not in host_agent.log(), json.dumps(host_agent.log()[-3000:])


def stopped(daemon: PrivateLibvirtd) -> None:
    daemon.stop()
    shutil.rmtree(daemon.root, ignore_errors=True)


def fail_and_fence(
    cluster: ClusterAccess, agent: AgentProcess, libvirtd: Any, guest: Guest
) -> None:
    """The guest's host fails (its agent frozen, its guest powered off with the host) and
    is fenced; returns once the guest is Ready on addr-host-2. The failed host's network
    stays, dnsmasq included: a frozen agent tears nothing down."""
    assert agent.process is not None
    agent.process.send_signal(signal.SIGSTOP)
    domain = guest.body()["status"]["domain"]["name"]
    subprocess.run(["virsh", "-c", libvirtd.uri, "destroy", domain], check=True, timeout=60)
    eventually(lambda: host_ready(cluster, "addr-host") == "False", what="addr-host NotReady")
    cluster.kubectl("patch", "host", "addr-host", "--type=merge", "-p", OUT_OF_SERVICE)

    def on_second_host() -> dict[str, Any] | None:
        body = guest.body()
        status, ready = body["status"], condition(body, "Ready").get("status")
        if status["host"] != "addr-host-2":
            return None
        # Handed over, not built yet: the failed host's last Ready must not linger.
        assert status["phase"] == "Running" or ready != "True", f"Ready before it runs: {status}"
        return body if status["phase"] == "Running" and ready == "True" else None

    eventually(on_second_host, timeout=180, what="the guest Ready on addr-host-2")


def resume(agent: AgentProcess) -> None:
    if agent.process is not None and agent.process.poll() is None:
        agent.process.send_signal(signal.SIGCONT)


def back_after_the_gap(
    cluster: ClusterAccess, agent: AgentProcess, libvirtd: Any, guest: Guest
) -> None:
    """The failed host, back, destroys its stale definition before it heart-beats again."""
    eventually(
        lambda: "heart-beating again after the gap" in agent.log(),
        timeout=60,
        what="addr-host heart-beating again",
    )
    listed = subprocess.run(
        ["virsh", "-c", libvirtd.uri, "list", "--all", "--name"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert guest.body()["status"]["domain"]["name"] not in listed.stdout.split()
    cluster.kubectl("patch", "host", "addr-host", "--type=merge", "-p", NOT_OUT_OF_SERVICE)
