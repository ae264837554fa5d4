"""The iSCSI data path for real: tgtd exports, QEMU's initiator logs in with CHAP, reads, writes."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from kubenova.agents.volume.backing import BackingStore
from kubenova.agents.volume.driver import ChapCredentials, ExportSpec, Initiator, IscsiTarget
from kubenova.agents.volume.tgt import TgtDriver, TgtSettings
from tests.fixtures.tgtd import TgtDaemon
from tests.support.iscsi import IscsiLogin, io_ok, iscsi_ls, qemu_io

pytestmark = pytest.mark.tgt

HOST_A = Initiator(
    host="compute-a", iqn="iqn.2010-10.io.kubenova:host.compute-a", address="127.0.0.1"
)
HOST_B = Initiator(
    host="compute-b", iqn="iqn.2010-10.io.kubenova:host.compute-b", address="127.0.0.2"
)
MIB = 1 << 20


def a_volume(store: BackingStore, *initiators: Initiator) -> ExportSpec:
    uid = str(uuid.uuid4())
    return ExportSpec(
        volume_uid=uid,
        backing=store.create(uid, 16 * MIB),
        target=IscsiTarget(f"iqn.2010-10.io.kubenova:volume-{uid}"),
        chap=ChapCredentials(f"volume-{uid[:8]}", uuid.uuid4().hex[:16]),
        initiators=initiators,
    )


def login_of(tgtd: TgtDaemon, spec: ExportSpec, initiator: Initiator) -> IscsiLogin:
    assert isinstance(spec.target, IscsiTarget)
    assert spec.chap is not None
    assert initiator.iqn
    return IscsiLogin(
        tgtd.portal,
        spec.target.iqn,
        spec.target.lun,
        spec.chap.username,
        spec.chap.password,
        initiator.iqn,
    )


@pytest.fixture
def store(tmp_path: Path) -> BackingStore:
    return BackingStore(tmp_path / "volumes")


@pytest.fixture
def driver(tgtd: TgtDaemon, store: BackingStore) -> TgtDriver:
    return TgtDriver(
        TgtSettings(portal=tgtd.portal, storage_dir=store.directory, control_port=tgtd.control_port)
    )


def test_the_attached_host_writes_and_reads_back_with_chap(
    tgtd: TgtDaemon, driver: TgtDriver, store: BackingStore
) -> None:
    spec = a_volume(store, HOST_A)
    driver.export(spec)
    login = login_of(tgtd, spec, HOST_A)
    written = qemu_io(login, "write -P 0xab 0 64k", "write -P 0x5c 1M 4k")
    assert io_ok(written), written.stdout + written.stderr
    read = qemu_io(login, "read -P 0xab 0 64k", "read -P 0x5c 1M 4k")
    assert io_ok(read), read.stdout + read.stderr
    data = spec.backing.read_bytes()
    assert data[: 64 * 1024] == b"\xab" * 64 * 1024  # it reached the volume's own file
    assert data[MIB : MIB + 4096] == b"\x5c" * 4096


def test_a_wrong_chap_secret_is_refused(
    tgtd: TgtDaemon, driver: TgtDriver, store: BackingStore
) -> None:
    spec = a_volume(store, HOST_A)
    driver.export(spec)
    wrong = login_of(tgtd, spec, HOST_A).replace(password="not-the-secret1")
    result = qemu_io(wrong, "read 0 4k")
    assert result.returncode != 0
    assert "Authentication failure" in result.stderr
    assert "Authentication failure" in iscsi_ls(wrong).stdout + iscsi_ls(wrong).stderr


def test_an_initiator_outside_the_access_list_is_refused(
    tgtd: TgtDaemon, driver: TgtDriver, store: BackingStore
) -> None:
    spec = a_volume(store, HOST_A)
    driver.export(spec)
    outsider = login_of(tgtd, spec, HOST_B)  # right CHAP secret, wrong host
    result = qemu_io(outsider, "read 0 4k")
    assert result.returncode != 0
    assert "Failed to log in" in result.stderr
    assert spec.target.key not in iscsi_ls(outsider).stdout  # the target is hidden from it
    assert spec.target.key in iscsi_ls(login_of(tgtd, spec, HOST_A)).stdout


def test_an_access_list_by_address_refuses_other_addresses(
    tgtd: TgtDaemon, store: BackingStore
) -> None:
    driver = TgtDriver(
        TgtSettings(
            portal=tgtd.portal,
            storage_dir=store.directory,
            control_port=tgtd.control_port,
            acl_by="address",
        )
    )
    spec = a_volume(store, HOST_B)  # admits 127.0.0.2; this machine logs in from 127.0.0.1
    assert driver.export(spec).admitted_hosts == ("compute-b",)
    refused = qemu_io(login_of(tgtd, spec, HOST_A), "read 0 4k")
    assert refused.returncode != 0
    driver.export(ExportSpec(spec.volume_uid, spec.backing, spec.target, spec.chap, (HOST_A,)))
    assert io_ok(qemu_io(login_of(tgtd, spec, HOST_A), "read 0 4k"))


def test_a_restarted_tgtd_is_healed_by_exporting_again(
    tgtd: TgtDaemon, driver: TgtDriver, store: BackingStore
) -> None:
    spec = a_volume(store, HOST_A)
    driver.export(spec)
    login = login_of(tgtd, spec, HOST_A)
    assert io_ok(qemu_io(login, "write -P 0x42 0 8k"))
    tgtd.restart()
    assert tgtd.target_names() == []  # tgtd keeps nothing across a restart
    assert driver.exports() == []
    driver.export(spec)  # what the agent's resync does
    assert io_ok(qemu_io(login, "read -P 0x42 0 8k"))


def test_a_restarted_agent_adopts_the_target_and_logins_keep_working(
    tgtd: TgtDaemon, driver: TgtDriver, store: BackingStore
) -> None:
    spec = a_volume(store, HOST_A)
    driver.export(spec)
    login = login_of(tgtd, spec, HOST_A)
    assert io_ok(qemu_io(login, "write -P 0x17 0 4k"))
    reborn = TgtDriver(driver.settings)
    assert [e.target for e in reborn.exports()] == [spec.target]
    reborn.export(spec)
    assert tgtd.target_names() == [spec.target.key]  # adopted, not created twice
    assert io_ok(qemu_io(login, "read -P 0x17 0 4k"))


def test_unexport_ends_logins_and_leaves_no_target(
    tgtd: TgtDaemon, driver: TgtDriver, store: BackingStore
) -> None:
    spec = a_volume(store, HOST_A)
    driver.export(spec)
    driver.unexport(spec.target)
    assert tgtd.target_names() == []
    assert spec.chap is not None
    assert spec.chap.username not in tgtd.tgtadm("--op", "show", "--mode", "account").stdout
    assert qemu_io(login_of(tgtd, spec, HOST_A), "read 0 4k").returncode != 0
