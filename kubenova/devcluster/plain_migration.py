"""The target's files for a live migration done with plain libvirt (RUNBOOK.md, live migration).

`bench.migration` and the live-migration e2e time kubenova's move against plain libvirt's on
the same guest; the plain move needs on its target what kubenova's agent prepares there: an
empty overlay on the same base image (the guest's writes come over with the job) and the
same NoCloud seed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path


def backing_of(overlay: Path) -> tuple[Path, int]:
    """An overlay's base image and virtual size (read with -U: its guest is running)."""
    info = json.loads(
        subprocess.run(
            ["qemu-img", "info", "-U", "--output=json", str(overlay)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    return Path(info["full-backing-filename"]), int(info["virtual-size"])


def prepare_target_files(
    source_overlay: Path,
    source_seed: Path,
    target_overlay: Path,
    target_seed: Path,
    backing: tuple[Path, int] | None = None,
) -> None:
    """A fresh overlay at `target_overlay` on the source overlay's base, of the same size,
    and the seed copied. `backing`: the source's, when already known (a round of moves)."""
    base, size = backing or backing_of(source_overlay)
    target_overlay.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    create = ["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(base), "-F", "qcow2"]
    subprocess.run([*create, str(target_overlay), str(size)], check=True)
    shutil.copy(source_seed, target_seed)
