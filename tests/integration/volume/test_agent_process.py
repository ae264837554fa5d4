"""`kubenova-agent --services volume` and `--services compute` as real processes, with the
operator: a Volume exported by tgtd is attached to an Instance, then the volume host's
agent is restarted and adopts its target."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kubenova.devcluster import ClusterAccess
from tests.builders import a_flavor, a_volume, an_image, an_instance
from tests.fixtures.agent import AgentFactory
from tests.fixtures.operator import OperatorProcess
from tests.fixtures.tgtd import TgtDaemon
from tests.integration.volume.cluster import (
    apply,
    condition,
    get,
    secret_data,
    status,
    volume_in_phase,
)
from tests.support.iscsi import IscsiLogin, io_ok, qemu_io
from tests.support.waiting import eventually

pytestmark = [pytest.mark.apiserver, pytest.mark.tgt]


def test_agents_export_attach_and_readopt_a_volume(
    apiserver: ClusterAccess,
    operator: OperatorProcess,
    agents: AgentFactory,
    tgtd: TgtDaemon,
    volume_namespace: str,
) -> None:
    ns = volume_namespace
    volume_flags = (
        "--services=volume",
        f"--tgt-control-port={tgtd.control_port}",
        f"--iscsi-portal={tgtd.portal}",
    )
    store = agents.start("store-p", extra=volume_flags)
    agents.start("compute-p", extra=("--services=compute", "--storage-interface=lo"))
    apply(apiserver, a_flavor("p.tiny", vcpus=1, memory=128, disk=1), an_image("test-image"))
    apply(apiserver, a_volume("data", ns, sizeGiB=1))
    body = volume_in_phase(apiserver, ns, "data", "Available", timeout=60)
    assert status(body)["host"] == "store-p"
    target = status(body)["target"]
    assert tgtd.target_names() == [target["iqn"]]
    apply(
        apiserver,
        an_instance(
            "vm", ns, flavor="p.tiny", volumes=[{"volume": "data"}],
            placement={"host": "compute-p"},
        ),
    )  # fmt: skip
    volume_in_phase(apiserver, ns, "data", "InUse", timeout=60)
    vm = get(apiserver, "instance", ns, "vm")
    assert status(vm)["volumes"] == [{"volume": "data", "device": "vdb"}]
    assert condition(vm, "VolumesAttached")["status"] == "True"
    compute_host = apiserver.kubectl("get", "host", "compute-p", "-o", "json").stdout
    lo_mac = Path("/sys/class/net/lo/address").read_text().strip()
    assert json.loads(compute_host)["status"]["storageMAC"] == lo_mac  # for AoE ACLs
    acl = tgtd.tgtadm("--op", "show", "--mode", "target").stdout
    assert "iqn.2010-10.io.kubenova:host.compute-p" in acl
    chap = secret_data(apiserver, ns, target["chapSecret"])
    login = IscsiLogin(
        tgtd.portal,
        target["iqn"],
        1,
        chap["username"],
        chap["password"],
        "iqn.2010-10.io.kubenova:host.compute-p",
    )
    assert io_ok(qemu_io(login, "write -P 0x61 0 4k"))

    shown = tgtd.tgtadm("--op", "show", "--mode", "target").stdout
    store.stop()
    store.start()
    eventually(
        lambda: store.log().count("placed here") >= 2,
        timeout=60,
        what="the restarted volume host's agent synced",
    )
    assert tgtd.tgtadm("--op", "show", "--mode", "target").stdout == shown  # adopted as is
    assert tgtd.target_names() == [target["iqn"]]
    assert io_ok(qemu_io(login, "read -P 0x61 0 4k"))  # CHAP re-set, ACL kept
    assert status(get(apiserver, "volume", ns, "data"))["phase"] == "InUse"
