"""A CHAP password reaches tgtd without passing through any process's argv or any log line.

Every local user can read /proc/<pid>/cmdline, so `tgtadm --password P` would hand each
volume's secret to anyone with a shell on the storage host. The driver is run against a
real tgtd; every child it starts is recorded (and /proc is scanned while it works), and
the login with the password still succeeds, proving tgtd got it some other way.
"""

from __future__ import annotations

import logging
import subprocess
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest

from kubenova.agents.volume.backing import BackingStore
from kubenova.agents.volume.driver import ChapCredentials, ExportSpec, Initiator, IscsiTarget
from kubenova.agents.volume.tgt import TgtDriver, TgtSettings
from tests.fixtures.tgtd import TgtDaemon
from tests.support.iscsi import IscsiLogin, io_ok, qemu_io

pytestmark = pytest.mark.tgt

HOST = Initiator(
    host="compute-a", iqn="iqn.2010-10.io.kubenova:host.compute-a", address="127.0.0.1"
)


class ChildArgv:
    """Every argv this process hands to subprocess.Popen while installed."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.seen: list[str] = []
        original = subprocess.Popen.__init__
        recorder = self

        def recording(self: subprocess.Popen[Any], args: Any, *rest: Any, **kw: Any) -> None:
            recorder.seen.append(" ".join(map(str, args)) if isinstance(args, list) else str(args))
            original(self, args, *rest, **kw)

        monkeypatch.setattr(subprocess.Popen, "__init__", recording)


class ProcScan:
    """Reads every /proc/<pid>/cmdline in a loop until stopped: catches any process's argv."""

    def __init__(self) -> None:
        self.cmdlines: set[bytes] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for entry in Path("/proc").iterdir():
                if entry.name.isdigit():
                    try:
                        self.cmdlines.add((entry / "cmdline").read_bytes())
                    except OSError:
                        continue  # the process ended meanwhile

    def __enter__(self) -> ProcScan:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


@pytest.fixture
def children(monkeypatch: pytest.MonkeyPatch) -> ChildArgv:
    return ChildArgv(monkeypatch)


def test_the_chap_password_is_in_no_argv_and_no_log_and_still_works(
    tgtd: TgtDaemon, tmp_path: Path, children: ChildArgv, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    store = BackingStore(tmp_path / "volumes")
    driver = TgtDriver(
        TgtSettings(portal=tgtd.portal, storage_dir=store.directory, control_port=tgtd.control_port)
    )
    uid = str(uuid.uuid4())
    password = f"chap-{uuid.uuid4().hex[:12]}"
    spec = ExportSpec(
        volume_uid=uid,
        backing=store.create(uid, 16 << 20),
        target=IscsiTarget(f"iqn.2010-10.io.kubenova:volume-{uid}"),
        chap=ChapCredentials(f"volume-{uid[:8]}", password),
        initiators=(HOST,),
    )
    with ProcScan() as scan:
        driver.export(spec)
        # A second password for the same user: the account is set afresh, once more.
        rotated = ExportSpec(
            uid, spec.backing, spec.target, ChapCredentials(spec.chap.username, password + "x"),
            (HOST,),
        )  # fmt: skip
        driver.export(rotated)
        driver.export(spec)

    assert any("tgtadm" in argv for argv in children.seen)  # the recorder did see the driver
    assert not [argv for argv in children.seen if password in argv]
    assert not [c for c in scan.cmdlines if password.encode() in c]
    assert password not in caplog.text
    assert password not in tgtd.log_file.read_text(errors="replace")

    assert spec.chap is not None
    login = IscsiLogin(tgtd.portal, spec.target.iqn, spec.target.lun, spec.chap.username,
                       password, HOST.iqn)  # fmt: skip
    assert io_ok(qemu_io(login, "write -P 0x17 0 4k", "read -P 0x17 0 4k"))
    refused = qemu_io(login.replace(password=password + "x"), "read 0 4k")
    assert refused.returncode != 0  # the rotated-away password no longer logs in
