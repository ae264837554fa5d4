"""The fake network driver passes the driver contract."""

from __future__ import annotations

import pytest

from kubenova.agents.network.fake import FakeNetworkDriver
from tests.unit.network.contract import DriverContract, MakeDriver


class TestFakeDriver(DriverContract):
    @pytest.fixture
    def make_driver(self) -> MakeDriver:
        return FakeNetworkDriver
