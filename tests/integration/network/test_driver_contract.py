"""The Linux-bridge driver passes the driver contract, in a network namespace."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kubenova.agents.network.driver import NetworkDriver
from kubenova.agents.network.linuxbridge import FlatUplink, LinuxBridgeDriver
from kubenova.agents.network.namespace import Namespace
from kubenova.agents.network.spec import Mode
from kubenova.agents.network.vxlan import VxlanUplink
from tests.fixtures.netns import NetnsLab
from tests.unit.network.contract import LOCAL, DriverContract, MakeDriver

pytestmark = pytest.mark.netns


class TestLinuxBridgeDriver(DriverContract):
    @pytest.fixture
    def make_driver(self, netns_lab: NetnsLab) -> Iterator[MakeDriver]:
        made: list[NetworkDriver] = []

        def make() -> NetworkDriver:
            host = netns_lab.add_host(f"h{len(made)}", LOCAL)
            driver = LinuxBridgeDriver(
                Namespace(host), {Mode.VXLAN: VxlanUplink(), Mode.FLAT: FlatUplink()}
            )
            made.append(driver)
            return driver

        yield make
        for driver in made:
            driver.close()
