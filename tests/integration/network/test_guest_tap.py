"""How a guest's tap reaches its simulated host: opened where QEMU runs, then moved.

One libvirtd serves every simulated host on this machine, so QEMU opens its tap in the
root namespace. A tap's file descriptor stays attached when the device is moved to
another namespace, so the tap is moved into its host's namespace and enslaved to the
network's bridge there. This test plays QEMU's part with /dev/net/tun directly.
"""

from __future__ import annotations

import fcntl
import os
import struct
import time
from collections.abc import Iterator

import pytest

from kubenova.agents.network.linuxbridge import LinuxBridgeDriver
from kubenova.agents.network.namespace import Namespace
from kubenova.agents.network.spec import HostNetwork, Mode
from kubenova.agents.network.vxlan import VxlanUplink
from tests.fixtures.netns import NetnsLab, sh

pytestmark = pytest.mark.netns

TUNSETIFF, IFF_TAP, IFF_NO_PI = 0x400454CA, 0x0002, 0x1000
BRIDGE, TAP = "knb-000000ab", "tapkn-guest"
GUEST_MAC = "525400000042"


@pytest.fixture
def guest_tap() -> Iterator[int]:
    """A tap opened in the root namespace, as QEMU opens it."""
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", TAP.encode(), IFF_TAP | IFF_NO_PI))
    os.set_blocking(fd, False)
    yield fd
    os.close(fd)  # the tap goes with its last descriptor, wherever it is


def test_a_tap_opened_in_the_root_namespace_carries_traffic_in_its_host(
    netns_lab: NetnsLab, guest_tap: int
) -> None:
    lab = netns_lab
    host = lab.add_host("h1", "192.168.74.1")
    driver = LinuxBridgeDriver(Namespace(host), {Mode.VXLAN: VxlanUplink()})
    driver.plug(HostNetwork("t/n", BRIDGE, Mode.VXLAN, 9, local_ip="192.168.74.1"))
    sh("ip", "link", "set", TAP, "netns", host)
    sh("ip", "-n", host, "link", "set", TAP, "master", BRIDGE, "up")
    endpoint = lab.plug("h1", BRIDGE, "52:54:00:00:00:99", "ep")
    sh("ip", "-n", endpoint.netns, "addr", "add", "10.99.0.2/24", "dev", "eth0")
    time.sleep(0.2)

    before = lab.rx_packets(endpoint.netns)
    broadcast = bytes.fromhex("ffffffffffff" + GUEST_MAC + "0806") + bytes(28)
    for _ in range(5):
        os.write(guest_tap, broadcast)
    time.sleep(0.2)
    assert lab.rx_packets(endpoint.netns) - before >= 5  # guest -> host bridge -> endpoint

    assert not endpoint.ping("10.99.0.1", count=1)  # nobody answers, but the ARP goes out
    frames = []
    while True:
        try:
            frames.append(os.read(guest_tap, 2048))
        except BlockingIOError:
            break
    arp_from_endpoint = [
        f for f in frames if f[12:14] == b"\x08\x06" and f[6:12] == bytes.fromhex("525400000099")
    ]
    assert arp_from_endpoint, "the endpoint's ARP request never reached the guest's tap"
    driver.unplug(BRIDGE)
    driver.close()
