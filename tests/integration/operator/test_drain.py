"""Drain through the operator on the real apiserver (compute agents on libvirt's test driver:
the bookkeeping, not the moves, which the live-migration tests cover with real libvirtds):
one InstanceMigration per Instance of the drained Host (live for a running one, cold for a
stopped one), the progress in the Host's status.drain, and a drain called off clears it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kubenova.devcluster import ClusterAccess
from tests.builders import an_instance
from tests.e2e.test_lifecycle_fake import wait_phase
from tests.fixtures.agent import AgentFactory
from tests.fixtures.operator import OperatorProcess
from tests.integration.operator.test_scheduling import apply, catalog, get, wait_ready
from tests.support.waiting import eventually

pytestmark = pytest.mark.apiserver

DRAIN = '{"spec":{"schedulable":false,"drain":true}}'


def host_drain(cluster: ClusterAccess, host: str) -> dict[str, Any] | None:
    body = json.loads(cluster.kubectl("get", "host", host, "-o", "json").stdout)
    drain: dict[str, Any] | None = (body.get("status") or {}).get("drain")
    return drain


def test_drain_makes_one_migration_per_instance_and_shows_progress(
    apiserver: ClusterAccess, operator: OperatorProcess, agents: AgentFactory, namespace: str
) -> None:
    flavor = catalog(apiserver, memory=128)
    agents.start("drn-a", capacity="vcpus=8,memoryMiB=2048,diskGiB=100")
    agents.start("drn-b", capacity="vcpus=8,memoryMiB=2048,diskGiB=100")
    wait_ready(apiserver, "drn-a", "drn-b")
    here = {"placement": {"host": "drn-a"}}
    apply(
        apiserver,
        an_instance("web-0", namespace, flavor=flavor, **here),
        an_instance("web-1", namespace, flavor=flavor, **here),
        an_instance("off", namespace, flavor=flavor, powerState="Stopped", **here),
        an_instance("elsewhere", namespace, flavor=flavor, placement={"host": "drn-b"}),
    )
    for name in ("web-0", "web-1", "elsewhere"):
        wait_phase(apiserver, namespace, name, "Running")
    wait_phase(apiserver, namespace, "off", "Stopped")

    # A drain without a cordon is refused at the door.
    refused = apiserver.kubectl(
        "patch", "host", "drn-a", "--type=merge", "-p", '{"spec":{"drain":true}}', check=False
    )
    assert refused.returncode != 0
    assert "spec.drain needs spec.schedulable: false" in refused.stderr, refused.stderr

    apiserver.kubectl("patch", "host", "drn-a", "--type=merge", "-p", DRAIN)
    drain = eventually(lambda: host_drain(apiserver, "drn-a"), what="drain status")
    assert drain["phase"] == "Draining"
    assert 0 < drain["instances"] <= 3

    def migrations() -> list[dict[str, Any]] | None:
        listing = apiserver.kubectl(
            "get", "imig", "-n", namespace, "-l", "kubenova.io/drained-host=drn-a", "-o", "json"
        )
        items: list[dict[str, Any]] = json.loads(listing.stdout)["items"]
        return items if len(items) == 3 else None

    made = eventually(migrations, what="one migration per instance")
    names = ("web-0", "web-1", "off")
    uids = {(get(apiserver, namespace, n) or {})["metadata"]["uid"]: n for n in names}
    modes = {"web-0": "Live", "web-1": "Live", "off": "Cold"}
    assert {
        m["metadata"]["name"]: (m["spec"]["instanceName"], m["spec"]["mode"]) for m in made
    } == {f"drain-{uid}": (name, modes[name]) for uid, name in uids.items()}

    # The tally: the three migrations under way (the test driver's agents move nothing: the
    # moves themselves are the live- and cold-migration tests' on real libvirtds); and no
    # migration is made twice by the passes that follow.
    def tally() -> dict[str, Any] | None:
        drain = host_drain(apiserver, "drn-a")
        return drain if drain and (drain["migrating"], drain["stopped"]) == (2, 1) else None

    drain = eventually(tally, what="drain tally")
    assert drain == {
        "phase": "Draining",
        "instances": 3,
        "migrating": 2,
        "failed": 0,
        "stopped": 1,
        "message": "3 Instances left on host drn-a: 2 being live-migrated, 1 stopped, being "
        "moved cold",
    }
    assert migrations() is not None  # still exactly three

    # Called off: the progress goes.
    apiserver.kubectl("patch", "host", "drn-a", "--type=merge", "-p", '{"spec":{"drain":false}}')
    eventually(lambda: host_drain(apiserver, "drn-a") is None, what="drain status cleared")
