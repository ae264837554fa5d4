"""A guest on a tenant bridge reaches its network host only for DHCP and DNS at the gateway.

In the netns lab: a network host with a real Linux bridge, gateway address, dnsmasq and
nftables table (the agent's own classes), and a "guest" namespace plugged into the bridge.
Listeners stand in for the host's services: tgtd's iSCSI portal (3260), the agent's
metrics port, the kubelet (10250, on the host's underlay address) and DNS (53) on the
gateway. Before the router's table exists the guest reaches all of them (the probe works);
once it is applied the guest still gets its DHCP lease and DNS answers, and nothing else
connects: the listeners saw not one connection, and the drop counter counted the tries.
"""

from __future__ import annotations

import ipaddress
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubenova.agents.network import names
from kubenova.agents.network.dhcp import DhcpServers
from kubenova.agents.network.linuxbridge import LinuxBridgeDriver
from kubenova.agents.network.namespace import Namespace
from kubenova.agents.network.nat import Routers
from kubenova.agents.network.spec import DhcpHost, GatewaySpec, HostNetwork, Mode
from kubenova.agents.network.vxlan import VxlanUplink
from tests.fixtures.netns import Endpoint, NetnsLab, sh
from tests.support.waiting import eventually

pytestmark = pytest.mark.netns

BRIDGE = "knb-5ec0005e"
UNDERLAY = "192.168.77.1"
GATEWAY = "10.77.0.1"
GUEST_IP, GUEST_MAC = "10.77.0.5", "52:54:00:77:00:05"
METRICS = 9464
# (address, port) of the host's services the guest must not reach.
FORBIDDEN = [(GATEWAY, 3260), (GATEWAY, METRICS), (UNDERLAY, 10250), (UNDERLAY, 22)]
DNS = (GATEWAY, 53)

# Runs inside the host's namespace: TCP listeners that log every accepted peer, and a UDP
# "DNS" responder that answers each datagram (enough to show the query got through).
LISTENERS = """
import json, socket, sys, threading
log = open(sys.argv[1], "a", buffering=1)
def tcp(addr, port):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port)); s.listen()
    while True:
        c, peer = s.accept(); log.write(json.dumps(["tcp", addr, port, peer[0]]) + "\\n")
        c.sendall(b"hello"); c.close()
def udp(addr, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((addr, port))
    while True:
        data, peer = s.recvfrom(512); log.write(json.dumps(["udp", addr, port, peer[0]]) + "\\n")
        s.sendto(b"answer:" + data, peer)
for addr, port in json.loads(sys.argv[2]):
    threading.Thread(target=tcp, args=(addr, port), daemon=True).start()
threading.Thread(target=udp, args=tuple(json.loads(sys.argv[3])), daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
"""

# Runs inside the guest's namespace: which TCP ports connect, and whether UDP 53 answers.
PROBE = """
import json, socket, sys
result = {}
for addr, port in json.loads(sys.argv[1]):
    try:
        with socket.create_connection((addr, port), timeout=1) as c:
            result[f"{addr}:{port}"] = c.recv(5).decode()
    except OSError as exc:
        result[f"{addr}:{port}"] = type(exc).__name__
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(1)
try:
    u.sendto(b"q", tuple(json.loads(sys.argv[2]))); result["dns-udp"] = u.recv(64).decode()
except OSError as exc:
    result["dns-udp"] = type(exc).__name__
print(json.dumps(result))
"""


def gateway_spec() -> GatewaySpec:
    return GatewaySpec(
        cidr=ipaddress.IPv4Network("10.77.0.0/24"),
        gateway=ipaddress.IPv4Address(GATEWAY),
        hosts=(DhcpHost(GUEST_MAC, GUEST_IP, "guest"),),
    )


