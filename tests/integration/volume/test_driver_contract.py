"""One contract for every export driver: the fakes and the real tgt and vblade pass it alike."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kubenova.agents.volume.driver import (
    AoeTarget,
    ChapCredentials,
    ExportDriver,
    ExportFailure,
    ExportSpec,
    Initiator,
    IscsiTarget,
    Target,
)
from kubenova.agents.volume.fake import FakeExportDaemon, FakeExportDriver
from kubenova.agents.volume.tgt import TgtDriver, TgtSettings
from kubenova.agents.volume.vblade import VbladeDriver, VbladeSettings
from tests.fixtures.tgtd import AoeNetwork, TgtDaemon


@dataclass
class Rig:
    """A driver under test, how to make another one on the same daemon, and its identities."""

    make: Callable[[], ExportDriver]
    storage: Path
    protocol: str

    def target(self, number: int) -> Target:
        if self.protocol == "iscsi":
            return IscsiTarget(f"iqn.2010-10.io.kubenova:contract-{number}")
        return AoeTarget(shelf=40, slot=number)

    def initiator(self, host: str, number: int) -> Initiator:
        return Initiator(
            host=host,
            iqn=f"iqn.2010-10.io.kubenova:host.{host}",
            address=f"127.0.0.{number}",
            mac=f"02:00:00:00:00:{number:02x}",
        )

    def spec(self, number: int, *initiators: Initiator) -> ExportSpec:
        backing = self.storage / f"vol-{number}.raw"
        if not backing.exists():
            self.storage.mkdir(parents=True, exist_ok=True)
            with backing.open("wb") as handle:
                handle.truncate(1 << 20)
        chap = ChapCredentials(f"user-{number}", f"secret-{number}-{uuid.uuid4().hex[:8]}")
        return ExportSpec(
            volume_uid=f"vol-{number}",
            backing=backing,
            target=self.target(number),
            chap=chap if self.protocol == "iscsi" else None,
            initiators=initiators,
        )


@pytest.fixture(params=["fake-iscsi", "fake-aoe", "tgt", "vblade"])
def rig(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Rig]:
    storage = tmp_path / "volumes"
    if request.param.startswith("fake"):
        daemon = FakeExportDaemon()
        protocol = request.param.removeprefix("fake-")
        yield Rig(lambda: FakeExportDriver(protocol, daemon), storage, protocol)
        return
    if request.param == "tgt":
        request.applymarker(pytest.mark.tgt)
        tgtd: TgtDaemon = request.getfixturevalue("tgtd")
        settings = TgtSettings(
            portal=tgtd.portal, storage_dir=storage, control_port=tgtd.control_port
        )
        yield Rig(lambda: TgtDriver(settings), storage, "iscsi")
        return
    request.applymarker(pytest.mark.netns)
    network: AoeNetwork = request.getfixturevalue("aoe_network")
    vblade = VbladeSettings(
        interface=network.server_if,
        storage_dir=storage,
        run_dir=tmp_path / "vblade",
        netns=network.server_ns,
    )
    made: list[ExportDriver] = []

    def make() -> ExportDriver:
        made.append(VbladeDriver(vblade))
        return made[-1]

    yield Rig(make, storage, "aoe")
    for export in make().exports():  # stop what a failed test left running
        made[-1].unexport(export.target)


def test_an_export_is_published_with_its_file_and_access_list(rig: Rig) -> None:
    driver = rig.make()
    a = rig.initiator("host-a", 1)
    export = driver.export(rig.spec(1, a))
    assert export.target == rig.target(1)
    assert export.backing == rig.storage / "vol-1.raw"
    assert export.admitted_hosts == ("host-a",)
    assert export.location == driver.location()
    listed = driver.exports()
    assert [(e.target, e.backing) for e in listed] == [(rig.target(1), rig.storage / "vol-1.raw")]
    assert driver.protocol == rig.protocol


def test_exporting_again_changes_nothing(rig: Rig) -> None:
    driver = rig.make()
    spec = rig.spec(1, rig.initiator("host-a", 1))
    first = driver.export(spec)
    assert driver.export(spec) == first
    assert len(driver.exports()) == 1


def test_the_access_list_follows_the_attached_hosts(rig: Rig) -> None:
    driver = rig.make()
    a, b = rig.initiator("host-a", 1), rig.initiator("host-b", 2)
    spec = rig.spec(1, a)
    assert driver.export(spec).admitted_hosts == ("host-a",)
    both = driver.export(ExportSpec(spec.volume_uid, spec.backing, spec.target, spec.chap, (a, b)))
    assert both.admitted_hosts == ("host-a", "host-b")
    only_b = driver.export(ExportSpec(spec.volume_uid, spec.backing, spec.target, spec.chap, (b,)))
    assert only_b.admitted_hosts == ("host-b",)
    assert len(only_b.acl) == 1
    nobody = driver.export(ExportSpec(spec.volume_uid, spec.backing, spec.target, spec.chap, ()))
    assert (nobody.admitted_hosts, nobody.acl) == ((), ())


def test_a_host_without_the_needed_identity_is_not_admitted(rig: Rig) -> None:
    driver = rig.make()
    anonymous = Initiator(host="host-x")
    assert driver.export(rig.spec(1, anonymous)).admitted_hosts == ()


def test_a_new_driver_adopts_what_the_daemon_holds(rig: Rig) -> None:
    first = rig.make()
    spec = rig.spec(1, rig.initiator("host-a", 1))
    exported = first.export(spec)
    first.close()
    second = rig.make()  # the agent restarted; the daemon did not
    assert [e.target for e in second.exports()] == [exported.target]
    again = second.export(spec)
    assert (again.target, again.admitted_hosts) == (exported.target, ("host-a",))
    assert len(second.exports()) == 1


def test_unexport_removes_the_export_and_is_idempotent(rig: Rig) -> None:
    driver = rig.make()
    spec = rig.spec(1, rig.initiator("host-a", 1))
    driver.export(spec)
    driver.unexport(spec.target)
    driver.unexport(spec.target)
    assert driver.exports() == []


def test_many_exports_live_side_by_side_and_go_away(rig: Rig) -> None:
    driver = rig.make()
    specs = [rig.spec(n, rig.initiator(f"host-{n}", n)) for n in range(1, 21)]
    for spec in specs:
        driver.export(spec)
    assert {e.target for e in driver.exports()} == {s.target for s in specs}
    for spec in specs:
        driver.unexport(spec.target)
    assert driver.exports() == []


def test_a_target_keeps_the_file_it_was_created_with(rig: Rig) -> None:
    driver = rig.make()
    spec = rig.spec(1, rig.initiator("host-a", 1))
    driver.export(spec)
    other = rig.spec(2).backing
    with pytest.raises(ExportFailure):
        driver.export(ExportSpec(spec.volume_uid, other, spec.target, spec.chap, spec.initiators))


def test_a_driver_refuses_the_other_protocols_targets(rig: Rig) -> None:
    driver = rig.make()
    foreign: Target = AoeTarget(1, 1) if rig.protocol == "iscsi" else IscsiTarget("iqn.x:y")
    with pytest.raises(ValueError, match="exports"):
        driver.unexport(foreign)
