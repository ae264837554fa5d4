"""The AoE data path for real: vblade in the volume host's namespace, a userspace AoE client in
the client host's namespace (this kernel has no `aoe` initiator)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from kubenova.agents.volume.backing import BackingStore
from kubenova.agents.volume.driver import AoeTarget, ExportSpec, Initiator
from kubenova.agents.volume.vblade import VbladeDriver, VbladeSettings
from tests.fixtures.tgtd import AoeNetwork
from tests.support.aoe_client import AoeClient, NoAnswer, interface_mac

pytestmark = pytest.mark.netns

MIB = 1 << 20
OUTSIDER = "02:aa:bb:cc:dd:ee"


@pytest.fixture
def store(tmp_path: Path) -> BackingStore:
    return BackingStore(tmp_path / "volumes")


@pytest.fixture
def driver(aoe_network: AoeNetwork, store: BackingStore, tmp_path: Path) -> VbladeDriver:
    return VbladeDriver(
        VbladeSettings(
            interface=aoe_network.server_if,
            storage_dir=store.directory,
            run_dir=tmp_path / "vblade",
            netns=aoe_network.server_ns,
        )
    )


@pytest.fixture
def client_host(aoe_network: AoeNetwork) -> Initiator:
    """The compute host of the test: its storage MAC is the client interface's."""
    return Initiator(
        host="compute-a", mac=interface_mac(aoe_network.client_if, aoe_network.client_ns)
    )


def client(network: AoeNetwork, target: AoeTarget, source_mac: str | None = None) -> AoeClient:
    return AoeClient(
        network.client_if,
        target.shelf,
        target.slot,
        netns=network.client_ns,
        source_mac=source_mac,
        timeout=1.0,
    )


def a_volume(store: BackingStore, slot: int, *initiators: Initiator) -> ExportSpec:
    uid = str(uuid.uuid4())
    return ExportSpec(
        uid, store.create(uid, 8 * MIB), AoeTarget(shelf=3, slot=slot), None, initiators
    )


def test_the_attached_host_identifies_reads_and_writes_the_volume(
    aoe_network: AoeNetwork, driver: VbladeDriver, client_host: Initiator
) -> None:
    spec = a_volume(BackingStore(driver.settings.storage_dir), 1, client_host)
    with spec.backing.open("r+b") as handle:
        handle.seek(MIB)
        handle.write(b"written-on-the-volume-host".ljust(512, b"\0"))
    assert driver.export(spec).admitted_hosts == ("compute-a",)
    assert isinstance(spec.target, AoeTarget)
    with client(aoe_network, spec.target) as aoe:
        identity = aoe.identify()
        assert identity.size_bytes == 8 * MIB
        assert aoe.read(MIB, 512).startswith(b"written-on-the-volume-host")
        aoe.write(2 * MIB, b"\x5a" * 2048)
    assert spec.backing.read_bytes()[2 * MIB : 2 * MIB + 2048] == b"\x5a" * 2048


def test_a_mac_outside_the_access_list_gets_no_answer(
    aoe_network: AoeNetwork, driver: VbladeDriver, client_host: Initiator, store: BackingStore
) -> None:
    spec = a_volume(store, 2, client_host)
    driver.export(spec)
    assert isinstance(spec.target, AoeTarget)
    with client(aoe_network, spec.target, source_mac=OUTSIDER) as outsider, pytest.raises(NoAnswer):
        outsider.identify()
    with client(aoe_network, spec.target) as member:
        assert member.identify().sectors == 8 * MIB // 512


def test_the_access_list_follows_the_attachments(
    aoe_network: AoeNetwork, driver: VbladeDriver, client_host: Initiator, store: BackingStore
) -> None:
    spec = a_volume(store, 3, client_host)
    driver.export(spec)
    assert isinstance(spec.target, AoeTarget)
    second = Initiator(host="compute-b", mac=OUTSIDER)
    both = ExportSpec(spec.volume_uid, spec.backing, spec.target, None, (client_host, second))
    assert driver.export(both).admitted_hosts == ("compute-a", "compute-b")
    with client(aoe_network, spec.target, source_mac=OUTSIDER) as b:
        assert b.identify().sectors == 8 * MIB // 512
    only_b = ExportSpec(spec.volume_uid, spec.backing, spec.target, None, (second,))
    driver.export(only_b)
    with client(aoe_network, spec.target) as a, pytest.raises(NoAnswer):
        a.identify()


def test_unexport_stops_answering_and_leaves_no_process(
    aoe_network: AoeNetwork, driver: VbladeDriver, client_host: Initiator, store: BackingStore
) -> None:
    spec = a_volume(store, 4, client_host)
    driver.export(spec)
    assert isinstance(spec.target, AoeTarget)
    driver.unexport(spec.target)
    with client(aoe_network, spec.target) as aoe, pytest.raises(NoAnswer):
        aoe.identify()
    assert driver.exports() == []
    assert list(driver.settings.run_dir.iterdir()) == []


def test_a_restarted_agent_adopts_the_running_vblade(
    aoe_network: AoeNetwork, driver: VbladeDriver, client_host: Initiator, store: BackingStore
) -> None:
    spec = a_volume(store, 5, client_host)
    driver.export(spec)
    record = (driver.settings.run_dir / "e3.5.json").read_text()
    driver.close()
    reborn = VbladeDriver(driver.settings)
    assert [(e.target, e.acl) for e in reborn.exports()] == [(spec.target, (client_host.mac,))]
    reborn.export(spec)
    assert (driver.settings.run_dir / "e3.5.json").read_text() == record  # same process kept
    assert isinstance(spec.target, AoeTarget)
    with client(aoe_network, spec.target) as aoe:
        assert aoe.identify().sectors == 8 * MIB // 512
    reborn.unexport(spec.target)


def test_an_export_attached_nowhere_runs_no_vblade(
    aoe_network: AoeNetwork, driver: VbladeDriver, store: BackingStore
) -> None:
    spec = a_volume(store, 6)
    export = driver.export(spec)
    assert export.acl == ()
    assert isinstance(spec.target, AoeTarget)
    with client(aoe_network, spec.target) as aoe, pytest.raises(NoAnswer):
        aoe.identify()  # vblade without -m would answer anyone: none runs
