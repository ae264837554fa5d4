"""Two operator replicas on one inventory: one leads (the Lease), none stalls.

`--peering` (what the chart passed before the leader Lease) is still accepted for one
release, and ignored: kopf's peering would pause every standby's watches.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from kubenova.devcluster import ClusterAccess
from kubenova.operator import inventory as inv
from kubenova.operator.inventory.consumers import list_consumers
from tests.builders import an_instance
from tests.fixtures.operator import OperatorProcess
from tests.integration.operator.test_resilience import all_scheduled
from tests.integration.operator.test_scheduling import apply, catalog, wait_ready
from tests.support.hosts import SimulatedHosts

pytestmark = pytest.mark.apiserver

# kopf's peering CRD (the chart no longer ships it), installed so that peering *would* take
# effect if the flag were honoured: keep-alives in one ClusterKopfPeering, standbys paused.
PEERING_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "clusterkopfpeerings.kopf.dev"},
    "spec": {
        "group": "kopf.dev",
        "scope": "Cluster",
        "names": {
            "kind": "ClusterKopfPeering",
            "listKind": "ClusterKopfPeeringList",
            "plural": "clusterkopfpeerings",
            "singular": "clusterkopfpeering",
        },
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "status": {
                                "type": "object",
                                "x-kubernetes-preserve-unknown-fields": True,
                            }
                        },
                    }
                },
            }
        ],
    },
}


def test_two_replicas_given_the_old_peering_flag_schedule_everything_exactly_once(
    apiserver: ClusterAccess,
    operator: OperatorProcess,
    hosts: SimulatedHosts,
    namespace: str,
    inventory_url: str,
    tmp_path: Path,
) -> None:
    apiserver.kubectl("apply", "--server-side", "-f", "-", input=json.dumps(PEERING_CRD))
    apiserver.kubectl(
        "wait", "--for=condition=Established", "crd/clusterkopfpeerings.kopf.dev", "--timeout=60s"
    )
    apiserver.kubectl(
        "apply",
        "-f",
        "-",
        input=json.dumps(
            {
                "apiVersion": "kopf.dev/v1",
                "kind": "ClusterKopfPeering",
                "metadata": {"name": "kubenova"},
            }
        ),
    )
    operator.stop()
    operator.extra_args = ("--peering", "kubenova")
    operator.start()
    second = OperatorProcess(
        log_path=tmp_path / "operator-2.log",
        env=dict(os.environ),
        kubeconfig=apiserver.kubeconfig,
        database_url=inventory_url,
        extra_args=("--peering", "kubenova"),
    )
    second.start()
    try:
        flavor = catalog(apiserver)
        hosts.add("h-peer", memory_mib=65536)
        wait_ready(apiserver, "h-peer")
        apply(apiserver, *[an_instance(f"r{i}", namespace, flavor=flavor) for i in range(10)])
        bodies = all_scheduled(apiserver, namespace, 10)
    finally:
        second.stop()
    claims = list_consumers(inv.make_engine(inventory_url), "Instance")
    assert sorted(c.uid for c in claims) == sorted(b["metadata"]["uid"] for b in bodies)
    logs = operator.log() + second.log()
    assert "Pausing all operators, including self" not in logs
    assert "--peering and --peering-priority are deprecated and ignored" in second.log()
