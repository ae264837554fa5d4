"""A host removed from a target's access list loses its open session too: tgtd checks the
ACL only at login, so an established session would otherwise keep reading and writing."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest

from kubenova.agents.volume.backing import BackingStore
from kubenova.agents.volume.driver import IscsiTarget
from kubenova.agents.volume.tgt import TgtDriver, TgtSettings
from tests.fixtures.tgtd import TgtDaemon
from tests.integration.volume.test_tgt_datapath import HOST_A, HOST_B, a_volume, login_of
from tests.support.iscsi import IscsiLogin, io_ok, qemu_io, qemu_io_argv
from tests.support.waiting import eventually

pytestmark = pytest.mark.tgt


@pytest.fixture
def store(tmp_path: Path) -> BackingStore:
    return BackingStore(tmp_path / "volumes")


@pytest.fixture
def driver(tgtd: TgtDaemon, store: BackingStore) -> TgtDriver:
    return TgtDriver(
        TgtSettings(portal=tgtd.portal, storage_dir=store.directory, control_port=tgtd.control_port)
    )


@contextmanager
def open_session(login: IscsiLogin) -> Iterator[subprocess.Popen[str]]:
    """An interactive qemu-io holding a logged-in session until the block ends."""
    process = subprocess.Popen(
        qemu_io_argv(login),
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        yield process
    finally:
        process.kill()
        process.wait(timeout=10)


def initiators_logged_in(driver: TgtDriver, iqn: str) -> list[str]:
    target = next(t for t in driver.tgtadm.targets() if t.iqn == iqn)
    return sorted(session.initiator for session in target.nexuses)


def test_a_host_removed_from_the_acl_loses_its_open_session(
    tgtd: TgtDaemon, driver: TgtDriver, store: BackingStore
) -> None:
    spec = a_volume(store, HOST_A, HOST_B)
    driver.export(spec)
    assert isinstance(spec.target, IscsiTarget)
    iqn = spec.target.iqn
    both = sorted([HOST_A.iqn or "", HOST_B.iqn or ""])
    with (
        open_session(login_of(tgtd, spec, HOST_A)),
        open_session(login_of(tgtd, spec, HOST_B)),
    ):
        eventually(lambda: initiators_logged_in(driver, iqn) == both, what="two sessions")
        # Host A is detached (or fenced): only B stays on the list, and only B's session.
        export = driver.export(replace(spec, initiators=(HOST_B,)))
        assert export.acl == (HOST_B.iqn,)
        eventually(
            lambda: initiators_logged_in(driver, iqn) == [HOST_B.iqn],
            what="host A's session closed",
        )
        # A's initiator cannot come back either (the ACL refuses its login).
        refused = qemu_io(login_of(tgtd, spec, HOST_A), "read 0 4k")
        assert not io_ok(refused)
        assert initiators_logged_in(driver, iqn) == [HOST_B.iqn]
