"""The tgtd management request made by hand (agents/volume/tgt_ipc.py): layout and refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubenova.agents.volume import tgt_ipc
from kubenova.agents.volume.driver import ExportDaemonUnavailable, ExportFailure


def test_the_request_header_has_tgts_struct_size() -> None:
    # struct tgtadm_req on x86-64: 2 enums, lld[64], len, tid, sid, lun, 6 x uint32 = 120.
    assert tgt_ipc._REQUEST.size == 120
    assert tgt_ipc._RESPONSE.size == 8


@pytest.mark.parametrize(
    ("user", "password", "field"),
    [
        ("u", "a,b", "password"),
        ("u,x", "pw", "user"),
        ("u", "", "password"),
        ("u", "p\0", "password"),
    ],
)
def test_values_tgtd_would_misread_are_refused_before_sending(
    user: str, password: str, field: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TGT_IPC_SOCKET", str(tmp_path / "never-dialled"))
    with pytest.raises(ExportFailure, match=f"CHAP {field} must be non-empty"):
        tgt_ipc.new_account(user, password, 7)


def test_no_daemon_is_temporary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TGT_IPC_SOCKET", str(tmp_path / "socket"))
    assert tgt_ipc.socket_path(7) == f"{tmp_path}/socket.7"
    with pytest.raises(ExportDaemonUnavailable, match="start the tgt daemon"):
        tgt_ipc.new_account("user", "secret", 7)
