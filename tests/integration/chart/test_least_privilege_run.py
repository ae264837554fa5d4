"""The operator and a host agent, each running on a token of the chart's ServiceAccount and
nothing else, take an Instance and a Project through their lives with the chart's admission
policies enforced: no request of theirs is refused. The operator runs as the chart runs it:
serving the webhook, on PostgreSQL migrated by `kubenova db upgrade` (the chart's init
container).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubenova.devcluster import ClusterAccess
from tests.builders import a_flavor, an_image, an_instance, as_yaml, manifest
from tests.fixtures.agent import HEARTBEAT_INTERVAL, AgentProcess, agent_script
from tests.fixtures.operator import OperatorProcess, clean_slate
from tests.fixtures.postgres import PostgresCluster
from tests.integration.chart.conftest import (
    Release,
    policies_enforced,
    service_account_kubeconfig,
)
from tests.support.ports import free_port
from tests.support.waiting import eventually

pytestmark = [pytest.mark.apiserver, pytest.mark.postgres]
REFUSALS = ("Forbidden", " 403", "forbidden:")


def get(cluster: ClusterAccess, *args: str) -> dict[str, Any] | None:
    result = cluster.kubectl("get", *args, "-o", "json", check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None


def condition(body: dict[str, Any] | None, type_: str) -> str:
    for entry in ((body or {}).get("status") or {}).get("conditions") or []:
        if entry["type"] == type_:
            return str(entry["status"])
    return ""


@pytest.fixture
def workload(release: Release, tmp_path: Path) -> Iterator[ClusterAccess]:
    """A clean slate before; afterwards no Instances, Hosts, Leases or webhook left behind."""
    cluster = release.cluster
    clean_slate(cluster)
    yield cluster
    clean_slate(cluster)
    cluster.kubectl(
        "delete",
        "validatingwebhookconfiguration,mutatingwebhookconfiguration",
        "kubenova-admission",
        "--ignore-not-found",
        check=False,
    )


def test_the_operator_and_an_agent_need_nothing_beyond_the_chart(
    workload: ClusterAccess, postgres_cluster: PostgresCluster, tmp_path: Path
) -> None:
    cluster = workload
    operator_config = service_account_kubeconfig(
        cluster, "kubenova-operator", tmp_path / "operator.kubeconfig"
    )
    database = postgres_cluster.create_database()
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    # What the chart's init container runs before the operator starts.
    subprocess.run(
        [str(Path(sys.executable).parent / "kubenova"), "db", "upgrade"],
        env=env | {"KUBENOVA_DATABASE_URL": database},
        check=True,
        capture_output=True,
    )
    operators = [
        OperatorProcess(
            log_path=tmp_path / f"operator-{replica}.log",
            env=env,
            kubeconfig=operator_config,
            database_url=database,
            extra_args=(
                "--webhook-port",
                "0",
                "--webhook-host",
                "127.0.0.1",
            ),
        )
        for replica in (0,)
    ]
    host = f"lp-{uuid.uuid4().hex[:6]}"
    # The agent's token is bound to its node, as a DaemonSet pod's is: the host policy
    # lets it write only its own host's objects.
    agent_config = service_account_kubeconfig(
        cluster, "kubenova-agent", tmp_path / "agent.kubeconfig", node=host
    )
    state = tmp_path / "agent"
    state.mkdir()
    (state / "node.xml").write_text("<node></node>\n")
    agent = AgentProcess(
        log_path=tmp_path / "agent.log",
        env=env,
        host=host,
        state_dir=state,
        command=[
            agent_script(),
            f"--host-name={host}",
            f"--libvirt-uri=test://{state / 'node.xml'}",
            f"--state-dir={state}",
            f"--kubeconfig={agent_config}",
            "--domain-type=qemu",
            "--capacity=vcpus=16,memoryMiB=32768,diskGiB=200",
            "--metrics-host=127.0.0.1",
            f"--metrics-port={free_port()}",
            "--resync-interval=5",
            f"--heartbeat-interval={HEARTBEAT_INTERVAL}",
        ],
    )
    tenant = f"lp-{uuid.uuid4().hex[:6]}"
    project = f"lp-proj-{uuid.uuid4().hex[:6]}"
    processes = [*operators, agent]
    for process in processes:
        process.start()
    try:
        eventually(
            lambda: condition(get(cluster, "host", host), "Ready") == "True",
            timeout=60,
            what=f"host {host} Ready",
        )
        for configuration in ("validatingwebhookconfiguration", "mutatingwebhookconfiguration"):
            eventually(
                lambda kind=configuration: get(cluster, kind, "kubenova-admission"),
                timeout=60,
                what=f"the {configuration} published by the operator",
            )
        cluster.kubectl(
            "apply",
            "-f",
            "-",
            input=as_yaml(a_flavor("lp.small", memory=256), an_image("lp-image")),
        )
        cluster.kubectl("create", "namespace", tenant)
        # Admitted by the webhook, scheduled by an operator, run by the agent.
        cluster.kubectl(
            "apply",
            "-f",
            "-",
            input=as_yaml(an_instance("vm", tenant, flavor="lp.small", image="lp-image")),
        )
        running = eventually(
            lambda: (
                (body := get(cluster, "instance", "vm", "-n", tenant))
                and (body.get("status") or {}).get("phase") == "Running"
                and body
            ),
            timeout=90,
            what="the Instance Running",
        )
        policies_enforced(cluster, "vm", tenant)
        cluster.kubectl("apply", "-f", "-", input=as_yaml(manifest("Project", project, {})))
        eventually(
            lambda: condition(get(cluster, "project", project), "Ready") == "True",
            timeout=60,
            what=f"project {project} Ready",
        )
        project_namespace = get(cluster, "namespace", project)
        roles = [
            get(cluster, "clusterrole", f"kubenova-project-{r}")
            for r in ("admin", "member", "reader")
        ]

        cluster.kubectl("delete", "instance", "vm", "-n", tenant, "--wait=false")
        eventually(
            lambda: get(cluster, "instance", "vm", "-n", tenant) is None,
            timeout=60,
            what="the Instance gone (both finalizers dropped)",
        )
        cluster.kubectl("delete", "project", project, "--wait=false")
        eventually(
            lambda: get(cluster, "project", project) is None, timeout=60, what="the Project gone"
        )
        lease = get(cluster, "lease", "kubenova-operator-leader", "-n", "kubenova-system")
    finally:
        for process in processes:
            process.stop()
        cluster.kubectl("delete", "namespace", tenant, "--wait=false", check=False)
        cluster.kubectl("delete", "node", host, "--wait=false", check=False)

    assert running["status"]["host"] == host
    assert project_namespace is not None
    assert project_namespace["metadata"]["labels"]["kubenova.io/project"] == project
    assert all(role is not None for role in roles)
    assert lease is not None  # the replica leads through the Lease the chart lets it write
    assert lease["spec"]["holderIdentity"].endswith(f"_{operators[0].process.pid}")  # type: ignore[union-attr]
    for process in processes:
        refusals = [
            line for line in process.log().splitlines() if any(word in line for word in REFUSALS)
        ]
        assert refusals == [], f"{process.log_path.name}: {refusals[:3]}"
        assert "Traceback" not in process.log(), process.log()[-3000:]
