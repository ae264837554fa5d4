"""cloud-init NoCloud seeds: the meta-data/user-data files (pure) and the `cidata` ISO."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import yaml

from kubenova.agents.compute.driver import ComputeFailure
from kubenova.agents.compute.spec import CloudInitSeed
from kubenova.agents.private_files import CHILD_UMASK, private_directory, write_private

VOLUME_LABEL = "cidata"


def seed_files(seed: CloudInitSeed) -> dict[str, str]:
    """The NoCloud files: meta-data (instance-id, hostname, public-keys) and user-data."""
    meta: dict[str, object] = {"instance-id": seed.instance_id, "local-hostname": seed.hostname}
    if seed.ssh_authorized_keys:
        # NoCloud reads SSH keys from meta-data, so user-data stays exactly the user's.
        meta["public-keys"] = list(seed.ssh_authorized_keys)
    user_data = seed.user_data if seed.user_data is not None else "#cloud-config\n{}\n"
    return {
        "meta-data": yaml.safe_dump(meta, sort_keys=True, default_flow_style=False),
        "user-data": user_data,
    }


def write_seed_iso(seed: CloudInitSeed, target: Path) -> Path:
    """Write the seed as an ISO 9660 image labelled cidata (atomically: tmp file, rename)."""
    genisoimage = shutil.which("genisoimage")
    if genisoimage is None:
        raise ComputeFailure("genisoimage not found: install it (hack/apt-packages.txt)")
    private_directory(target.parent)  # user-data may carry passwords and keys
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".seed-") as scratch:
        files = []
        for name, content in seed_files(seed).items():
            path = Path(scratch) / name
            write_private(path, content.encode())
            files.append(str(path))
        partial = Path(scratch) / "seed.iso"
        result = subprocess.run(
            [
                genisoimage,
                "-quiet",
                "-output",
                str(partial),
                "-volid",
                VOLUME_LABEL,
                "-joliet",
                "-rock",
                *files,
            ],
            capture_output=True,
            text=True,
            check=False,
            umask=CHILD_UMASK,
        )
        if result.returncode != 0:
            raise ComputeFailure(f"genisoimage failed: {result.stderr.strip()}")
        os.replace(partial, target)
    return target