class HostServices:
    """The stand-in services, in the host's namespace; `.log()` is every connection seen."""

    def __init__(self, netns: str, directory: Path) -> None:
        self.log_path = directory / "connections.log"
        tcp = [*FORBIDDEN, DNS]
        self.process = subprocess.Popen(
            ["ip", "netns", "exec", netns, sys.executable, "-c", LISTENERS, str(self.log_path),
             json.dumps(tcp), json.dumps(DNS)],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.process.stdout is not None
        assert self.process.stdout.readline().strip() == "ready"

    def log(self) -> list[tuple[str, str, int, str]]:
        if not self.log_path.exists():
            return []
        return [tuple(json.loads(line)) for line in self.log_path.read_text().splitlines()]

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()


def probe(guest: Endpoint) -> dict[str, str]:
    out = sh("ip", "netns", "exec", guest.netns, sys.executable, "-c", PROBE,
             json.dumps([*FORBIDDEN, DNS]), json.dumps(DNS)).stdout  # fmt: skip
    result: dict[str, str] = json.loads(out)
    return result


@pytest.fixture
def network_host(netns_lab: NetnsLab) -> Iterator[tuple[str, Namespace]]:
    netns = netns_lab.add_host("net", UNDERLAY)
    ns = Namespace(netns)
    driver = LinuxBridgeDriver(ns, {Mode.VXLAN: VxlanUplink()})
    driver.plug(HostNetwork("alpha/net", BRIDGE, Mode.VXLAN, 77, local_ip=UNDERLAY,
                            gateway=gateway_spec()))  # fmt: skip
    yield netns, ns
    driver.close()


def test_a_guest_gets_dhcp_and_dns_and_no_other_service_of_its_network_host(
    netns_lab: NetnsLab, network_host: tuple[str, Namespace], tmp_path: Path
) -> None:
    netns, ns = network_host
    guest = netns_lab.plug("net", BRIDGE, GUEST_MAC, "guest")
    services = HostServices(netns, tmp_path)
    dhcp = DhcpServers(ns, tmp_path / "dhcp")
    try:
        # Without the router's table, the probe reaches everything: it can tell.
        sh("ip", "-n", guest.netns, "addr", "add", f"{GUEST_IP}/24", "dev", "eth0")
        sh("ip", "-n", guest.netns, "route", "add", "default", "via", GATEWAY)
        # (eventually: a freshly plugged veth takes a moment to carry frames.)
        eventually(
            lambda: all(probe(guest)[f"{a}:{p}"] == "hello" for a, p in FORBIDDEN),
            timeout=15,
            what="the guest to reach every listener before the policy",
        )
        sh("ip", "-n", guest.netns, "addr", "flush", "dev", "eth0")
        seen_before = len(services.log())

        Routers(ns, None).ensure(BRIDGE, gateway_spec())
        dhcp.ensure(BRIDGE, gateway_spec())

        assert eventually(guest.dhcp, timeout=15) == GUEST_IP  # DHCP still works
        # The guest is the attacker's: it routes everything at the gateway, lease or not.
        sh("ip", "-n", guest.netns, "route", "replace", "default", "via", GATEWAY)
        after = probe(guest)
        assert after[f"{GATEWAY}:53"] == "hello"  # DNS over TCP at the gateway
        assert after["dns-udp"] == "answer:q"  # and over UDP
        refused = {f"{a}:{p}": after[f"{a}:{p}"] for a, p in FORBIDDEN}
        assert all(outcome in ("TimeoutError", "timeout") for outcome in refused.values()), after
        # Nothing reached the forbidden services: only the DNS listener saw the guest.
        new = services.log()[seen_before:]
        assert {(kind, port) for kind, _, port, _ in new} == {("tcp", 53), ("udp", 53)}
        chain = sh("ip", "netns", "exec", netns, "nft", "list", "chain", "ip",
                   names.nft_table(BRIDGE), "input").stdout  # fmt: skip
        dropped = re.search(r"counter packets (\d+) bytes \d+ drop", chain)
        assert dropped is not None, chain
        assert int(dropped.group(1)) >= len(FORBIDDEN)  # each try was dropped, and counted
        # IPv6 is off on the bridge (the driver's plug, so on compute hosts as well): no
        # link-local address to go around the IPv4 rules.
        addresses = sh("ip", "-n", netns, "-6", "addr", "show", "dev", BRIDGE).stdout
        assert "inet6" not in addresses
    finally:
        services.stop()
        dhcp.stop(BRIDGE)
