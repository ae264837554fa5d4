"""A migrated inventory on each backend (SQLite file, real PostgreSQL) for IPAM tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from kubenova.devcluster import ClusterAccess
from kubenova.operator import inventory as inv
from tests.fixtures.operator import OperatorProcess, clean_slate
from tests.integration.network.agents import NetworkAgents

FLOATING_POOL = "198.51.100.16/28"


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    inv.upgrade(db_url)
    engine = inv.make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def network_operator(
    request: pytest.FixtureRequest,
    apiserver: ClusterAccess,
    crds_installed: list[str],
    inventory_url: str,
    tmp_path: Path,
) -> Iterator[OperatorProcess]:
    """The operator with a floating IP pool; a test module's OPERATOR_ENV adds settings."""
    clean_slate(apiserver)
    settings = {"KUBENOVA_FLOATING_IP_POOL": FLOATING_POOL}
    settings |= getattr(request.module, "OPERATOR_ENV", {})
    process = OperatorProcess(
        kubeconfig=apiserver.kubeconfig,
        database_url=inventory_url,
        log_path=tmp_path / "operator.log",
        env={**os.environ, **settings},
    )
    process.start()
    yield process
    process.stop()


@pytest.fixture
def network_agents(apiserver: ClusterAccess) -> Iterator[NetworkAgents]:
    """Network services of simulated hosts, in-process (`start(NetworkOptions(...))`)."""
    running = NetworkAgents(apiserver.kubeconfig)
    yield running
    running.close()
