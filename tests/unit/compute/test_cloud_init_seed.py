"""NoCloud seed files: meta-data carries identity and keys, user-data stays the user's."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from kubenova.agents.compute import CloudInitSeed
from kubenova.agents.compute.cloud_init_seed import seed_files, write_seed_iso


def test_meta_data_has_instance_id_hostname_and_keys() -> None:
    files = seed_files(CloudInitSeed("i-1", "web-1", ssh_authorized_keys=("ssh-ed25519 AAA a",)))
    meta = yaml.safe_load(files["meta-data"])
    assert meta == {
        "instance-id": "i-1",
        "local-hostname": "web-1",
        "public-keys": ["ssh-ed25519 AAA a"],
    }
    assert files["user-data"].startswith("#cloud-config")


def test_user_data_is_passed_verbatim_and_yaml_cannot_be_injected() -> None:
    script = "#!/bin/sh\necho hi\n"
    files = seed_files(CloudInitSeed("i-1\nevil: true", "h", user_data=script))
    assert files["user-data"] == script
    assert "evil" not in yaml.safe_load(files["meta-data"])


def test_iso_is_labelled_cidata(tmp_path: Path) -> None:
    if shutil.which("genisoimage") is None or shutil.which("isoinfo") is None:
        pytest.fail("genisoimage (with isoinfo) missing: run hack/install-deps.sh", pytrace=False)
    iso = write_seed_iso(CloudInitSeed("i-42", "h"), tmp_path / "seed.iso")
    info = subprocess.run(
        ["isoinfo", "-d", "-i", str(iso)], capture_output=True, text=True, check=True
    )
    assert "Volume id: cidata" in info.stdout
    listing = subprocess.run(
        ["isoinfo", "-R", "-f", "-i", str(iso)], capture_output=True, text=True, check=True
    )
    assert set(listing.stdout.split()) == {"/meta-data", "/user-data"}
    meta = subprocess.run(
        ["isoinfo", "-R", "-x", "/meta-data", "-i", str(iso)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert yaml.safe_load(meta.stdout)["instance-id"] == "i-42"
