"""The initiator side of iSCSI tests: QEMU's own iSCSI client (qemu-io) and libiscsi's iscsi-ls.

Both log in the way a compute host's QEMU does: CHAP user and secret, and an initiator
name the target's access list knows (or not).
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass

import pytest


@dataclass(frozen=True)
class IscsiLogin:
    """Who logs in where: portal, target, LUN, CHAP and the initiator name presented."""

    portal: str
    iqn: str
    lun: int
    user: str
    password: str
    initiator: str

    def replace(self, **changes: object) -> IscsiLogin:
        return IscsiLogin(**{**self.__dict__, **changes})  # type: ignore[arg-type]


def require_qemu_io() -> str:
    found = shutil.which("qemu-io")
    if found is None:
        pytest.fail("qemu-io missing: install qemu-utils and qemu-block-extra", pytrace=False)
    return found


def qemu_io_argv(login: IscsiLogin) -> list[str]:
    """qemu-io opening the LUN through QEMU's own iSCSI initiator, logged in with CHAP."""
    options = ",".join(
        [
            "driver=iscsi",
            "transport=tcp",
            f"portal={login.portal}",
            f"target={login.iqn}",
            f"lun={login.lun}",
            f"user={login.user}",
            "password-secret=chap",
            f"initiator-name={login.initiator}",
        ]
    )
    return [
        require_qemu_io(),
        "--object",
        f"secret,id=chap,data={login.password}",
        "--image-opts",
        options,
    ]


def qemu_io(login: IscsiLogin, *commands: str) -> subprocess.CompletedProcess[str]:
    """Run qemu-io commands (`write -P 0xab 0 64k`, `read -P 0xab 0 64k`) on the LUN."""
    command = qemu_io_argv(login)
    for item in commands:
        command += ["-c", item]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def io_ok(result: subprocess.CompletedProcess[str]) -> bool:
    """qemu-io opened the LUN and every command (pattern checks included) succeeded."""
    text = result.stdout + result.stderr
    return result.returncode == 0 and "fail" not in text.lower() and "error" not in text.lower()


def iscsi_ls(login: IscsiLogin) -> subprocess.CompletedProcess[str]:
    """`iscsi-ls -s` as `login.initiator`: lists the targets (and LUNs) it may see."""
    binary = shutil.which("iscsi-ls")
    if binary is None:
        pytest.fail("iscsi-ls missing: install libiscsi-bin (hack/apt-packages.txt)", pytrace=False)
    url = f"iscsi://{login.user}%{login.password}@{login.portal}"
    return subprocess.run(
        [binary, "-i", login.initiator, "-s", url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
