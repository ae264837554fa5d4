"""Volume and compute agents, each under its own host identity, export and attach an
iSCSI Volume: each reads the Volume's CHAP Secret through the grant the operator keeps for
its host alone (no agent holds any other right on Secrets), and the third host reads
nothing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kubenova.devcluster import ClusterAccess
from kubenova.devcluster.agent_identity import AGENT_RULES, agent_kubeconfig, install_agent_rbac
from tests.builders import a_flavor, a_volume, an_image, an_instance
from tests.fixtures.agent import AgentFactory
from tests.fixtures.apiserver import REPO_ROOT
from tests.fixtures.operator import OperatorProcess
from tests.fixtures.tgtd import TgtDaemon
from tests.integration.volume.cluster import (
    apply,
    secret_data,
    status,
    strip_and_delete,
    volume_in_phase,
)
from tests.support.iscsi import IscsiLogin, io_ok, qemu_io

pytestmark = [pytest.mark.apiserver, pytest.mark.tgt]


@pytest.fixture
def volumes_namespace(namespace: str, apiserver: ClusterAccess) -> Iterator[str]:
    yield namespace
    strip_and_delete(apiserver, namespace, "volumes")


def test_agents_export_and_attach_under_their_own_identities(
    apiserver: ClusterAccess,
    crds_installed: list[str],
    operator: OperatorProcess,
    agents: AgentFactory,
    tgtd: TgtDaemon,
    volumes_namespace: str,
) -> None:
    ns = volumes_namespace
    install_agent_rbac(apiserver, REPO_ROOT / AGENT_RULES)
    store_config = agent_kubeconfig(apiserver, "store-id")
    compute_config = agent_kubeconfig(apiserver, "compute-id")
    stranger_config = agent_kubeconfig(apiserver, "stranger-id")
    store = agents.start(
        "store-id",
        kubeconfig=store_config,
        extra=(
            "--services=volume",
            f"--tgt-control-port={tgtd.control_port}",
            f"--iscsi-portal={tgtd.portal}",
        ),
    )
    compute = agents.start(
        "compute-id",
        kubeconfig=compute_config,
        extra=("--services=compute", "--storage-interface=lo"),
    )
    apply(apiserver, a_flavor("id.tiny", vcpus=1, memory=128, disk=1), an_image("test-image"))
    apply(apiserver, a_volume("data", ns, sizeGiB=1))
    body = volume_in_phase(apiserver, ns, "data", "Available", timeout=60)
    target = status(body)["target"]
    apply(
        apiserver,
        an_instance(
            "vm", ns, flavor="id.tiny", volumes=[{"volume": "data"}],
            placement={"host": "compute-id"},
        ),
    )  # fmt: skip
    volume_in_phase(apiserver, ns, "data", "InUse", timeout=60)
    stranger = apiserver.kubectl(
        "get", "secret", target["chapSecret"], "-n", ns, kubeconfig=stranger_config, check=False
    )
    chap = secret_data(apiserver, ns, target["chapSecret"])
    login = IscsiLogin(
        tgtd.portal,
        target["iqn"],
        1,
        chap["username"],
        chap["password"],
        "iqn.2010-10.io.kubenova:host.compute-id",
    )

    assert status(body)["host"] == "store-id"
    assert tgtd.target_names() == [target["iqn"]]
    assert io_ok(qemu_io(login, "write -P 0x61 0 4k"))  # CHAP set from the Secret it read
    assert "forbidden" in stranger.stderr.lower()
    # A first read may be refused (the agent sees the Volume's new status as soon as the
    # operator does, before the grant is made) and is retried; nothing else goes wrong.
    for agent in (store, compute):
        assert "Traceback" not in agent.log()
