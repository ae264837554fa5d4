"""tgtd's management socket, spoken directly: how a CHAP password reaches tgtd without argv.

`tgtadm --password P` would put P in the argv of a process every local user can read in
/proc/<pid>/cmdline. tgtadm has no other way to take it (no stdin, no file), so the one
request that carries a secret, "new account", is sent here the way tgtadm itself sends it:
a `struct tgtadm_req` header and a NUL-terminated "user=U,password=P" body on the unix
socket `/var/run/tgtd/socket.<control port>` (tgt's usr/tgtadm.h, stable since 1.0.x),
answered by a `struct tgtadm_rsp` whose `err` is 0 on success.
"""

from __future__ import annotations

import os
import socket
import struct

from kubenova.agents.volume.driver import ExportDaemonUnavailable, ExportFailure

SOCKET_DIR = "/var/run/tgtd"
_MODE_ACCOUNT = 7  # enum tgtadm_mode: SYSTEM, TARGET, DEVICE, PORTAL, LLD, SESSION, CONN, ACCOUNT
_OP_NEW = 0  # enum tgtadm_op: NEW, DELETE, SHOW, BIND, ...
_NO_LUN = (1 << 64) - 1  # tgtadm's "no --lun given"
# mode, op, lld[64], len, tid, sid, lun, cid, host_no, device_type, ac_dir, pack, force
_REQUEST = struct.Struct("=II64sIiQQIIIIII")
_RESPONSE = struct.Struct("=II")  # err, len (len counts this header too)
# tgtd splits the body at the first ',' after "user=": neither part may hold one.
_FORBIDDEN = (",", "\0")


def socket_path(control_port: int | None) -> str:
    """Where tgtd of `control_port` listens; TGT_IPC_SOCKET moves it, as it does for tgtadm."""
    base = os.environ.get("TGT_IPC_SOCKET", f"{SOCKET_DIR}/socket")
    return f"{base}.{control_port or 0}"


def new_account(user: str, password: str, control_port: int | None, timeout: float = 30) -> None:
    """Create the incoming CHAP account `user` in tgtd; the password never leaves this process
    except over the management socket."""
    for name, value in (("user", user), ("password", password)):
        if not value or any(c in value for c in _FORBIDDEN):
            raise ExportFailure(f"CHAP {name} must be non-empty without ',' or NUL characters")
    body = f"user={user},password={password}".encode() + b"\0"
    header = _REQUEST.pack(
        _MODE_ACCOUNT, _OP_NEW, b"iscsi", _REQUEST.size + len(body), -1, 0, _NO_LUN, 0, 0, 0, 0,
        0, 0,
    )  # fmt: skip
    path = socket_path(control_port)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as channel:
            channel.settimeout(timeout)
            channel.connect(path)
            channel.sendall(header + body)
            answer = _receive(channel, _RESPONSE.size)
            err, length = _RESPONSE.unpack(answer)
            if length > _RESPONSE.size:
                _receive(channel, length - _RESPONSE.size)
    except OSError as exc:
        raise ExportDaemonUnavailable(
            f"tgtd is not reachable at {path} ({exc}): start the tgt daemon"
        ) from exc
    if err != 0:
        # The number is tgt's enum tgtadm_err (usr/tgtadm_error.h; 14: the user exists).
        raise ExportFailure(f"tgtd refused the new CHAP account {user!r} (tgtadm error {err})")


def _receive(channel: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = channel.recv(size - len(data))
        if not chunk:
            raise ConnectionResetError("tgtd closed the management socket mid-answer")
        data += chunk
    return data
