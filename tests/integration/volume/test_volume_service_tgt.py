"""The volume service on a real tgtd behind the real operator: restarts, failures, cycles."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kubenova.agents.volume.tgt import TgtDriver, TgtSettings
from kubenova.devcluster import ClusterAccess
from kubenova.operator import inventory as inv
from kubenova.operator.inventory import volumes as vol
from kubenova.operator.inventory.consumers import list_consumers
from tests.builders import a_volume, as_yaml
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
from tests.support.hosts import SimulatedHosts
from tests.support.iscsi import IscsiLogin, io_ok, qemu_io
from tests.support.volume_agent import VolumeAgent
from tests.support.waiting import eventually

pytestmark = [pytest.mark.apiserver, pytest.mark.tgt]


def tgt_driver(tgtd: TgtDaemon, storage: Path) -> TgtDriver:
    return TgtDriver(
        TgtSettings(portal=tgtd.portal, storage_dir=storage, control_port=tgtd.control_port)
    )


@pytest.fixture
def storage(tmp_path: Path) -> Path:
    return tmp_path / "store-1"


@pytest.fixture
def start_agent(
    apiserver: ClusterAccess, tgtd: TgtDaemon, storage: Path
) -> Iterator[Callable[..., VolumeAgent]]:
    started: list[VolumeAgent] = []

    def start(**settings: float) -> VolumeAgent:
        agent = VolumeAgent(
            apiserver.kubeconfig,
            "store-1",
            {"iscsi": tgt_driver(tgtd, storage)},
            storage,
            **settings,
        )
        started.append(agent)
        return agent

    yield start
    for agent in started:
        agent.stop()


@pytest.fixture
def store_1(operator: OperatorProcess, hosts: SimulatedHosts) -> str:
    hosts.add("store-1", services=("volume",), disk_gib=200_000)
    return "store-1"


@pytest.mark.usefixtures("store_1")
def test_a_restarted_agent_adopts_its_targets_without_a_write(
    apiserver: ClusterAccess,
    tgtd: TgtDaemon,
    start_agent: Callable[..., VolumeAgent],
    volume_namespace: str,
) -> None:
    first = start_agent()
    apply(apiserver, a_volume("kept", volume_namespace))
    volume_in_phase(apiserver, volume_namespace, "kept", "Available")
    shown = tgtd.tgtadm("--op", "show", "--mode", "target").stdout
    first.stop()
    second = start_agent()
    eventually(
        lambda: not second.service.watch.queue._queued and len(second.service.watch.queue) == 0
    )
    time.sleep(0.5)
    assert tgtd.tgtadm("--op", "show", "--mode", "target").stdout == shown  # same tid, same ACL
    assert second.writes == 0  # nothing to say: the export it found is what the Volume says
    assert status(get(apiserver, "volume", volume_namespace, "kept"))["phase"] == "Available"


@pytest.mark.usefixtures("store_1")
def test_a_restarted_tgtd_is_healed_by_the_resync(
    apiserver: ClusterAccess,
    tgtd: TgtDaemon,
    start_agent: Callable[..., VolumeAgent],
    volume_namespace: str,
) -> None:
    start_agent(resync_interval=1.0)
    apply(apiserver, a_volume("healed", volume_namespace))
    body = volume_in_phase(apiserver, volume_namespace, "healed", "Available")
    target = status(body)["target"]
    chap = secret_data(apiserver, volume_namespace, target["chapSecret"])
    login = IscsiLogin(tgtd.portal, target["iqn"], 1, chap["username"], chap["password"], "x")
    before = tgtd.process.pid if tgtd.process else None
    tgtd.restart()  # a new tgtd starts empty; the 1 s resync may refill it before we look
    assert tgtd.process is not None
    assert tgtd.process.pid != before
    started = time.monotonic()
    eventually(lambda: tgtd.target_names() == [target["iqn"]], what="the target back", timeout=15)
    print(f"\ntgtd restart healed in {time.monotonic() - started:.2f} s (resync every 1 s)")
    # CHAP still guards it; the access list is empty until an Instance attaches.
    assert qemu_io(login, "read 0 4k").returncode != 0
    assert "Account information" in tgtd.tgtadm("--op", "show", "--mode", "target").stdout
    assert chap["username"] in tgtd.tgtadm("--op", "show", "--mode", "account").stdout


@pytest.mark.usefixtures("store_1")
def test_a_stopped_tgtd_is_an_error_a_user_can_act_on_and_recovers(
    apiserver: ClusterAccess,
    tgtd: TgtDaemon,
    start_agent: Callable[..., VolumeAgent],
    volume_namespace: str,
) -> None:
    start_agent()
    tgtd.crash()
    apply(apiserver, a_volume("waiting", volume_namespace))
    body = volume_in_phase(apiserver, volume_namespace, "waiting", "Error")
    ready = condition(body, "Ready")
    assert ready["reason"] == "ExportDaemonUnavailable"
    assert f"tgtd is not reachable on control port {tgtd.control_port}" in ready["message"]
    assert "start the tgt daemon" in ready["message"]
    events = apiserver.kubectl("get", "events", "-n", volume_namespace, "-o", "json").stdout
    assert "ExportDaemonUnavailable" in events
    tgtd.start()
    volume_in_phase(apiserver, volume_namespace, "waiting", "Available", timeout=30)


@pytest.mark.usefixtures("store_1")
def test_a_volume_larger_than_the_disk_is_an_out_of_space_error(
    apiserver: ClusterAccess,
    start_agent: Callable[..., VolumeAgent],
    storage: Path,
    volume_namespace: str,
) -> None:
    start_agent()
    storage.mkdir(parents=True, exist_ok=True)
    free_gib = shutil.disk_usage(storage).free >> 30
    size = min(65536, free_gib + 1024)  # the inventory has room; the filesystem has not
    apply(apiserver, a_volume("huge", volume_namespace, sizeGiB=size))
    body = volume_in_phase(apiserver, volume_namespace, "huge", "Error")
    ready = condition(body, "Ready")
    assert ready["reason"] == "OutOfSpace"
    assert f"needs {size}.0 GiB" in ready["message"]
    assert "free space on the host" in ready["message"]
    assert list(storage.iterdir()) == []  # nothing half-made stays


@pytest.mark.slow
@pytest.mark.usefixtures("store_1")
def test_a_hundred_create_delete_cycles_leave_nothing_behind(
    apiserver: ClusterAccess,
    tgtd: TgtDaemon,
    start_agent: Callable[..., VolumeAgent],
    storage: Path,
    volume_namespace: str,
    inventory_url: str,
    record_property: Callable[[str, object], None],
) -> None:
    start_agent()
    ns, batch, rounds = volume_namespace, 10, 10

    def phases() -> dict[str, str]:
        out = apiserver.kubectl("get", "volumes", "-n", ns, "-o", "json").stdout
        return {
            i["metadata"]["name"]: (i.get("status") or {}).get("phase", "")
            for i in json.loads(out)["items"]
        }

    started = time.monotonic()
    for round_ in range(rounds):
        names = [f"c{round_}-{i}" for i in range(batch)]
        apiserver.kubectl(
            "apply", "-f", "-", input=as_yaml(*(a_volume(n, ns, sizeGiB=1) for n in names))
        )
        eventually(
            lambda names=names: (p := phases()) and all(p.get(n) == "Available" for n in names),
            timeout=60,
            what=f"round {round_}: {batch} volumes Available",
        )
        assert len(tgtd.target_names()) == batch
        apiserver.kubectl("delete", "volumes", "--all", "-n", ns, "--wait=false")
        eventually(lambda: phases() == {}, timeout=60, what=f"round {round_}: all deleted")
    seconds = time.monotonic() - started
    record_property("cycles_per_second", round(batch * rounds / seconds, 1))
    print(f"\n{batch * rounds} create/delete cycles through operator + tgt: {seconds:.1f} s")
    assert tgtd.target_names() == []
    assert tgtd.tgtadm("--op", "show", "--mode", "account").stdout.strip() in ("", "Account list:")
    assert list(storage.iterdir()) == []
    engine = inv.make_engine(inventory_url)
    assert list_consumers(engine, "Volume") == []
    assert vol.list_targets(engine) == []
    assert vol.list_attachments(engine) == []
    assert inv.host_usage(engine)["store-1"] == inv.Resources()
    secrets = json.loads(apiserver.kubectl("get", "secrets", "-n", ns, "-o", "json").stdout)
    assert [s for s in secrets["items"] if s.get("type") == "kubenova.io/iscsi-chap"] == []
    login = IscsiLogin(tgtd.portal, "iqn.none", 1, "u", "p", "i")
    assert not io_ok(qemu_io(login, "read 0 4k"))
