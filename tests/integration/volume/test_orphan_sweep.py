"""The volume host's orphan sweep: what was deleted while its agent was down goes, no more.

A Volume the operator's status.host still places on the host keeps its backing file
(tenant data) and its export across the agent's restart and at every resync, even with
the operator down; deleting it afterwards removes both. A Volume really deleted while the
agent was down is swept at start-up.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kubenova.agents.volume.fake import FakeExportDaemon, FakeExportDriver
from kubenova.devcluster import ClusterAccess
from tests.builders import a_volume
from tests.fixtures.operator import OperatorProcess
from tests.integration.volume.cluster import apply, get, status, volume_gone, volume_in_phase
from tests.support.hosts import SimulatedHosts
from tests.support.volume_agent import VolumeAgent
from tests.support.waiting import eventually

pytestmark = pytest.mark.apiserver

HOST = "store-sweep"


def test_a_restarted_volume_agent_sweeps_only_what_was_deleted_meanwhile(
    apiserver: ClusterAccess,
    operator: OperatorProcess,
    hosts: SimulatedHosts,
    volume_namespace: str,
    tmp_path: Path,
) -> None:
    ns, storage = volume_namespace, tmp_path / HOST
    hosts.add(HOST, services=("volume",), disk_gib=100)
    daemon = FakeExportDaemon()

    def start_agent() -> VolumeAgent:
        return VolumeAgent(
            apiserver.kubeconfig, HOST, {"iscsi": FakeExportDriver("iscsi", daemon)}, storage
        )

    agent = start_agent()
    try:
        apply(apiserver, a_volume("kept", ns, sizeGiB=1), a_volume("dropped", ns, sizeGiB=1))
        kept = volume_in_phase(apiserver, ns, "kept", "Available")
        dropped = volume_in_phase(apiserver, ns, "dropped", "Available")
    finally:
        agent.stop()
    kept_uid, dropped_uid = kept["metadata"]["uid"], dropped["metadata"]["uid"]
    assert status(kept)["host"] == HOST
    assert agent.store.volume_uids() == {kept_uid, dropped_uid}
    iqn = status(kept)["target"]["iqn"]
    assert iqn in daemon.exports

    # While the agent (and the operator) is down, `dropped` is deleted for good.
    operator.stop()
    apiserver.kubectl("delete", "volume", "dropped", "-n", ns, "--wait=false")
    apiserver.kubectl(
        "patch", "volume", "dropped", "-n", ns, "--type=merge",
        "-p", json.dumps({"metadata": {"finalizers": None}}),
    )  # fmt: skip
    volume_gone(apiserver, ns, "dropped")

    agent = start_agent()  # ready once the start-up sweep ran
    try:
        assert agent.store.volume_uids() == {kept_uid}, "only the deleted Volume's file goes"
        assert iqn in daemon.exports
        agent.resync()  # and at every resync it is read again and kept
        assert agent.store.volume_uids() == {kept_uid}
        assert iqn in daemon.exports
        body = get(apiserver, "volume", ns, "kept")
        assert body is not None
        assert "kubenova.io/agent" in body["metadata"]["finalizers"]

        # Deleted properly (the operator still down): the agent removes export and file
        # and releases its finalizer.
        apiserver.kubectl("delete", "volume", "kept", "-n", ns, "--wait=false")
        agent.resync()
        assert agent.store.volume_uids() == set()
        assert iqn not in daemon.exports
        eventually(
            lambda: (
                "kubenova.io/agent"
                not in (get(apiserver, "volume", ns, "kept") or {"metadata": {}})["metadata"].get(
                    "finalizers", []
                )
            ),
            timeout=15,
            what="the agent's finalizer released",
        )
    finally:
        operator.start()
        agent.stop()
    volume_gone(apiserver, ns, "kept")
