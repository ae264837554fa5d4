"""Files that hold tenant data or secrets on a host: 0600 in 0700 directories, from birth.

Volume backing files, root-disk overlays and NoCloud seeds (user-data may carry
passwords and keys) must never be readable by another local user, not even for the
moment between creating a file and fixing its mode. So files are opened with their
mode (os.open, O_EXCL), and the tools that make them (qemu-img, genisoimage) run under
umask 077. A umask can only take bits away from 0700/0600, never add any, so the result
holds whatever umask the agent itself was started with. libvirt's QEMU runs as root on
kubenova hosts (kubenova/devcluster/libvirtd.py, the chart's agent), so it still reads them.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
# For subprocess.run(umask=...): whatever a child creates is owner-only.
CHILD_UMASK = 0o077


def private_directory(path: Path) -> Path:
    """Make `path` (and missing parents) a directory only its owner may enter.

    A directory that already exists with wider rights (made by an older agent) is narrowed:
    nothing secret is created in it before that.
    """
    path.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    if stat.S_IMODE(path.stat().st_mode) & ~PRIVATE_DIR_MODE:
        path.chmod(PRIVATE_DIR_MODE)
    return path


def create_private(path: Path) -> int:
    """Create `path` (it must not exist) as an owner-only file; the open descriptor."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, PRIVATE_FILE_MODE)


def write_private(path: Path, data: bytes) -> None:
    """Write `data` to a new owner-only file at `path` (replacing a stale one first)."""
    path.unlink(missing_ok=True)
    with os.fdopen(create_private(path), "wb") as handle:
        handle.write(data)
