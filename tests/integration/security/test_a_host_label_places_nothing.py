"""A `kubenova.io/host` label is a tenant's label like any other: it moves and destroys nothing.

Agents select their Instances by the operator-written `status.host` (a field selector),
not by a label. A project member setting, changing or removing the old host label on a
Running Instance is admitted, and for a while after: the domain stays on its host, no other
host builds one, the claim stays, the agent destroys nothing — and the operator, which
keeps no label, writes nothing back.
"""

from __future__ import annotations

import re
import time
import urllib.request

import pytest
from sqlalchemy import Engine

from kubenova.operator import inventory as inv
from tests.builders import an_instance, as_yaml
from tests.fixtures.agent import AgentFactory, AgentProcess
from tests.integration.auth.conftest import Tenancy
from tests.integration.operator.test_scheduling import get, wait_ready
from tests.integration.security.conftest import as_user, claimed_host, metadata_of
from tests.integration.security.test_instance_placement import FLAVOR, HOSTS, domains, running
from tests.support.waiting import eventually

pytestmark = [pytest.mark.apiserver, pytest.mark.ldap]


def destroy_calls(agent: AgentProcess) -> float:
    """How often the agent asked its compute driver to destroy a domain (its own metrics)."""
    port = next(a.split("=", 1)[1] for a in agent.command if a.startswith("--metrics-port="))
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    found = re.search(
        r'^kubenova_agent_driver_call_seconds_count\{call="destroy",service="compute"\} (\S+)$',
        text,
        re.M,
    )
    return float(found.group(1)) if found else 0.0


def nothing_destroyed_for_a_while(
    on_host: AgentProcess, elsewhere: AgentProcess, domain: list[str], engine: Engine, uid: str
) -> None:
    """For a few seconds: the domain stays, no other host builds one, the claim stays."""
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:
        assert domains(on_host.state_dir) == domain
        assert domains(elsewhere.state_dir) == []
        assert claimed_host(engine, uid) == on_host.host
        time.sleep(0.2)
    # Not destroyed and built again either: the driver was never asked to destroy.
    assert destroy_calls(on_host) == 0


def test_a_tenant_setting_or_removing_a_host_label_destroys_and_moves_nothing(
    tenancy: Tenancy, tenant_project: str, agents: AgentFactory
) -> None:
    cluster, namespace = tenancy.cluster, tenant_project
    for host in HOSTS:
        agents.start(host, capacity="vcpus=8,memoryMiB=4096,diskGiB=100")
    wait_ready(cluster, *HOSTS)
    made = cluster.kubectl(
        "apply", "-f", "-", "--as", "bob",
        input=as_yaml(an_instance("vm", namespace, flavor=FLAVOR)),
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    body = running(cluster, namespace, "vm")
    uid, host = body["metadata"]["uid"], body["status"]["host"]
    other = next(h for h in HOSTS if h != host)
    on_host = next(a for a in agents.agents if a.host == host)
    elsewhere = next(a for a in agents.agents if a.host == other)
    engine = inv.make_engine(tenancy.operator.database_url)
    domain = domains(on_host.state_dir)
    assert len(domain) == 1

    label = ("label", "instance", "vm", "-n", namespace, "--overwrite")
    for change in (f"kubenova.io/host={host}", "kubenova.io/host-", f"kubenova.io/host={other}"):
        done = as_user(cluster, "bob", *label, change)
        assert done.returncode == 0, done.stderr
        nothing_destroyed_for_a_while(on_host, elsewhere, domain, engine, uid)
    # The operator keeps no label: what the tenant wrote last is what is there.
    labels = metadata_of(cluster, "instance", namespace, "vm")["labels"]
    assert labels["kubenova.io/host"] == other
    assert claimed_host(engine, uid) == host
    now = get(cluster, namespace, "vm")
    assert now is not None
    assert now["status"]["host"] == host
    assert now["status"]["phase"] == "Running"
    assert domains(on_host.state_dir) == domain
    assert domains(elsewhere.state_dir) == []
    assert destroy_calls(on_host) == 0

    # Deleting still works as ever: the domain goes, then the claim.
    cluster.kubectl("delete", "instance", "vm", "-n", namespace, "--as", "bob", "--wait=false")
    eventually(lambda: domains(on_host.state_dir) == [], timeout=30, what="the domain destroyed")
    eventually(lambda: claimed_host(engine, uid) is None, timeout=30, what="the claim released")
